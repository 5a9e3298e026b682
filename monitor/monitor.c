/*
 * Monitor transports: listening unix sockets and stdio, one Monitor per
 * client, input read from GLib sources on the default main context and
 * output written without ever blocking the main loop on a socket client.
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"

#include <glib-unix.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

struct MonitorListener {
    MonitorKind kind;
    MachineState *ms;
    int fd;
    char *path;             /* unlinked at cleanup; NULL if inherited */
    guint watch;
    unsigned clients;
};

/* Process-wide, like the command tables: every live session. */
static GList *monitors;
static GList *listeners;
static bool stdio_taken;
static Monitor *cur_mon;

Monitor *monitor_cur(void)
{
    return cur_mon;
}

Monitor *monitor_set_cur(Monitor *mon)
{
    Monitor *old = cur_mon;

    cur_mon = mon;
    return old;
}

int monitor_get_cpu_index(Monitor *mon)
{
    return mon->cpu_index;
}

void monitor_foreach_qmp_ready(void (*fn)(Monitor *mon, void *opaque),
                               void *opaque)
{
    for (GList *l = monitors; l; l = l->next) {
        Monitor *mon = l->data;
        if (mon->kind == MONITOR_QMP && mon->negotiated && !mon->dead) {
            fn(mon, opaque);
        }
    }
}

static Monitor *monitor_new(MonitorKind kind, MachineState *ms)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->kind = kind;
    mon->ms = ms;
    mon->in_fd = -1;
    mon->out_fd = -1;
    mon->outbuf = g_byte_array_new();
    return mon;
}

Monitor *monitor_new_capture(MachineState *ms, int cpu_index)
{
    Monitor *mon = monitor_new(MONITOR_HMP, ms);

    mon->cpu_index = cpu_index;
    return mon;
}

char *monitor_free_capture(Monitor *mon)
{
    g_assert(mon->in_fd < 0);
    g_byte_array_append(mon->outbuf, (const guint8 *)"", 1);
    char *text = (char *)g_byte_array_free(mon->outbuf, FALSE);
    g_free(mon);
    return text;
}

/*
 * A client that hangs up must cost us its session, not the process: socket
 * writes never raise SIGPIPE, whatever main() did with the signal.
 */
static ssize_t monitor_raw_write(Monitor *mon, const void *buf, size_t len)
{
    if (mon->listener) {
        return send(mon->out_fd, buf, len, MSG_NOSIGNAL);
    }
    return write(mon->out_fd, buf, len);
}

/* Best effort, bounded: used only at exit for what is still queued. */
static void monitor_flush_at_exit(Monitor *mon)
{
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC / 2;

    while (mon->outbuf->len && !mon->dead &&
           g_get_monotonic_time() < deadline) {
        ssize_t n = monitor_raw_write(mon, mon->outbuf->data,
                                      mon->outbuf->len);
        if (n > 0) {
            g_byte_array_remove_range(mon->outbuf, 0, n);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            break;
        } else {
            g_usleep(1000);
        }
    }
}

/* ---- descriptors passed with SCM_RIGHTS, for getfd ---- */

static void passed_fds_close_oldest(Monitor *mon, guint count)
{
    for (guint i = 0; i < count; i++) {
        close(g_array_index(mon->passed_fds, int, i));
    }
    g_array_remove_range(mon->passed_fds, 0, count);
}

static void passed_fds_push(Monitor *mon, int fd)
{
    if (mon->passed_fds->len >= MONITOR_MAX_PASSED_FDS) {
        /* The newest is the one the client is about to name in getfd. */
        passed_fds_close_oldest(mon, 1);
    }
    g_array_append_val(mon->passed_fds, fd);
}

int monitor_take_passed_fd(void)
{
    Monitor *mon = monitor_cur();
    int fd;

    if (!mon || !mon->passed_fds || !mon->passed_fds->len) {
        return -1;
    }
    fd = g_array_index(mon->passed_fds, int, 0);
    g_array_remove_index(mon->passed_fds, 0);
    mon->passed_fds_taken++;
    return fd;
}

/*
 * Read a QMP unix socket, keeping the descriptors that come along.  The
 * kernel ends a read right after the bytes sent together with descriptors,
 * so a client that sends getfd and its descriptor in one sendmsg() has
 * both here before the command is dispatched.
 */
static ssize_t monitor_recv_with_fds(Monitor *mon, char *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * MONITOR_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n = recvmsg(mon->in_fd, &msg, MSG_CMSG_CLOEXEC);

    if (n < 0) {
        return n;
    }
    /* With MSG_CTRUNC the kernel has already closed what did not fit. */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
         cm = CMSG_NXTHDR(&msg, cm)) {
        size_t count;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            passed_fds_push(mon, fd);
        }
    }
    return n;
}

static bool has_non_space(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' &&
            buf[i] != '\n') {
            return true;
        }
    }
    return false;
}

/*
 * After a read has been dispatched: descriptors that were already waiting
 * before it (@carried, at the head of the queue) are stale if this read
 * brought at least one whole command and no command took a descriptor.
 * A descriptor is thus kept while the command it came with is incomplete,
 * and also across whitespace-only writes (clients such as qemu.qmp send
 * the descriptor with a single space, then getfd), but it does not
 * outlive the next command that goes past without wanting it.
 */
static void passed_fds_drop_stale(Monitor *mon, guint carried,
                                  unsigned taken_before, const char *buf,
                                  size_t len)
{
    if (!mon->passed_fds || !carried ||
        mon->passed_fds_taken != taken_before ||
        json_stream_pending(mon->stream) || !has_non_space(buf, len)) {
        return;
    }
    passed_fds_close_oldest(mon, MIN(carried, mon->passed_fds->len));
}

static void monitor_free(Monitor *mon)
{
    monitors = g_list_remove(monitors, mon);
    if (mon->in_watch) {
        g_source_remove(mon->in_watch);
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
    }
    if (mon->reap_idle) {
        g_source_remove(mon->reap_idle);
    }
    if (mon->kind == MONITOR_QMP) {
        qmp_session_end(mon);
    } else {
        hmp_session_end(mon);
    }
    if (mon->passed_fds) {
        passed_fds_close_oldest(mon, mon->passed_fds->len);
        g_array_free(mon->passed_fds, TRUE);
    }
    /* stdio stays open: only sockets belong to the monitor. */
    if (mon->listener) {
        close(mon->in_fd);
        mon->listener->clients--;
    }
    g_byte_array_free(mon->outbuf, TRUE);
    g_free(mon);
}

static gboolean monitor_reap(gpointer opaque)
{
    Monitor *mon = opaque;

    mon->reap_idle = 0;
    monitor_free(mon);
    return G_SOURCE_REMOVE;
}

void monitor_mark_dead(Monitor *mon)
{
    if (mon->dead || mon->in_fd < 0) {
        return;
    }
    mon->dead = true;
    /*
     * Freeing now could pull the session out from under a command that is
     * still running for it; an idle callback runs once the stack unwinds.
     */
    if (mon->in_watch) {
        g_source_remove(mon->in_watch);
        mon->in_watch = 0;
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
    mon->reap_idle = g_idle_add(monitor_reap, mon);
}

static gboolean monitor_out_ready(gint fd, GIOCondition cond, gpointer opaque);

/* Write as much of outbuf as the socket takes now. */
static void monitor_flush(Monitor *mon)
{
    while (mon->outbuf->len) {
        ssize_t n = monitor_raw_write(mon, mon->outbuf->data,
                                      mon->outbuf->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            monitor_mark_dead(mon);
            return;
        }
        g_byte_array_remove_range(mon->outbuf, 0, n);
    }
    if (mon->outbuf->len && !mon->out_watch) {
        mon->out_watch = g_unix_fd_add(mon->out_fd, G_IO_OUT,
                                       monitor_out_ready, mon);
    } else if (!mon->outbuf->len && mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
}

static gboolean monitor_out_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;

    if (mon->outbuf->len) {
        monitor_flush(mon);
    }
    if (mon->dead || !mon->outbuf->len) {
        mon->out_watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void monitor_write(Monitor *mon, const char *buf, size_t len)
{
    if (mon->dead) {
        return;
    }
    if (mon->in_fd < 0 || mon->out_nonblocking) {
        g_byte_array_append(mon->outbuf, (const guint8 *)buf, len);
    }
    if (mon->in_fd < 0) {
        return;     /* capture: keep everything */
    }
    if (!mon->out_nonblocking) {
        /* stdio belongs to the user; a blocking write is what they expect. */
        while (len) {
            ssize_t n = monitor_raw_write(mon, buf, len);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                monitor_mark_dead(mon);
                return;
            }
            buf += n;
            len -= n;
        }
        return;
    }
    if (mon->outbuf->len > MONITOR_MAX_OUTBUF) {
        /* A client that does not read must not make us hoard its output. */
        warn_report("monitor client does not read its replies; dropping it");
        monitor_mark_dead(mon);
        return;
    }
    monitor_flush(mon);
}

static gboolean monitor_in_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;
    char buf[4096];
    ssize_t n;
    Monitor *old;
    guint carried = mon->passed_fds ? mon->passed_fds->len : 0;
    unsigned taken_before = mon->passed_fds_taken;

    if (mon->passed_fds) {
        n = monitor_recv_with_fds(mon, buf, sizeof(buf));
    } else {
        n = read(fd, buf, sizeof(buf));
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /* End of input (or an error): the client is gone. */
        mon->in_watch = 0;
        if (mon->listener) {
            monitor_mark_dead(mon);
        }
        return G_SOURCE_REMOVE;
    }
    old = monitor_set_cur(mon);
    if (mon->kind == MONITOR_QMP) {
        qmp_session_input(mon, buf, n);
    } else {
        hmp_session_input(mon, buf, n);
    }
    monitor_set_cur(old);
    if (mon->dead) {
        /* monitor_mark_dead() has already destroyed this source. */
        return G_SOURCE_REMOVE;
    }
    passed_fds_drop_stale(mon, carried, taken_before, buf, n);
    return G_SOURCE_CONTINUE;
}

static void monitor_start(Monitor *mon, int in_fd, int out_fd, bool nonblock)
{
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->out_nonblocking = nonblock;
    monitors = g_list_append(monitors, mon);
    mon->in_watch = g_unix_fd_add(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                  monitor_in_ready, mon);
    if (mon->kind == MONITOR_QMP) {
        qmp_session_start(mon);
    } else {
        hmp_session_start(mon);
    }
}

/*
 * One client too many: say why before closing, so that it does not take
 * the hang-up for a crash.  QEMU keeps such clients waiting instead; a
 * bounded number of sessions is what we chose (docs/devel/qmp.md).  The
 * socket is new and non-blocking, so the short message goes out at once
 * or not at all: it never stalls the main loop.
 */
static void listener_refuse(MonitorListener *lis, int client)
{
    g_autofree char *msg = NULL;

    if (lis->kind == MONITOR_QMP) {
        msg = g_strdup_printf("{\"error\": {\"class\": \"GenericError\", "
                              "\"desc\": \"too many monitor clients "
                              "(limit %d), connection closed\"}}\r\n",
                              MONITOR_MAX_CLIENTS);
    } else {
        msg = g_strdup_printf("Error: too many monitor clients (limit %d),"
                              " connection closed\r\n",
                              MONITOR_MAX_CLIENTS);
    }
    if (send(client, msg, strlen(msg), MSG_NOSIGNAL) < 0) {
        /* Nothing to do: the client is being closed either way. */
    }
    close(client);
}

static gboolean listener_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorListener *lis = opaque;
    int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    Monitor *mon;

    if (client < 0) {
        return G_SOURCE_CONTINUE;
    }
    if (lis->clients >= MONITOR_MAX_CLIENTS) {
        listener_refuse(lis, client);
        return G_SOURCE_CONTINUE;
    }
    lis->clients++;
    mon = monitor_new(lis->kind, lis->ms);
    mon->listener = lis;
    /*
     * HMP has no getfd: its reads stay plain read(), which makes the kernel
     * drop any descriptor sent along instead of installing it here.
     */
    if (lis->kind == MONITOR_QMP) {
        mon->passed_fds = g_array_new(FALSE, FALSE, sizeof(int));
    }
    monitor_start(mon, client, client, true);
    return G_SOURCE_CONTINUE;
}

/*
 * Bind @path with mode 0600 and no window in which others could connect:
 * the socket is created inside a private directory and renamed into place.
 */
static int listen_unix(const char *path, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *dir = NULL;
    g_autofree char *tmp_path = NULL;
    g_autofree char *parent = g_path_get_dirname(path);
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "unix socket path '%s' is too long (max %zu bytes)",
                   path, sizeof(addr.sun_path) - 1);
        return -1;
    }
    dir = g_build_filename(parent, ".snapvm-sock-XXXXXX", NULL);
    if (!g_mkdtemp_full(dir, 0700)) {
        error_setg_errno(errp, errno, "cannot create a socket in '%s'",
                         parent);
        return -1;
    }
    tmp_path = g_build_filename(dir, "s", NULL);
    if (strlen(tmp_path) >= sizeof(addr.sun_path)) {
        rmdir(dir);
        error_setg(errp, "unix socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, tmp_path);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a unix socket");
        rmdir(dir);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        chmod(tmp_path, 0600) < 0 || listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "cannot listen on '%s'", path);
        goto fail;
    }
    /* Like QEMU, a stale socket left by an earlier run is replaced. */
    if (rename(tmp_path, path) < 0) {
        error_setg_errno(errp, errno, "cannot create socket '%s'", path);
        goto fail;
    }
    rmdir(dir);
    return fd;

fail:
    close(fd);
    unlink(tmp_path);
    rmdir(dir);
    return -1;
}

/* Parse "unix:PATH[,server=on|off][,wait=on|off]". */
static bool parse_unix_spec(const char *spec, char **path, bool *wait,
                            Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(spec + strlen("unix:"), ",", -1);
    bool server = false;

    *wait = true;
    if (!parts[0] || !*parts[0]) {
        error_setg(errp, "'%s': missing socket path", spec);
        return false;
    }
    for (char **p = parts + 1; *p; p++) {
        bool *flag;
        const char *val;

        if (g_str_has_prefix(*p, "server")) {
            flag = &server;
            val = *p + strlen("server");
        } else if (g_str_has_prefix(*p, "wait")) {
            flag = wait;
            val = *p + strlen("wait");
        } else {
            error_setg(errp, "'%s': unknown option '%s'", spec, *p);
            return false;
        }
        if (!*val || !strcmp(val, "=on")) {
            *flag = true;
        } else if (!strcmp(val, "=off")) {
            *flag = false;
        } else {
            error_setg(errp, "'%s': '%s' must be on or off", spec, *p);
            return false;
        }
    }
    if (!server) {
        error_setg(errp, "'%s': only server=on is supported", spec);
        return false;
    }
    *path = g_strdup(parts[0]);
    return true;
}

/* Serve the listening socket @fd; @path (owned) names it, or is NULL. */
static void listener_add(MonitorKind kind, MachineState *ms, int fd,
                         char *path, bool wait)
{
    MonitorListener *lis = g_new0(MonitorListener, 1);

    lis->kind = kind;
    lis->ms = ms;
    lis->fd = fd;
    lis->path = path;
    lis->watch = g_unix_fd_add(fd, G_IO_IN, listener_accept, lis);
    listeners = g_list_append(listeners, lis);
    if (wait) {
        /* wait=on: like QEMU, nothing starts before the first client. */
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        fprintf(stderr, "snapvm: waiting for connection on %s\n",
                path ? path : "an inherited socket");
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
        }
        listener_accept(fd, G_IO_IN, lis);
    }
}

bool monitor_init_listen_fd(bool qmp, int fd, bool wait, MachineState *ms,
                            Error **errp)
{
    int type;
    socklen_t len = sizeof(type);
    int accepting = 0;
    socklen_t alen = sizeof(accepting);

    monitor_events_init();
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) < 0 ||
        !accepting) {
        error_setg(errp, "-chardev fd=%d: not a listening stream socket", fd);
        return false;
    }
    /* Ours now: not passed on to exec: commands, never blocking accept. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "-chardev fd=%d", fd);
        return false;
    }
    listener_add(qmp ? MONITOR_QMP : MONITOR_HMP, ms, fd, NULL, wait);
    return true;
}

static bool monitor_init(MonitorKind kind, const char *spec, MachineState *ms,
                         Error **errp)
{
    const char *opt = kind == MONITOR_QMP ? "-qmp" : "-monitor";

    monitor_events_init();

    if (!strcmp(spec, "stdio")) {
        if (stdio_taken) {
            error_setg(errp, "%s stdio: stdio is already used by a monitor",
                       opt);
            return false;
        }
        stdio_taken = true;
        monitor_start(monitor_new(kind, ms), STDIN_FILENO, STDOUT_FILENO,
                      false);
        return true;
    }
    if (g_str_has_prefix(spec, "unix:")) {
        g_autofree char *path = NULL;
        bool wait;
        int fd;

        if (!parse_unix_spec(spec, &path, &wait, errp)) {
            error_prepend(errp, "%s ", opt);
            return false;
        }
        fd = listen_unix(path, errp);
        if (fd < 0) {
            error_prepend(errp, "%s: ", opt);
            return false;
        }
        listener_add(kind, ms, fd, g_steal_pointer(&path), wait);
        return true;
    }
    error_setg(errp, "%s '%s': expected stdio or unix:PATH,server=on,wait=off",
               opt, spec);
    return false;
}

bool monitor_init_qmp(const char *spec, MachineState *ms, Error **errp)
{
    return monitor_init(MONITOR_QMP, spec, ms, errp);
}

bool monitor_init_hmp(const char *spec, MachineState *ms, Error **errp)
{
    return monitor_init(MONITOR_HMP, spec, ms, errp);
}

void monitor_cleanup(void)
{
    while (monitors) {
        Monitor *mon = monitors->data;
        if (mon->out_nonblocking) {
            monitor_flush_at_exit(mon);
        }
        monitor_free(mon);
    }
    while (listeners) {
        MonitorListener *lis = listeners->data;
        listeners = g_list_remove(listeners, lis);
        g_source_remove(lis->watch);
        close(lis->fd);
        if (lis->path) {
            unlink(lis->path);
        }
        g_free(lis->path);
        g_free(lis);
    }
    stdio_taken = false;
}
