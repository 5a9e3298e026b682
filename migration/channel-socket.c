/*
 * unix:PATH and tcp:HOST:PORT.  Outgoing connects; incoming binds and
 * listens at once (so that a bad address is reported by migrate-incoming
 * itself) and accepts the first connection lazily, on the first read, in
 * the incoming thread, where the wait can be cancelled.
 */
#include "qemu/osdep.h"
#include "channel-fd.h"
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

typedef struct SocketChannel {
    FdChannel fdc;      /* fdc.fd is the listening socket until accepted */
    bool accepted;
    char *unix_path;    /* incoming unix: removed once connected */
} SocketChannel;

static void socket_free(SocketChannel *s)
{
    if (s->unix_path && !s->accepted) {
        unlink(s->unix_path);
    }
    fd_channel_cleanup(&s->fdc);
    g_free(s->unix_path);
    g_free(s);
}

static bool socket_accept(SocketChannel *s, Error **errp)
{
    for (;;) {
        int fd = accept4(s->fdc.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            close(s->fdc.fd);
            s->fdc.fd = fd;
            s->accepted = true;
            if (s->unix_path) {
                unlink(s->unix_path);
            }
            return true;
        }
        if (errno == EINTR || errno == ECONNABORTED) {
            continue;
        }
        if (errno != EAGAIN) {
            error_setg_errno(errp, errno, "%s: accept failed",
                             s->fdc.parent.description);
            return false;
        }
        if (!fd_channel_wait(&s->fdc, s->fdc.fd, POLLIN, -1, NULL, errp)) {
            return false;
        }
    }
}

static ssize_t socket_read(MigChannel *ch, void *buf, size_t len,
                           Error **errp)
{
    SocketChannel *s = container_of(ch, SocketChannel, fdc.parent);

    if (!s->accepted && !socket_accept(s, errp)) {
        return -1;
    }
    return fd_channel_read(ch, buf, len, errp);
}

static bool socket_close(MigChannel *ch, Error **errp)
{
    SocketChannel *s = container_of(ch, SocketChannel, fdc.parent);

    if (s->accepted) {
        /* The peer learns the stream ended cleanly, not by a reset. */
        shutdown(s->fdc.fd, SHUT_WR);
    }
    socket_free(s);
    return true;
}

static void socket_abort(MigChannel *ch)
{
    socket_free(container_of(ch, SocketChannel, fdc.parent));
}

static const MigChannelOps socket_ops = {
    .writev_all = fd_channel_writev_all,
    .read = socket_read,
    .close = socket_close,
    .abort = socket_abort,
    .cancel = fd_channel_cancel,
};

static MigChannel *socket_channel_new(int fd, bool accepted,
                                      const char *desc, Error **errp)
{
    SocketChannel *s = g_new0(SocketChannel, 1);

    s->accepted = accepted;
    if (!fd_channel_init(&s->fdc, &socket_ops, fd, desc, errp)) {
        g_free(s);
        return NULL;
    }
    return &s->fdc.parent;
}

static bool unix_fill_addr(struct sockaddr_un *sun, const char *path,
                           const char *desc, Error **errp)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "%s: a socket path must have 1 to %zu characters",
                   desc, sizeof(sun->sun_path) - 1);
        return false;
    }
    strcpy(sun->sun_path, path);
    return true;
}

MigChannel *mig_channel_unix_outgoing(const char *path, Error **errp)
{
    g_autofree char *desc = g_strdup_printf("unix:%s", path);
    struct sockaddr_un sun;

    if (!unix_fill_addr(&sun, path, desc, errp)) {
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create socket", desc);
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg_errno(errp, errno, "%s: cannot connect", desc);
        close(fd);
        return NULL;
    }
    return socket_channel_new(fd, true, desc, errp);
}

MigChannel *mig_channel_unix_incoming(const char *path, Error **errp)
{
    g_autofree char *desc = g_strdup_printf("unix:%s", path);
    struct sockaddr_un sun;
    struct stat st;

    if (!unix_fill_addr(&sun, path, desc, errp)) {
        return NULL;
    }
    /* A stale socket from an earlier run would make bind() fail. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create socket", desc);
        return NULL;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "%s: cannot listen", desc);
        close(fd);
        return NULL;
    }
    MigChannel *ch = socket_channel_new(fd, false, desc, errp);
    if (ch) {
        container_of(ch, SocketChannel, fdc.parent)->unix_path =
            g_strdup(path);
    }
    return ch;
}

/* "HOST:PORT" or "[V6ADDR]:PORT"; HOST may be empty for incoming. */
static bool tcp_split(const char *hostport, char **host, char **port,
                      const char *desc, Error **errp)
{
    const char *colon;

    if (hostport[0] == '[') {
        const char *close_br = strchr(hostport, ']');
        if (!close_br || close_br[1] != ':') {
            goto bad;
        }
        *host = g_strndup(hostport + 1, close_br - hostport - 1);
        colon = close_br + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon) {
            goto bad;
        }
        *host = g_strndup(hostport, colon - hostport);
    }
    if (!colon[1]) {
        g_free(*host);
        goto bad;
    }
    *port = g_strdup(colon + 1);
    return true;
bad:
    error_setg(errp, "%s: expected tcp:HOST:PORT", desc);
    return false;
}

static struct addrinfo *tcp_resolve(const char *hostport, bool passive,
                                    const char *desc, Error **errp)
{
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : 0,
    };
    struct addrinfo *res = NULL;

    if (!tcp_split(hostport, &host, &port, desc, errp)) {
        return NULL;
    }
    int ret = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (ret != 0) {
        error_setg(errp, "%s: cannot resolve: %s", desc, gai_strerror(ret));
        return NULL;
    }
    return res;
}

/*
 * A socket on the first address of @res that takes it: listening on it
 * (@server) or connected to it.  -1 with the last errno in @err.
 */
static int tcp_socket_open(struct addrinfo *res, bool server, int *err)
{
    int one = 1;

    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);

        if (fd < 0) {
            *err = errno;
            continue;
        }
        if (server) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                listen(fd, 1) == 0) {
                return fd;
            }
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            return fd;
        }
        *err = errno;
        close(fd);
    }
    return -1;
}

static MigChannel *tcp_channel_open(const char *hostport, bool server,
                                    Error **errp)
{
    g_autofree char *desc = g_strdup_printf("tcp:%s", hostport);
    struct addrinfo *res = tcp_resolve(hostport, server, desc, errp);
    int fd, err = 0;

    if (!res) {
        return NULL;
    }
    fd = tcp_socket_open(res, server, &err);
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "%s: cannot %s", desc,
                         server ? "listen" : "connect");
        return NULL;
    }
    /* The outgoing side is connected; the incoming one accepts later. */
    return socket_channel_new(fd, !server, desc, errp);
}

MigChannel *mig_channel_tcp_outgoing(const char *hostport, Error **errp)
{
    return tcp_channel_open(hostport, false, errp);
}

MigChannel *mig_channel_tcp_incoming(const char *hostport, Error **errp)
{
    return tcp_channel_open(hostport, true, errp);
}
