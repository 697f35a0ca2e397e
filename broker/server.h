#ifndef CONEY_BROKER_SERVER_H
#define CONEY_BROKER_SERVER_H

/* Opens the listeners and runs the loop until a signal stops it.
 * Returns the process exit status. */
int server_run(void);

#endif
