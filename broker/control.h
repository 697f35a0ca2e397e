/* The control socket coney-ctl talks to (control.c says how). */
#ifndef CONEY_BROKER_CONTROL_H
#define CONEY_BROKER_CONTROL_H

#include <stddef.h>

/* Listens on <data_dir>/coney.sock; 0, or -1 with err. */
int control_open(char *err, size_t cap);
/* Stops listening, drops requests in flight, removes the socket. */
void control_close(void);

#endif
