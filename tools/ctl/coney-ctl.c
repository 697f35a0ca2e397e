/*
 * coney-ctl: users, vhosts, permissions and limits of a running broker,
 * with rabbitmqctl's command names and arguments, over the broker's
 * control socket (<data-dir>/coney.sock; broker/control.c has the wire
 * format). hash_password works offline.
 *
 * Exit status: 0 done; 1 the broker refused (the reason is printed);
 * 64 usage; 69 no broker is listening on the socket (as rabbitmqctl's
 * "node down").
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EX_USAGE 64
#define EX_UNAVAILABLE 69
#define MAX_ARGS 16

static const char *socket_path;
static int quiet;

static void
usage(FILE *out)
{
    fprintf(out,
        "Usage: coney-ctl [--data-dir DIR | --socket PATH] [-q] COMMAND [ARGS]\n"
        "Administers a running Coney over <data-dir>/coney.sock (default ./data,\n"
        "or $CONEY_DATA_DIR). Commands, as rabbitmqctl names them:\n"
        "  add_user USER PASSWORD            delete_user USER\n"
        "  change_password USER PASSWORD     clear_password USER\n"
        "  set_user_tags USER [TAG ...]      list_users\n"
        "  authenticate_user USER PASSWORD   hash_password PASSWORD (offline)\n"
        "  set_password_hash USER HASH [rabbit_password_hashing_sha256|sha512|md5]\n"
        "  add_vhost VHOST                   delete_vhost VHOST       list_vhosts\n"
        "  set_permissions [-p VHOST] USER CONF WRITE READ\n"
        "  clear_permissions [-p VHOST] USER\n"
        "  list_permissions [-p VHOST]       list_user_permissions USER\n"
        "  set_topic_permissions [-p VHOST] USER EXCHANGE WRITE READ\n"
        "  clear_topic_permissions [-p VHOST] USER [EXCHANGE]\n"
        "  list_topic_permissions [-p VHOST]\n"
        "  set_vhost_limits [-p VHOST] '{\"max-connections\": N, \"max-queues\": N}'\n"
        "  clear_vhost_limits [-p VHOST]\n"
        "  set_user_limits USER '{\"max-connections\": N, \"max-channels\": N}'\n"
        "  clear_user_limits USER LIMIT|all\n"
        "  list_queues [-p VHOST]            status\n");
}

/* Sends argv as one request and prints the answer's rows; the status
 * line decides the return value. */
static int
request(int argc, const char *const *argv, const char *header)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(socket_path) >= sizeof sa.sun_path) {
        fprintf(stderr, "coney-ctl: socket path too long: %s\n", socket_path);
        return EX_USAGE;
    }
    strcpy(sa.sun_path, socket_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "coney-ctl: no broker answers on %s: %s\n", socket_path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return EX_UNAVAILABLE;
    }
    char buf[65536];
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]) + 1;
        if (n + l + 1 > sizeof buf) {
            fprintf(stderr, "coney-ctl: arguments too long\n");
            close(fd);
            return EX_USAGE;
        }
        memcpy(buf + n, argv[i], l);
        n += l;
    }
    buf[n++] = 0;
    for (size_t off = 0; off < n; ) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "coney-ctl: write: %s\n", strerror(errno));
            close(fd);
            return EX_UNAVAILABLE;
        }
        off += (size_t)w;
    }
    /* the answer: a status line, then rows until the broker closes */
    FILE *in = fdopen(fd, "r");
    if (!in) {
        close(fd);
        return EX_UNAVAILABLE;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = 1;
    if (getline(&line, &cap, in) < 0) {
        fprintf(stderr, "coney-ctl: the broker closed without an answer\n");
        rc = EX_UNAVAILABLE;
    } else if (strcmp(line, "ok\n") == 0) {
        rc = 0;
        if (header && !quiet)
            printf("%s\n", header);
        ssize_t got;
        while ((got = getline(&line, &cap, in)) > 0)
            fwrite(line, 1, (size_t)got, stdout);
    } else {
        fprintf(stderr, "coney-ctl: %s", strncmp(line, "error: ", 7) == 0 ? line + 7 : line);
    }
    free(line);
    fclose(in);
    return rc;
}

static int
hash_password(const char *pass)
{
    unsigned char raw[4 + 32];
    if (getrandom(raw, 4, 0) != 4)
        return 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, raw, 4) != 1 || EVP_DigestUpdate(ctx, pass, strlen(pass)) != 1 ||
        EVP_DigestFinal_ex(ctx, raw + 4, &len) != 1)
        return 1;
    EVP_MD_CTX_free(ctx);
    char out[64];
    EVP_EncodeBlock((unsigned char *)out, raw, (int)sizeof raw);
    printf("%s\n", out);
    return 0;
}

/* Sends one set_*_limit request per key of a JSON object. */
static int
set_limits(const char *cmd, const char *target, const char *json)
{
    json_error_t e;
    json_t *o = json_loads(json, 0, &e);
    if (!o || !json_is_object(o)) {
        fprintf(stderr, "coney-ctl: limits must be a JSON object: %s\n", o ? "" : e.text);
        json_decref(o);
        return EX_USAGE;
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(o, key, v) {
        if (!json_is_integer(v)) {
            fprintf(stderr, "coney-ctl: limit '%s' must be an integer\n", key);
            rc = EX_USAGE;
            break;
        }
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        const char *args[4] = { cmd, target, key, num };
        if ((rc = request(4, args, NULL)) != 0)
            break;
    }
    json_decref(o);
    return rc;
}

int
main(int argc, char **argv)
{
    const char *dir = getenv("CONEY_DATA_DIR");
    char pathbuf[4096];
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (!socket_path) {
        snprintf(pathbuf, sizeof pathbuf, "%s/coney.sock", dir ? dir : "./data");
        socket_path = pathbuf;
    }
    if (i >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[i++];
    /* -p VHOST anywhere after the command, as rabbitmqctl takes it */
    const char *vhost = "/";
    const char *args[MAX_ARGS];
    int n = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            vhost = argv[++i];
            continue;
        }
        if (n == MAX_ARGS - 2) {
            fprintf(stderr, "coney-ctl: too many arguments\n");
            return EX_USAGE;
        }
        args[n++] = argv[i];
    }

    /* arguments each command takes (besides -p): a mistake is a usage
     * error here, before anything reaches the broker */
    static const struct { const char *cmd; int min, max; } arity[] = {
        { "add_user", 1, 2 }, { "delete_user", 1, 1 }, { "change_password", 2, 2 },
        { "clear_password", 1, 1 }, { "set_password_hash", 2, 3 },
        { "set_user_tags", 1, MAX_ARGS - 3 }, { "authenticate_user", 2, 2 },
        { "list_users", 0, 0 }, { "add_vhost", 1, 1 }, { "delete_vhost", 1, 1 },
        { "list_vhosts", 0, 0 }, { "set_permissions", 4, 4 }, { "clear_permissions", 1, 1 },
        { "list_permissions", 0, 0 }, { "list_user_permissions", 1, 1 },
        { "set_topic_permissions", 4, 4 }, { "clear_topic_permissions", 1, 2 },
        { "list_topic_permissions", 0, 0 }, { "list_queues", 0, 0 }, { "status", 0, 0 },
        { "hash_password", 1, 1 }, { "set_vhost_limits", 1, 1 }, { "clear_vhost_limits", 0, 0 },
        { "set_user_limits", 2, 2 }, { "clear_user_limits", 2, 2 },
    };
    bool known = false;
    for (size_t k = 0; k < sizeof arity / sizeof arity[0]; k++) {
        if (strcmp(arity[k].cmd, cmd) != 0)
            continue;
        known = true;
        if (n < arity[k].min || n > arity[k].max) {
            fprintf(stderr, "coney-ctl: %s takes %d to %d arguments\n", cmd, arity[k].min,
                    arity[k].max);
            return EX_USAGE;
        }
    }
    if (!known) {
        fprintf(stderr, "coney-ctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return EX_USAGE;
    }

#define NEED(k) do { if (n != (k)) { usage(stderr); return EX_USAGE; } } while (0)
    const char *req[MAX_ARGS];
    int m = 0;
    req[m++] = cmd;
    if (strcmp(cmd, "hash_password") == 0) {
        NEED(1);
        return hash_password(args[0]);
    }
    if (strcmp(cmd, "set_permissions") == 0 || strcmp(cmd, "clear_permissions") == 0 ||
        strcmp(cmd, "set_topic_permissions") == 0 || strcmp(cmd, "clear_topic_permissions") == 0) {
        req[m++] = vhost;
    } else if (strcmp(cmd, "list_permissions") == 0 || strcmp(cmd, "list_topic_permissions") == 0 ||
               strcmp(cmd, "list_queues") == 0) {
        NEED(0);
        req[m++] = vhost;
    } else if (strcmp(cmd, "set_vhost_limits") == 0) {
        NEED(1);
        return set_limits("set_vhost_limit", vhost, args[0]);
    } else if (strcmp(cmd, "clear_vhost_limits") == 0) {
        NEED(0);
        return set_limits("set_vhost_limit", vhost, "{\"max-connections\": -1, \"max-queues\": -1}");
    } else if (strcmp(cmd, "set_user_limits") == 0) {
        NEED(2);
        return set_limits("set_user_limit", args[0], args[1]);
    } else if (strcmp(cmd, "clear_user_limits") == 0) {
        NEED(2);
        if (strcmp(args[1], "all") == 0)
            return set_limits("set_user_limit", args[0],
                              "{\"max-connections\": -1, \"max-channels\": -1}");
        const char *r[4] = { "set_user_limit", args[0], args[1], "-1" };
        return request(4, r, NULL);
    }
    for (int k = 0; k < n; k++)
        req[m++] = args[k];

    static const struct { const char *cmd, *header; } headers[] = {
        { "list_users", "user\ttags\tmax-connections\tmax-channels" },
        { "list_vhosts", "name\tmax-connections\tmax-queues" },
        { "list_permissions", "user\tvhost\tconfigure\twrite\tread" },
        { "list_user_permissions", "user\tvhost\tconfigure\twrite\tread" },
        { "list_topic_permissions", "user\tvhost\texchange\twrite\tread" },
        { "list_queues", "name\tmessages\tmessages_unacknowledged\tconsumers" },
    };
    const char *header = NULL;
    for (size_t k = 0; k < sizeof headers / sizeof headers[0]; k++)
        if (strcmp(headers[k].cmd, cmd) == 0)
            header = headers[k].header;
    return request(m, req, header);
}
