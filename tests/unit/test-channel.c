/*
 * Migration transports (migration/channel-*.c), through the URIs users
 * give: exec:, file:, unix:, tcp:, fd:, and cancellation of stalled I/O.
 */
#include "qemu/osdep.h"
#include "migration/channel.h"
#include "migration/migration.h"
#include "free-port.h"
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static char *test_dir;

static char *tmp_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

static bool write_bytes(MigChannel *ch, const void *buf, size_t len,
                        Error **errp)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return mig_channel_writev_all(ch, &iov, 1, errp);
}

/* Everything until EOF; NULL on a read error. */
static GByteArray *read_all(MigChannel *ch, Error **errp)
{
    GByteArray *out = g_byte_array_new();
    uint8_t buf[4096];

    for (;;) {
        ssize_t n = mig_channel_read(ch, buf, sizeof(buf), errp);
        if (n < 0) {
            g_byte_array_unref(out);
            return NULL;
        }
        if (n == 0) {
            return out;
        }
        g_byte_array_append(out, buf, n);
    }
}

static void test_exec_cat_roundtrip(void)
{
    g_autofree char *path = tmp_path("exec-out");
    g_autofree char *uri = g_strdup_printf("exec:cat > %s", path);
    g_autofree char *in_uri = g_strdup_printf("exec:cat %s", path);
    static const char msg[] = "QEVM stream bytes";
    g_autofree char *content = NULL;

    MigChannel *ch = mig_channel_open_outgoing(uri, NULL, &error_abort);
    struct iovec iov[2] = {
        { .iov_base = (void *)msg, .iov_len = 5 },
        { .iov_base = (void *)(msg + 5), .iov_len = sizeof(msg) - 5 },
    };
    g_assert_true(mig_channel_writev_all(ch, iov, 2, &error_abort));
    g_assert_true(mig_channel_close(ch, &error_abort));
    g_assert_true(g_file_get_contents(path, &content, NULL, NULL));
    g_assert_cmpstr(content, ==, msg);

    ch = mig_channel_open_incoming(in_uri, NULL, &error_abort);
    g_autoptr(GByteArray) got = read_all(ch, &error_abort);
    g_assert_true(mig_channel_close(ch, &error_abort));
    g_assert_cmpmem(got->data, got->len, msg, sizeof(msg));
}

static void test_exec_false_fails(void)
{
    Error *err = NULL;
    MigChannel *ch = mig_channel_open_outgoing("exec:false", NULL,
                                               &error_abort);

    /* The write may or may not see EPIPE first; the close must fail. */
    write_bytes(ch, "x", 1, NULL);
    g_assert_false(mig_channel_close(ch, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "exited with status 1"));
    error_free(err);
}

static void test_exec_signal_named(void)
{
    Error *err = NULL;
    MigChannel *ch = mig_channel_open_outgoing("exec:kill -9 $$", NULL,
                                               &error_abort);

    g_assert_false(mig_channel_close(ch, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "killed by signal 9"));
    error_free(err);
}

static void test_exec_early_close_is_epipe(void)
{
    Error *err = NULL;
    g_autofree uint8_t *buf = g_malloc0(4 * MiB);
    MigChannel *ch = mig_channel_open_outgoing(
        "exec:head -c 8192 >/dev/null", NULL, &error_abort);

    g_assert_false(write_bytes(ch, buf, 4 * MiB, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Broken pipe"));
    error_free(err);
    mig_channel_abort(ch);
}

static void test_exec_abort_kills(void)
{
    g_autofree char *pidfile = g_build_filename(test_dir, "grandchild",
                                                NULL);
    g_autofree char *uri = g_strdup_printf(
        "exec:sleep 30 & echo $! > %s; wait", pidfile);
    g_autofree char *pid_text = NULL;
    gint64 start = g_get_monotonic_time();
    MigChannel *ch = mig_channel_open_outgoing(uri, NULL, &error_abort);

    while (!g_file_get_contents(pidfile, &pid_text, NULL, NULL) ||
           !strchr(pid_text, '\n')) {
        g_clear_pointer(&pid_text, g_free);
        g_usleep(10 * 1000);
    }
    mig_channel_abort(ch);
    /* What the shell started dies with it (the parent is then init). */
    pid_t grandchild = atoi(pid_text);
    for (int i = 0; i < 2000 && kill(grandchild, 0) == 0; i++) {
        g_autofree char *stat_path = g_strdup_printf("/proc/%d/stat",
                                                     grandchild);
        g_autofree char *stat = NULL;
        if (g_file_get_contents(stat_path, &stat, NULL, NULL) &&
            strstr(stat, ") Z ")) {
            break;      /* killed, waiting for init to reap it */
        }
        g_usleep(10 * 1000);
    }
    g_autofree char *stat_path = g_strdup_printf("/proc/%d/stat",
                                                 grandchild);
    g_autofree char *stat = NULL;
    g_assert_true(!g_file_get_contents(stat_path, &stat, NULL, NULL) ||
                  strstr(stat, ") Z "));
    unlink(pidfile);
    /*
     * Killed, not waited for: "sleep 30" would have taken 30 s.  A
     * generous bound below that, since a loaded machine is slow to
     * deliver and reap.
     */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 20 * G_USEC_PER_SEC);
    /* Reaped: no child of ours is left, zombie or not. */
    g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
    g_assert_cmpint(errno, ==, ECHILD);
}

static unsigned count_dir_entries(void)
{
    g_autoptr(GDir) dir = g_dir_open(test_dir, 0, NULL);
    unsigned n = 0;

    while (g_dir_read_name(dir)) {
        n++;
    }
    return n;
}

static void test_file_complete_or_absent(void)
{
    g_autofree char *path = tmp_path("snap.file");
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *content = NULL;
    gsize len;
    unsigned before = count_dir_entries();

    MigChannel *ch = mig_channel_open_outgoing(uri, NULL, &error_abort);
    g_assert_true(write_bytes(ch, "half", 4, &error_abort));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    mig_channel_abort(ch);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(count_dir_entries(), ==, before);

    ch = mig_channel_open_outgoing(uri, NULL, &error_abort);
    g_assert_true(write_bytes(ch, "whole", 5, &error_abort));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_true(mig_channel_close(ch, &error_abort));
    g_assert_true(g_file_get_contents(path, &content, &len, NULL));
    g_assert_cmpmem(content, len, "whole", 5);
    g_assert_cmpuint(count_dir_entries(), ==, before + 1);

    ch = mig_channel_open_incoming(uri, NULL, &error_abort);
    g_autoptr(GByteArray) got = read_all(ch, &error_abort);
    g_assert_cmpmem(got->data, got->len, "whole", 5);
    g_assert_true(mig_channel_close(ch, &error_abort));
    unlink(path);
}

static void test_file_missing(void)
{
    Error *err = NULL;

    g_assert_null(mig_channel_open_incoming("file:/nonexistent/x", NULL,
                                            &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "No such file"));
    error_free(err);
}

typedef struct Sender {
    char *uri;
    size_t len;
    bool ok;
} Sender;

static gpointer sender_thread(gpointer opaque)
{
    Sender *snd = opaque;
    g_autofree uint8_t *buf = g_malloc(snd->len);

    for (size_t i = 0; i < snd->len; i++) {
        buf[i] = i * 7;
    }
    MigChannel *ch = mig_channel_open_outgoing(snd->uri, NULL, &error_abort);
    snd->ok = write_bytes(ch, buf, snd->len, &error_abort) &&
              mig_channel_close(ch, &error_abort);
    return NULL;
}

/* Listen on @uri, send 3 MiB from a thread, check every byte. */
static void socket_roundtrip(const char *uri)
{
    Sender snd = { .uri = (char *)uri, .len = 3 * MiB };
    MigChannel *in = mig_channel_open_incoming(uri, NULL, &error_abort);
    GThread *t = g_thread_new("sender", sender_thread, &snd);
    g_autoptr(GByteArray) got = read_all(in, &error_abort);

    g_thread_join(t);
    g_assert_true(snd.ok);
    g_assert_true(mig_channel_close(in, &error_abort));
    g_assert_cmpuint(got->len, ==, snd.len);
    for (size_t i = 0; i < got->len; i++) {
        if (got->data[i] != (uint8_t)(i * 7)) {
            g_assert_cmpuint(i, ==, got->len);   /* report where */
        }
    }
}

static void test_unix_socket(void)
{
    g_autofree char *path = tmp_path("mig.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);

    socket_roundtrip(uri);
    /* The listening socket's path is gone once connected. */
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
}

static void test_tcp_socket(void)
{
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d",
                                           test_free_tcp_port());
    socket_roundtrip(uri);
}

static void test_unreachable(void)
{
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d",
                                           test_free_tcp_port());
    Error *err = NULL;

    g_assert_null(mig_channel_open_outgoing(uri, NULL, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "Connection refused"));
    error_free_or_abort(&err);
    g_assert_null(mig_channel_open_outgoing("unix:/nonexistent/s", NULL,
                                            &err));
    error_free(err);
}

static void test_fd_named_and_numeric(void)
{
    MigFdStore *store = mig_fd_store_new();
    int sv[2];
    Error *err = NULL;
    char buf[8];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_false(mig_fd_store_add(store, "1bad", sv[0], &err));
    error_free_or_abort(&err);
    g_assert_true(mig_fd_store_add(store, "mig", sv[0], &error_abort));
    g_assert_true(mig_uri_check("fd:mig", store, &error_abort));
    g_assert_false(mig_uri_check("fd:other", store, &err));
    error_free_or_abort(&err);

    MigChannel *ch = mig_channel_open_outgoing("fd:mig", store, &error_abort);
    /* Taken: a second use of the name fails, as in QEMU. */
    g_assert_false(mig_fd_store_has(store, "mig"));
    g_assert_true(write_bytes(ch, "fdpass", 6, &error_abort));
    g_assert_true(mig_channel_close(ch, &error_abort));
    g_assert_cmpint(read(sv[1], buf, sizeof(buf)), ==, 6);
    g_assert_cmpmem(buf, 6, "fdpass", 6);

    g_autofree char *num_uri = g_strdup_printf("fd:%d", sv[1]);
    ch = mig_channel_open_incoming(num_uri, store, &error_abort);
    g_autoptr(GByteArray) got = read_all(ch, &error_abort);
    g_assert_cmpuint(got->len, ==, 0);     /* peer closed: EOF */
    g_assert_true(mig_channel_close(ch, &error_abort));

    g_assert_false(mig_fd_store_close(store, "nothere", &err));
    error_free_or_abort(&err);
    mig_fd_store_free(store);
}

static void test_unknown_uri(void)
{
    Error *err = NULL;

    g_assert_null(mig_channel_open_outgoing("rdma:x", NULL, &err));
    g_assert_nonnull(strstr(error_get_pretty(err),
                            "Unknown migration protocol"));
    error_free_or_abort(&err);
    g_assert_null(mig_channel_open_outgoing("exec:", NULL, &err));
    error_free_or_abort(&err);
}

typedef struct Stalled {
    MigChannel *ch;
    bool is_read;
    bool result;
    Error *err;
} Stalled;

static gpointer stalled_thread(gpointer opaque)
{
    Stalled *st = opaque;
    g_autofree uint8_t *buf = g_malloc0(64 * MiB);

    if (st->is_read) {
        st->result = mig_channel_read(st->ch, buf, 4096, &st->err) >= 0;
    } else {
        st->result = write_bytes(st->ch, buf, 64 * MiB, &st->err);
    }
    return NULL;
}

/* A thread blocked on I/O that will never progress returns on cancel. */
static void cancel_unblocks(MigChannel *ch, bool is_read)
{
    Stalled st = { .ch = ch, .is_read = is_read };
    GThread *t = g_thread_new("stalled", stalled_thread, &st);

    g_usleep(200 * 1000);
    gint64 start = g_get_monotonic_time();
    mig_channel_cancel(ch);
    g_thread_join(t);
    /*
     * The point is that cancel unblocks the call instead of leaving it
     * stalled, not how fast: a loaded machine took 1.1 s.  The bound stays
     * below the 30 s after which "sleep 30" would end the stall by itself,
     * and the error must still say "cancelled", not "Broken pipe".
     */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 20 * G_USEC_PER_SEC);
    g_assert_false(st.result);
    g_assert_nonnull(strstr(error_get_pretty(st.err), "cancelled"));
    error_free(st.err);
    mig_channel_abort(ch);
}

static void test_cancel_stalled_write(void)
{
    /* sleep never reads: the pipe fills after 64 KiB and writev blocks. */
    cancel_unblocks(mig_channel_open_outgoing("exec:sleep 30", NULL,
                                              &error_abort), false);
}

static void test_cancel_accept(void)
{
    g_autofree char *path = tmp_path("never.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", path);

    cancel_unblocks(mig_channel_open_incoming(uri, NULL, &error_abort),
                    true);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* As snapvm does (migration_init): EPIPE, not death, on a gone peer. */
    signal(SIGPIPE, SIG_IGN);
    test_dir = g_dir_make_tmp("test-channel-XXXXXX", NULL);

    g_test_add_func("/channel/exec/cat-roundtrip", test_exec_cat_roundtrip);
    g_test_add_func("/channel/exec/false-fails-close",
                    test_exec_false_fails);
    g_test_add_func("/channel/exec/signal-named", test_exec_signal_named);
    g_test_add_func("/channel/exec/early-close-is-epipe",
                    test_exec_early_close_is_epipe);
    g_test_add_func("/channel/exec/abort-kills-and-reaps",
                    test_exec_abort_kills);
    g_test_add_func("/channel/file/complete-or-absent",
                    test_file_complete_or_absent);
    g_test_add_func("/channel/file/missing", test_file_missing);
    g_test_add_func("/channel/unix/roundtrip", test_unix_socket);
    g_test_add_func("/channel/tcp/roundtrip", test_tcp_socket);
    g_test_add_func("/channel/unreachable", test_unreachable);
    g_test_add_func("/channel/fd/named-and-numeric",
                    test_fd_named_and_numeric);
    g_test_add_func("/channel/uri/unknown", test_unknown_uri);
    g_test_add_func("/channel/cancel/stalled-write",
                    test_cancel_stalled_write);
    g_test_add_func("/channel/cancel/accept", test_cancel_accept);

    int ret = g_test_run();
    rmdir(test_dir);
    g_free(test_dir);
    return ret;
}
