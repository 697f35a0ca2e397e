/*
 * Log lines, one per event: "2026-11-21 20:45:01.123 [info] text", to
 * standard error (log.console) and, if configured, to a file (log.file),
 * each with its own level. The file is opened for appending; log_reopen
 * (SIGHUP) opens it again by name, so an outside logrotate that renamed
 * it gets a fresh one, and log_rotate (SIGUSR1) renames it to <file>.1
 * first.
 */
#ifndef CONEY_BROKER_LOG_H
#define CONEY_BROKER_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR };

/* Console lines below this level are dropped; default LOG_INFO. */
void log_set_level(enum log_level level);
/* Turns the console (standard error) on or off; on by default. */
void log_set_console(bool on);
/* Parses "debug", "info", "warning", "error"; -1 if unknown. */
int log_level_parse(const char *name);

/* Starts logging to path (copied) at level, appending. Returns 0, or -1
 * with errno set (nothing changes then). */
int log_open_file(const char *path, enum log_level level);
/* Closes the file and opens it again by its name (SIGHUP). Returns 0, or
 * -1 with errno (the old file is kept then); 0 with no file. */
int log_reopen(void);
/* Renames the file to <file>.1 (replacing one there) and opens a new one
 * (SIGUSR1). Returns 0, or -1 with errno; 0 with no file. */
int log_rotate(void);
/* Closes the file (at exit). */
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
