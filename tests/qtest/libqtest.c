/*
 * libqtest: start the real snapvm binary and drive it over QMP.
 *
 * snapvm ends each QMP message with "\r\n" and never puts a raw newline
 * inside one, so this side splits what it reads by lines; the server side
 * is the one that must cope with arbitrary framing.
 */
#include "libqtest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

/* How long snapvm may take to open its QMP socket. */
#define QTEST_START_TIMEOUT_MS 20000
/* How long snapvm may take to exit after "quit". */
#define QTEST_QUIT_TIMEOUT_MS 10000

struct QTestState {
    bool owner;             /* owns the process and the tmpdir */
    pid_t pid;
    char *tmpdir;
    char *sock_path;
    char *serial_path;
    int fd;
    bool closed;            /* the server closed the connection */
    GString *inbuf;
    GQueue events;          /* JsonObject *, oldest first */
    GQueue replies;         /* non-event messages met while waiting */
    JsonObject *greeting;
};

const char *qtest_binary(void)
{
    const char *bin = g_getenv("SNAPVM_BINARY");

    return bin && *bin ? bin : "./snapvm";
}

static char *guest_file(const char *name)
{
    const char *dir = g_getenv("SNAPVM_GUEST_DIR");
    g_autofree char *file = strchr(name, '.') ? g_strdup(name)
                                              : g_strconcat(name, ".elf", NULL);

    if (!dir || !*dir) {
        dir = "tests/guest";
    }
    return g_build_filename(dir, file, NULL);
}

char *qtest_guest_path(const char *name)
{
    char *path = guest_file(name);

    if (!g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
        g_error("guest program %s is missing: build the tests (meson test "
                "does) or point SNAPVM_GUEST_DIR at them", path);
    }
    return path;
}

bool qtest_guest_exists(const char *name)
{
    g_autofree char *path = guest_file(name);

    return g_file_test(path, G_FILE_TEST_IS_REGULAR);
}

/* The child must not outlive a test that aborts. */
static void child_setup(gpointer unused)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static char **build_argv(const char *prefix, const char *extra_args)
{
    g_autofree char *line = g_strdup_printf("%s %s", prefix,
                                            extra_args ? extra_args : "");
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) words = NULL;
    GPtrArray *argv = g_ptr_array_new();

    if (!g_shell_parse_argv(line, NULL, &words, &err)) {
        g_error("cannot split snapvm arguments '%s': %s", line, err->message);
    }
    g_ptr_array_add(argv, g_strdup(qtest_binary()));
    for (char **w = words; *w; w++) {
        g_ptr_array_add(argv, g_strdup(*w));
    }
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

static int status_to_code(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

/*
 * Wait for @pid up to @timeout_ms; on timeout SIGKILL it and return -1,
 * else its exit code as status_to_code().
 */
static int wait_pid_timeout(pid_t pid, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status_to_code(status);
        }
        if (r < 0 && errno != EINTR) {
            g_error("waitpid(%d): %s", (int)pid, g_strerror(errno));
        }
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
        g_usleep(5000);
    }
}

static void remove_tree(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (dir) {
        while ((name = g_dir_read_name(dir))) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            remove_tree(child);
        }
        g_dir_close(dir);
    }
    g_remove(path);
}

/* ---- the wire ---- */

static void send_bytes(QTestState *qts, const char *buf, size_t len,
                       bool tolerate_closed)
{
    while (len) {
        ssize_t n = send(qts->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            if (tolerate_closed && (errno == EPIPE || errno == ECONNRESET)) {
                qts->closed = true;
                return;
            }
            g_error("QMP send: %s", g_strerror(errno));
        }
        buf += n;
        len -= n;
    }
}

/* Read more bytes into inbuf; false on timeout or end of stream. */
static bool fill_inbuf(QTestState *qts, gint64 deadline)
{
    char buf[65536];

    while (!qts->closed) {
        gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
        struct pollfd pfd = { .fd = qts->fd, .events = POLLIN };
        int r;

        if (left_ms < 0) {
            return false;
        }
        r = poll(&pfd, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            g_error("poll: %s", g_strerror(errno));
        }
        if (r == 0) {
            continue;   /* loop re-checks the deadline */
        }
        ssize_t n = recv(qts->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            qts->closed = true;
            return false;
        }
        g_string_append_len(qts->inbuf, buf, n);
        return true;
    }
    return false;
}

static JsonObject *parse_message(const char *text)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonNode *root;

    if (!json_parser_load_from_data(parser, text, -1, &err)) {
        g_error("snapvm sent invalid JSON (%s): %s", err->message, text);
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_error("snapvm sent a JSON value that is not an object: %s", text);
    }
    return json_object_ref(json_node_get_object(root));
}

/* The next message of any kind, or NULL on timeout / end of stream. */
static JsonObject *read_message(QTestState *qts, gint64 deadline)
{
    for (;;) {
        char *nl = memchr(qts->inbuf->str, '\n', qts->inbuf->len);
        if (nl) {
            size_t len = nl - qts->inbuf->str;
            g_autofree char *line = g_strndup(qts->inbuf->str, len);

            g_string_erase(qts->inbuf, 0, len + 1);
            g_strstrip(line);
            if (*line) {
                return parse_message(line);
            }
            continue;
        }
        if (!fill_inbuf(qts, deadline)) {
            return NULL;
        }
    }
}

static gint64 deadline_after(int timeout_ms)
{
    return g_get_monotonic_time() + (gint64)timeout_ms * 1000;
}

JsonObject *qtest_qmp_receive_timeout(QTestState *qts, int timeout_ms)
{
    gint64 deadline = deadline_after(timeout_ms);
    JsonObject *msg;

    if (!g_queue_is_empty(&qts->replies)) {
        return g_queue_pop_head(&qts->replies);
    }
    while ((msg = read_message(qts, deadline))) {
        if (!json_object_has_member(msg, "event")) {
            return msg;
        }
        g_queue_push_tail(&qts->events, msg);
    }
    return NULL;
}

JsonObject *qtest_qmp_receive(QTestState *qts)
{
    JsonObject *msg = qtest_qmp_receive_timeout(qts, QTEST_DEFAULT_TIMEOUT_MS);

    if (!msg) {
        g_error("no QMP reply from snapvm: %s",
                qts->closed ? "connection closed" : "timed out");
    }
    return msg;
}

bool qtest_connection_closed(QTestState *qts)
{
    return qts->closed;
}

static void qtest_qmp_vsend(QTestState *qts, const char *fmt, va_list ap)
{
    g_autofree char *text = g_strdup_vprintf(fmt, ap);

    send_bytes(qts, text, strlen(text), false);
}

void qtest_qmp_send(QTestState *qts, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    qtest_qmp_vsend(qts, fmt, ap);
    va_end(ap);
}

void qtest_qmp_send_raw(QTestState *qts, const char *buf, size_t len)
{
    send_bytes(qts, buf, len, true);
}

void qtest_qmp_send_raw_fds(QTestState *qts, const int *fds, size_t nfds,
                            const char *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * QTEST_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = CMSG_SPACE(sizeof(int) * nfds),
    };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    ssize_t n;

    /* Descriptors need at least one byte of data to ride on. */
    g_assert_cmpuint(len, >, 0);
    g_assert_cmpuint(nfds, >, 0);
    g_assert_cmpuint(nfds, <=, QTEST_MAX_FDS);
    memset(&control, 0, sizeof(control));
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    do {
        n = sendmsg(qts->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        g_error("QMP sendmsg: %s", g_strerror(errno));
    }
    /* The descriptors went with the first byte; the rest is plain. */
    send_bytes(qts, buf + n, len - n, false);
}

JsonObject *qtest_qmp_fds(QTestState *qts, const int *fds, size_t nfds,
                          const char *fmt, ...)
{
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qtest_qmp_send_raw_fds(qts, fds, nfds, text, strlen(text));
    return qtest_qmp_receive(qts);
}

JsonObject *qtest_qmp(QTestState *qts, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    qtest_qmp_vsend(qts, fmt, ap);
    va_end(ap);
    return qtest_qmp_receive(qts);
}

static char *object_to_string(JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);

    return json_to_string(node, FALSE);
}

JsonNode *qtest_qmp_assert_success(QTestState *qts, const char *fmt, ...)
{
    g_autofree char *text = NULL;
    g_autoptr(JsonObject) reply = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    send_bytes(qts, text, strlen(text), false);
    reply = qtest_qmp_receive(qts);
    if (!json_object_has_member(reply, "return")) {
        g_autofree char *got = object_to_string(reply);
        g_error("command %s failed: %s", text, got);
    }
    return json_node_copy(json_object_get_member(reply, "return"));
}

const char *qtest_reply_error_desc(JsonObject *reply, const char *cls)
{
    JsonObject *error;

    g_assert_nonnull(reply);
    if (!json_object_has_member(reply, "error")) {
        g_autofree char *got = object_to_string(reply);
        g_error("expected an error of class %s, got %s", cls, got);
    }
    error = json_object_get_object_member(reply, "error");
    g_assert_cmpstr(json_object_get_string_member(error, "class"), ==, cls);
    return json_object_get_string_member(error, "desc");
}

JsonObject *qtest_qmp_eventwait(QTestState *qts, const char *name,
                                int timeout_ms)
{
    gint64 deadline = deadline_after(timeout_ms);

    for (;;) {
        for (GList *l = qts->events.head; l; l = l->next) {
            JsonObject *ev = l->data;
            if (!g_strcmp0(json_object_get_string_member(ev, "event"), name)) {
                g_queue_delete_link(&qts->events, l);
                return ev;
            }
        }
        JsonObject *msg = read_message(qts, deadline);
        if (!msg) {
            return NULL;
        }
        if (json_object_has_member(msg, "event")) {
            g_queue_push_tail(&qts->events, msg);
        } else {
            g_queue_push_tail(&qts->replies, msg);
        }
    }
}

void qtest_qmp_discard_events(QTestState *qts)
{
    g_queue_clear_full(&qts->events, (GDestroyNotify)json_object_unref);
}

char *qtest_query_status(QTestState *qts)
{
    g_autoptr(JsonNode) ret =
        qtest_qmp_assert_success(qts, "{\"execute\": \"query-status\"}");

    return g_strdup(json_object_get_string_member(json_node_get_object(ret),
                                                  "status"));
}

char *qtest_json_quote(const char *str)
{
    g_autoptr(JsonNode) node = json_node_init_string(json_node_alloc(), str);

    return json_to_string(node, FALSE);
}

char *qtest_hmp(QTestState *qts, const char *fmt, ...)
{
    g_autofree char *line = NULL;
    g_autofree char *quoted = NULL;
    g_autoptr(JsonNode) ret = NULL;
    va_list ap;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    quoted = qtest_json_quote(line);
    ret = qtest_qmp_assert_success(qts,
        "{\"execute\": \"human-monitor-command\","
        " \"arguments\": {\"command-line\": %s}}", quoted);
    g_assert_true(JSON_NODE_HOLDS_VALUE(ret));
    return g_strdup(json_node_get_string(ret));
}

/* ---- connections ---- */

int qtest_connect_unix(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static QTestState *qtest_state_new(void)
{
    QTestState *qts = g_new0(QTestState, 1);

    qts->fd = -1;
    qts->pid = -1;
    qts->inbuf = g_string_new(NULL);
    g_queue_init(&qts->events);
    g_queue_init(&qts->replies);
    return qts;
}

static void qtest_state_free(QTestState *qts)
{
    if (qts->fd >= 0) {
        close(qts->fd);
    }
    qtest_qmp_discard_events(qts);
    g_queue_clear_full(&qts->replies, (GDestroyNotify)json_object_unref);
    if (qts->greeting) {
        json_object_unref(qts->greeting);
    }
    g_string_free(qts->inbuf, TRUE);
    g_free(qts->tmpdir);
    g_free(qts->sock_path);
    g_free(qts->serial_path);
    g_free(qts);
}

static void read_greeting_and_negotiate(QTestState *qts, bool negotiate)
{
    qts->greeting = read_message(qts, deadline_after(QTEST_DEFAULT_TIMEOUT_MS));
    if (!qts->greeting || !json_object_has_member(qts->greeting, "QMP")) {
        g_error("snapvm did not send a QMP greeting");
    }
    if (negotiate) {
        json_node_unref(qtest_qmp_assert_success(qts,
            "{\"execute\": \"qmp_capabilities\"}"));
    }
}

JsonObject *qtest_greeting(QTestState *qts)
{
    return qts->greeting;
}

QTestState *qtest_client_new(QTestState *owner, bool negotiate)
{
    QTestState *qts = qtest_state_new();

    qts->sock_path = g_strdup(owner->sock_path);
    qts->fd = qtest_connect_unix(qts->sock_path);
    if (qts->fd < 0) {
        g_error("cannot connect to %s: %s", qts->sock_path, g_strerror(errno));
    }
    read_greeting_and_negotiate(qts, negotiate);
    return qts;
}

QTestState *qtest_init(const char *extra_args)
{
    return qtest_init_env(NULL, extra_args);
}

/* Our environment with @env's "NAME=VALUE" strings set over it. */
static char **build_envp(const char *const *env)
{
    char **envp = g_get_environ();

    for (; env && *env; env++) {
        g_auto(GStrv) kv = g_strsplit(*env, "=", 2);
        if (!kv[0] || !kv[1]) {
            g_error("environment entry '%s' is not NAME=VALUE", *env);
        }
        envp = g_environ_setenv(envp, kv[0], kv[1], TRUE);
    }
    return envp;
}

QTestState *qtest_init_env(const char *const *env, const char *extra_args)
{
    QTestState *qts = qtest_state_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *prefix = NULL;
    g_auto(GStrv) argv = NULL;
    g_auto(GStrv) envp = build_envp(env);
    gint64 deadline = deadline_after(QTEST_START_TIMEOUT_MS);
    GPid pid;

    qts->owner = true;
    qts->tmpdir = g_dir_make_tmp("snapvm-qtest-XXXXXX", &err);
    g_assert_no_error(err);
    qts->sock_path = g_build_filename(qts->tmpdir, "qmp.sock", NULL);
    qts->serial_path = g_build_filename(qts->tmpdir, "serial.log", NULL);
    prefix = g_strdup_printf("-qmp unix:%s,server=on,wait=off"
                             " -serial file:%s",
                             qts->sock_path, qts->serial_path);
    argv = build_argv(prefix, extra_args);
    if (g_test_verbose()) {
        g_autofree char *cmd = g_strjoinv(" ", argv);
        g_printerr("# starting %s\n", cmd);
    }
    if (!g_spawn_async(NULL, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD,
                       child_setup, NULL, &pid, &err)) {
        g_error("cannot start %s: %s", argv[0], err->message);
    }
    qts->pid = pid;

    for (;;) {
        int status;
        if (waitpid(qts->pid, &status, WNOHANG) == qts->pid) {
            g_error("snapvm exited (status %d) before opening its QMP socket",
                    status_to_code(status));
        }
        qts->fd = qtest_connect_unix(qts->sock_path);
        if (qts->fd >= 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            kill(qts->pid, SIGKILL);
            g_error("snapvm did not open %s in time", qts->sock_path);
        }
        g_usleep(10000);
    }
    read_greeting_and_negotiate(qts, true);
    return qts;
}

QTestState *qtest_initf(const char *fmt, ...)
{
    g_autofree char *args = NULL;
    va_list ap;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return qtest_init(args);
}

static int qtest_finish(QTestState *qts, int timeout_ms)
{
    int code = wait_pid_timeout(qts->pid, timeout_ms);

    remove_tree(qts->tmpdir);
    qtest_state_free(qts);
    return code;
}

void qtest_quit(QTestState *qts)
{
    int code;

    if (!qts->owner) {
        qtest_state_free(qts);
        return;
    }
    if (!qts->closed) {
        static const char quit[] = "{\"execute\": \"quit\"}";
        g_autoptr(JsonObject) reply = NULL;

        send_bytes(qts, quit, strlen(quit), true);
        /* The reply may be lost if snapvm closes first; that is fine. */
        reply = qtest_qmp_receive_timeout(qts, QTEST_QUIT_TIMEOUT_MS);
    }
    code = qtest_finish(qts, QTEST_QUIT_TIMEOUT_MS);
    if (code != 0) {
        g_error("snapvm did not exit cleanly after quit (code %d%s)", code,
                code == -1 ? ", killed after timeout" : "");
    }
}

int qtest_wait_exit(QTestState *qts, int timeout_ms)
{
    g_assert_true(qts->owner);
    return qtest_finish(qts, timeout_ms);
}

pid_t qtest_pid(QTestState *qts)
{
    return qts->pid;
}

const char *qtest_tmpdir(QTestState *qts)
{
    return qts->tmpdir;
}

const char *qtest_qmp_socket_path(QTestState *qts)
{
    return qts->sock_path;
}

const char *qtest_serial_path(QTestState *qts)
{
    return qts->serial_path;
}

int qtest_open_fd_count(QTestState *qts)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fd", (int)qts->pid);
    g_autoptr(GError) err = NULL;
    GDir *dir = g_dir_open(path, 0, &err);
    int count = 0;

    if (!dir) {
        g_error("cannot list %s: %s", path, err->message);
    }
    while (g_dir_read_name(dir)) {
        count++;
    }
    g_dir_close(dir);
    return count;
}

gsize qtest_serial_size(QTestState *qts)
{
    struct stat st;

    return qts->serial_path && stat(qts->serial_path, &st) == 0 ? st.st_size
                                                                 : 0;
}

char *qtest_serial_read(QTestState *qts)
{
    char *contents = NULL;

    if (!qts->serial_path ||
        !g_file_get_contents(qts->serial_path, &contents, NULL, NULL)) {
        return g_strdup("");
    }
    return contents;
}

bool qtest_serial_wait(QTestState *qts, const char *needle, int timeout_ms)
{
    gint64 deadline = deadline_after(timeout_ms);

    do {
        g_autofree char *log = qtest_serial_read(qts);
        if (strstr(log, needle)) {
            return true;
        }
        g_usleep(10000);
    } while (g_get_monotonic_time() < deadline);
    return false;
}

/* ---- snapvm without QMP ---- */

int qtest_run(const char *args, int timeout_ms, char **out, char **err)
{
    return qtest_run_with_input(args, NULL, timeout_ms, out, err);
}

int qtest_run_with_input(const char *args, const char *input, int timeout_ms,
                         char **out, char **err)
{
    g_auto(GStrv) argv = build_argv("", args);
    g_autoptr(GError) gerr = NULL;
    g_autoptr(GString) outbuf = g_string_new(NULL);
    g_autoptr(GString) errbuf = g_string_new(NULL);
    gint64 deadline = deadline_after(timeout_ms);
    int in_fd, out_fd, err_fd;
    GPid pid;
    int code;

    if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  child_setup, NULL, &pid,
                                  input ? &in_fd : NULL, &out_fd,
                                  &err_fd, &gerr)) {
        g_error("cannot start %s: %s", argv[0], gerr->message);
    }
    if (input) {
        /* Small inputs only: they must fit in the pipe. */
        g_assert_cmpuint(strlen(input), <=, 4096);
        if (write(in_fd, input, strlen(input)) != (ssize_t)strlen(input)) {
            g_error("writing snapvm's input: %s", g_strerror(errno));
        }
        close(in_fd);
    }
    struct pollfd pfd[2] = {
        { .fd = out_fd, .events = POLLIN },
        { .fd = err_fd, .events = POLLIN },
    };
    GString *bufs[2] = { outbuf, errbuf };
    while ((pfd[0].fd >= 0 || pfd[1].fd >= 0) &&
           g_get_monotonic_time() < deadline) {
        if (poll(pfd, 2, 50) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            char buf[4096];
            ssize_t n;

            if (pfd[i].fd < 0 || !pfd[i].revents) {
                continue;
            }
            n = read(pfd[i].fd, buf, sizeof(buf));
            if (n > 0) {
                g_string_append_len(bufs[i], buf, n);
            } else if (n == 0 || errno != EINTR) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
            }
        }
    }
    code = wait_pid_timeout(pid, MAX(0, (deadline - g_get_monotonic_time())
                                         / 1000));
    for (int i = 0; i < 2; i++) {
        if (pfd[i].fd >= 0) {
            close(pfd[i].fd);
        }
    }
    if (out) {
        *out = g_string_free(g_steal_pointer(&outbuf), FALSE);
    }
    if (err) {
        *err = g_string_free(g_steal_pointer(&errbuf), FALSE);
    }
    return code;
}
