/*
 * The HTTP client client.h describes. It reads the whole response before
 * parsing it: answers of the management API are one JSON document, and
 * the largest (definitions) fits in memory as it does in the broker.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/ctl/client.h"

/* Standard base64 of s[0..n) into out (4 * ((n + 2) / 3) + 1 bytes). */
static void
b64(const unsigned char *s, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = 0;
}

int
ctl_path_append(char *out, size_t cap, const char *s)
{
    size_t o = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return 0;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            snprintf(out + o, 4, "%%%02X", *p);
            o += 3;
        }
    }
    out[o] = 0;
    return 1;
}

static int
connect_target(const ctl_target *t, char *err, size_t cap)
{
    if (t->socket_path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(t->socket_path) >= sizeof sa.sun_path) {
            snprintf(err, cap, "socket path too long");
            return -1;
        }
        strcpy(sa.sun_path, t->socket_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            snprintf(err, cap, "%s", strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(t->host, t->port, &hints, &res);
    if (rc) {
        snprintf(err, cap, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, cap, "no address");
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        snprintf(err, cap, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* MSG_NOSIGNAL: a broker that answers early (413) and closes must not
 * kill us with SIGPIPE; its answer is still read. */
static int
write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decodes a chunked body in place; its length, or -1 if incomplete. */
static long
dechunk(char *p, size_t n)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(p + in, n - in, "\r\n", 2);
        if (!eol)
            return -1;
        char *end;
        unsigned long sz = strtoul(p + in, &end, 16);
        if (end == p + in)
            return -1;
        in = (size_t)(eol - p) + 2;
        if (sz == 0)
            return (long)out;
        if (sz > n - in)
            return -1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz;
        if (n - in < 2)
            return -1;
        in += 2;
    }
}

int
ctl_request(const ctl_target *t, const char *method, const char *path, const char *body,
            size_t body_len, const char *headers, ctl_response *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    int fd = connect_target(t, err, cap);
    if (fd < 0)
        return -1;
    char auth[1100] = "";
    if (!t->socket_path && t->user) {
        char cred[600];
        int n = snprintf(cred, sizeof cred, "%s:%s", t->user, t->password ? t->password : "");
        if (n < 0 || (size_t)n >= sizeof cred)
            n = 0;
        char enc[4 * ((sizeof cred + 2) / 3) + 1];
        b64((const unsigned char *)cred, (size_t)n, enc);
        snprintf(auth, sizeof auth, "Authorization: Basic %s\r\n", enc);
    }
    char clen_hdr[80] = "";
    if (body)
        snprintf(clen_hdr, sizeof clen_hdr,
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    char *head = NULL;
    int hn = asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: coney-ctl\r\n"
                      "Accept: application/json\r\nConnection: close\r\n%s%s%s\r\n",
                      method, path, t->socket_path ? "localhost" : t->host, auth,
                      headers ? headers : "", clen_hdr);
    if (hn < 0) {
        snprintf(err, cap, "out of memory");
        close(fd);
        return -1;
    }
    /* a failed write is not the end: the broker may have answered */
    if (write_all(fd, head, (size_t)hn) == 0 && body)
        write_all(fd, body, body_len);
    free(head);

    size_t len = 0, bufcap = 16384;
    char *buf = malloc(bufcap);
    for (;;) {
        if (!buf) {
            close(fd);
            snprintf(err, cap, "out of memory");
            return -1;
        }
        if (bufcap - len < 4096) {
            char *nb = realloc(buf, bufcap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
            continue;
        }
        ssize_t r = read(fd, buf + len, bufcap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;

    char *hend = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (!hend || sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100) {
        free(buf);
        snprintf(err, cap, "the broker closed without a complete answer");
        return -1;
    }
    *hend = 0;
    char *bstart = hend + 4;
    size_t blen = len - (size_t)(bstart - buf);
    int chunked = 0;
    long clen = -1;
    for (char *line = strstr(buf, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            clen = strtol(h + 15, NULL, 10);
        else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strcasestr(h, "chunked"))
            chunked = 1;
    }
    if (chunked) {
        long n = dechunk(bstart, blen);
        if (n < 0) {
            free(buf);
            snprintf(err, cap, "the broker closed in the middle of an answer");
            return -1;
        }
        blen = (size_t)n;
    } else if (clen >= 0) {
        if ((size_t)clen > blen) {
            free(buf);
            snprintf(err, cap, "the broker closed in the middle of an answer");
            return -1;
        }
        blen = (size_t)clen;
    }
    memmove(buf, bstart, blen);
    buf[blen] = 0;
    out->status = status;
    out->body = buf;
    out->len = blen;
    return 0;
}

void
ctl_response_free(ctl_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
