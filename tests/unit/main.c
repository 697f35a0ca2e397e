/* Runs every unit suite listed in suites.h; exit status 0 only if all pass. */
#include <stdlib.h>

#include "suites.h"

int
main(void)
{
    SRunner *sr = srunner_create(NULL);
#define UNIT_ADD(name) srunner_add_suite(sr, suite_##name());
    UNIT_SUITES(UNIT_ADD)
#undef UNIT_ADD
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
