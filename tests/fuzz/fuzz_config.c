/*
 * The config parser (broker/config.c): the input is a config file,
 * read by config_load through a memfd so no disk is touched, the
 * result checked by config_check. Then its
 * first line, cut at '=', goes to config_set directly (keys and values
 * config_load would have trimmed), and its first line to
 * config_parse_size.
 */
#include "tests/fuzz/fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/log.h"

static int fd = -1;
static char path[64];
static FILE *errs;                  /* problems are printed: to /dev/null */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        log_set_level(LOG_ERROR);          /* unknown keys warn */
        fd = memfd_create("coney-fuzz-config", 0);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        errs = fopen("/dev/null", "w");
        FUZZ_CHECK(errs != NULL);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

    config c;
    char err[512];
    config_defaults(&c);
    FUZZ_CHECK(config_load(&c, path, errs) >= 0);
    FUZZ_CHECK(config_check(&c, errs) >= 0);
    /* settings stay NUL-terminated whatever the file held */
    FUZZ_CHECK(memchr(c.data_dir, 0, sizeof c.data_dir) != NULL);
    FUZZ_CHECK(memchr(c.tls_ciphers, 0, sizeof c.tls_ciphers) != NULL);
    FUZZ_CHECK(memchr(c.auth_mechanisms, 0, sizeof c.auth_mechanisms) != NULL);

    size_t n = 0;
    while (n < size && data[n] != '\n')
        n++;
    char *line = fuzz_alloc(n + 1);
    memcpy(line, data, n);
    line[n] = 0;
    uint64_t sz;
    (void)config_parse_size(line, &sz);
    char *eq = strchr(line, '=');
    if (eq) {
        *eq = 0;
        config_defaults(&c);
        err[0] = 0;
        if (config_set(&c, line, eq + 1, err, sizeof err) != 0)
            FUZZ_CHECK(err[0] != 0);
    }
    free(line);
    return 0;
}
