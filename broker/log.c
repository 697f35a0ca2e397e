/* Log lines look like RabbitMQ's: "2026-11-21 20:45:01.123 [info] text".
 * Each line is formatted once and written with one write(2) per sink, so
 * lines from the storage thread and the loop never interleave mid-line. */
#include "broker/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level console_level = LOG_INFO;
static bool console_on = true;
static enum log_level file_level = LOG_INFO;
static int file_fd = -1;
static char *file_path;            /* owned; NULL without a log file */
static const char *const level_names[] = { "debug", "info", "warning", "error" };

void
log_set_level(enum log_level level)
{
    console_level = level;
}

void
log_set_console(bool on)
{
    console_on = on;
}

int
log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

static int
open_append(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int
log_open_file(const char *path, enum log_level level)
{
    int fd = open_append(path);
    if (fd < 0)
        return -1;
    char *copy = strdup(path);
    if (!copy) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    log_close();
    file_fd = fd;
    file_path = copy;
    file_level = level;
    return 0;
}

int
log_reopen(void)
{
    if (!file_path)
        return 0;
    int fd = open_append(file_path);
    if (fd < 0)
        return -1;
    /* dup2 swaps the file under the same descriptor in one step, so the
     * storage thread logging meanwhile writes to the old or the new one */
    int rc = dup3(fd, file_fd, O_CLOEXEC);
    close(fd);
    return rc < 0 ? -1 : 0;
}

int
log_rotate(void)
{
    if (!file_path)
        return 0;
    size_t n = strlen(file_path) + 3;
    char *old = malloc(n);
    if (!old) {
        errno = ENOMEM;
        return -1;
    }
    snprintf(old, n, "%s.1", file_path);
    int rc = rename(file_path, old);
    free(old);
    if (rc != 0 && errno != ENOENT)
        return -1;
    return log_reopen();
}

void
log_close(void)
{
    if (file_fd >= 0)
        close(file_fd);
    file_fd = -1;
    free(file_path);
    file_path = NULL;
}

static void
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;                /* nowhere to report a failing log */
        p += w;
        len -= (size_t)w;
    }
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    bool to_console = console_on && level >= console_level;
    bool to_file = file_fd >= 0 && level >= file_level;
    if (!to_console && !to_file)
        return;
    int saved = errno;             /* callers log strerror(errno) after us */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char line[1024];
    int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03d [%s] ",
                  (int)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    if (to_console)
        write_all(STDERR_FILENO, line, len);
    if (to_file)
        write_all(file_fd, line, len);
    errno = saved;
}
