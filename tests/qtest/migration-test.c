/*
 * Migration end to end: a guest saved with each transport (live pre-copy
 * or stop-and-copy) and restored in a second snapvm process, whose RAM
 * and registers must equal the source's at the moment it stopped, and
 * which then runs on.  Then every way a migration can go wrong: each one
 * leaves the source as it was, with query-migrate saying why, and a bad
 * stream makes the target refuse it and exit with status 1.
 */
#include "libqtest.h"
#include "snap-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM_MB 64

static QTestState *start_target(const SnapVM *cfg)
{
    g_autofree char *args = snap_vm_args(cfg);
    QTestState *qts = qtest_initf("%s -incoming defer -S", args);

    qtest_qmp_assert_success(qts, "{'execute': 'migrate-set-capabilities',"
                             " 'arguments': {'capabilities': ["
                             "{'capability': 'events', 'state': true}]}}");
    return qts;
}

static void wait_migration_status(QTestState *qts, const char *want)
{
    for (int i = 0; i < 6000; i++) {
        g_autoptr(JsonObject) info = snap_query_migrate(qts);
        if (!strcmp(snap_status(info), want)) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("migration never reached status %s", want);
}

static void migrate_incoming(QTestState *qts, const char *uri)
{
    g_autofree char *quoted = qtest_json_quote(uri);
    json_node_unref(qtest_qmp_assert_success(
        qts, "{'execute': 'migrate-incoming', 'arguments': {'uri': %s}}",
        quoted));
}

static char *dump_ram(QTestState *qts, const char *name)
{
    char *path = g_build_filename(qtest_tmpdir(qts), name, NULL);
    g_autofree char *quoted = qtest_json_quote(path);

    json_node_unref(qtest_qmp_assert_success(
        qts, "{'execute': 'pmemsave', 'arguments': {'val': 0, 'size': %d,"
        " 'filename': %s}}", RAM_MB << 20, quoted));
    return path;
}

static char *cpu_registers(QTestState *qts, int cpu)
{
    JsonNode *ret = qtest_qmp_assert_success(
        qts, "{'execute': 'human-monitor-command', 'arguments': "
        "{'command-line': 'info registers', 'cpu-index': %d}}", cpu);
    char *text = g_strdup(json_node_get_string(ret));
    json_node_unref(ret);
    return text;
}

/* The target holds exactly the source's RAM and registers. */
static void assert_same_state(QTestState *src, QTestState *dst, int smp)
{
    g_autofree char *src_path = dump_ram(src, "src.ram");
    g_autofree char *dst_path = dump_ram(dst, "dst.ram");
    g_autofree char *a = NULL, *b = NULL;
    gsize alen, blen;

    g_assert_true(g_file_get_contents(src_path, &a, &alen, NULL));
    g_assert_true(g_file_get_contents(dst_path, &b, &blen, NULL));
    g_assert_cmpuint(alen, ==, (gsize)RAM_MB << 20);
    g_assert_cmpuint(alen, ==, blen);
    if (memcmp(a, b, alen)) {
        gsize i = 0;
        while (a[i] == b[i]) {
            i++;
        }
        g_error("guest RAM differs first at 0x%zx", i);
    }
    for (int cpu = 0; cpu < smp; cpu++) {
        g_autofree char *ra = cpu_registers(src, cpu);
        g_autofree char *rb = cpu_registers(dst, cpu);
        g_assert_cmpstr(ra, ==, rb);
    }
}

/* The restored guest goes on: its serial output grows after cont. */
static void assert_runs_on(QTestState *dst)
{
    gsize before = qtest_serial_size(dst);

    json_node_unref(qtest_qmp_assert_success(dst, "{'execute': 'cont'}"));
    snap_assert_run_state(dst, "running");
    for (int i = 0; i < 1000 && qtest_serial_size(dst) == before; i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(qtest_serial_size(dst), >, before);
}

typedef enum Transport {
    T_FILE,
    T_EXEC,
    T_UNIX,
    T_TCP,
    T_FD_SOCKET,    /* fd: on both ends of a socketpair */
    T_FD_FILE,      /* fd: to a file, then fd: from it */
} Transport;

typedef struct RoundTrip {
    const char *name;
    SnapVM vm;
    Transport transport;
    bool paused;            /* stop-and-copy of a stopped guest */
} RoundTrip;

static int open_file(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);

    if (fd < 0) {
        g_error("open %s: %s", path, g_strerror(errno));
    }
    return fd;
}

/* Hand @fd to snapvm under @name with getfd, and close our copy. */
static void pass_fd(QTestState *qts, const char *name, int fd)
{
    g_autoptr(JsonObject) reply = qtest_qmp_fds(
        qts, &fd, 1, "{'execute': 'getfd', 'arguments': {'fdname': '%s'}}",
        name);

    close(fd);
    if (!json_object_has_member(reply, "return")) {
        g_error("getfd %s failed: %s", name,
                qtest_reply_error_desc(reply, "GenericError"));
    }
}

/*
 * snapvm is back to @want open descriptors: a finished migration closed
 * its channel.  The bound only keeps a leak from hanging the test.
 */
static void assert_fd_count_returns_to(QTestState *qts, int want)
{
    for (int i = 0; i < 2000 && qtest_open_fd_count(qts) != want; i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpint(qtest_open_fd_count(qts), ==, want);
}

static void test_roundtrip(gconstpointer opaque)
{
    const RoundTrip *rt = opaque;
    QTestState *src = snap_start(&rt->vm, NULL);
    QTestState *dst = start_target(&rt->vm);
    g_autofree char *file = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    g_autofree char *out_uri = NULL, *in_uri = NULL;
    int sv[2] = { -1, -1 };
    int src_fds = qtest_open_fd_count(src);
    int dst_fds = qtest_open_fd_count(dst);

    switch (rt->transport) {
    case T_FILE:
        out_uri = g_strdup_printf("file:%s", file);
        in_uri = g_strdup(out_uri);
        break;
    case T_EXEC:
        out_uri = g_strdup_printf("exec:cat > '%s'", file);
        in_uri = g_strdup_printf("exec:cat '%s'", file);
        break;
    case T_UNIX:
        in_uri = g_strdup_printf("unix:%s/mig.sock", qtest_tmpdir(dst));
        out_uri = g_strdup(in_uri);
        break;
    case T_TCP:
        in_uri = g_strdup_printf("tcp:127.0.0.1:%d", test_free_tcp_port());
        out_uri = g_strdup(in_uri);
        break;
    case T_FD_SOCKET:
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                   sv), ==, 0);
        pass_fd(src, "mig-out", sv[0]);
        pass_fd(dst, "mig-in", sv[1]);
        out_uri = g_strdup("fd:mig-out");
        in_uri = g_strdup("fd:mig-in");
        break;
    case T_FD_FILE:
        pass_fd(src, "mig-out", open_file(file, O_WRONLY | O_CREAT |
                                          O_TRUNC));
        out_uri = g_strdup("fd:mig-out");
        in_uri = g_strdup("fd:mig-in");
        break;
    }
    if (rt->transport == T_FD_SOCKET || rt->transport == T_FD_FILE) {
        /* snapvm holds the descriptor now; the count below must drop it. */
        g_assert_cmpint(qtest_open_fd_count(src), ==, src_fds + 1);
    }

    snap_set_params(src, -1, 0);
    if (rt->paused) {
        json_node_unref(qtest_qmp_assert_success(src,
                                                 "{'execute': 'stop'}"));
    }
    /* A file is written first; a socket target listens first. */
    bool stream_first = rt->transport == T_FILE || rt->transport == T_EXEC ||
                        rt->transport == T_FD_FILE;
    if (!stream_first) {
        migrate_incoming(dst, in_uri);
    }
    snap_migrate(src, out_uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    snap_assert_run_state(src, "postmigrate");
    if (stream_first) {
        if (rt->transport == T_FD_FILE) {
            /* Only now is the file complete. */
            pass_fd(dst, "mig-in", open_file(file, O_RDONLY));
        }
        migrate_incoming(dst, in_uri);
    }
    g_autoptr(JsonObject) dinfo = snap_wait_end(dst, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(dinfo), ==, "completed");
    snap_assert_run_state(dst, "paused");

    assert_fd_count_returns_to(src, src_fds);
    assert_fd_count_returns_to(dst, dst_fds);

    assert_same_state(src, dst, rt->vm.smp);
    assert_runs_on(dst);
    qtest_quit(dst);
    qtest_quit(src);
}

/* Pre-copy against a guest that rewrites all its RAM converges. */
static void test_precopy_converges(void)
{
    SnapVM vm = { "a-b-sweep", 1, RAM_MB, false };
    QTestState *src = snap_start(&vm, NULL);
    g_autofree char *uri = g_strdup_printf("exec:cat > %s/vm.snap",
                                           qtest_tmpdir(src));

    qtest_qmp_assert_success(src, "{'execute': 'migrate-set-capabilities',"
                             " 'arguments': {'capabilities': ["
                             "{'capability': 'events', 'state': true}]}}");
    json_node_unref(qtest_qmp_assert_success(src,
        "{'execute': 'migrate-set-parameters', 'arguments': "
        "{'max-bandwidth': 0, 'downtime-limit': 1000}}"));
    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    JsonObject *ram = json_object_get_object_member(info, "ram");
    g_assert_cmpint(json_object_get_int_member(ram, "dirty-sync-count"),
                    >=, 2);
    g_assert_true(json_object_get_boolean_member(info,
                                                 "x-precopy-converged"));
    /*
     * Converged means the last pass was predicted to fit the limit at
     * the measured bandwidth; the downtime actually seen depends on the
     * host's load, so it is only reported (bench/ holds the figures).
     */
    g_assert_cmpint(json_object_get_int_member(info, "downtime"), >, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "remaining"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "total"), ==,
                    RAM_MB << 20);
    /* Events: setup, active, completed, in that order. */
    const char *want[] = { "setup", "active", "completed" };
    for (int i = 0; i < 3; i++) {
        g_autoptr(JsonObject) ev = qtest_qmp_eventwait(src, "MIGRATION",
                                                       5000);
        g_assert_nonnull(ev);
        g_assert_cmpstr(json_object_get_string_member(
            json_object_get_object_member(ev, "data"), "status"), ==,
            want[i]);
    }
    qtest_quit(src);
}

/* A failed migration leaves the source as it was, and says why. */
static void check_failure(const char *uri, const char *why)
{
    SnapVM vm = { "a-b-sweep", 1, RAM_MB, false };
    QTestState *src = snap_start(&vm, NULL);

    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "failed");
    g_assert_true(json_object_has_member(info, "error-desc"));
    const char *desc = json_object_get_string_member(info, "error-desc");
    if (!strstr(desc, why)) {
        g_error("error-desc '%s' does not mention '%s'", desc, why);
    }
    snap_assert_run_state(src, "running");
    gsize before = qtest_serial_size(src);
    g_assert_true(qtest_serial_wait(src, "B", 10000));
    for (int i = 0; i < 1000 && qtest_serial_size(src) == before; i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(qtest_serial_size(src), >, before);
    /* A second migration afterwards works. */
    g_autofree char *ok_uri = g_strdup_printf("file:%s/after.snap",
                                              qtest_tmpdir(src));
    snap_set_params(src, -1, 0);
    snap_migrate(src, ok_uri);
    g_autoptr(JsonObject) again = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(again), ==, "completed");
    qtest_quit(src);
}

static void test_fail_exec_false(void)
{
    check_failure("exec:false", "exited with status 1");
}

static void test_fail_target_closes_early(void)
{
    check_failure("exec:head -c 8192 >/dev/null", "Broken pipe");
}

static void test_fail_unreachable(void)
{
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d",
                                           test_free_tcp_port());
    check_failure(uri, "Connection refused");
}

static void test_fail_unix_absent(void)
{
    check_failure("unix:/nonexistent/mig.sock", "No such file");
}

/* Slow enough (2 MiB/s) to be caught while it runs. */
static QTestState *start_slow_migration(const char **file_out,
                                        bool paused)
{
    SnapVM vm = { "a-b-sweep", 1, RAM_MB, false };
    QTestState *src = snap_start(&vm, NULL);
    static char file[512];

    if (paused) {
        json_node_unref(qtest_qmp_assert_success(src,
                                                 "{'execute': 'stop'}"));
    }
    g_snprintf(file, sizeof(file), "%s/slow.snap", qtest_tmpdir(src));
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    snap_set_params(src, -1, 2 * SNAP_MiB);
    snap_migrate(src, uri);
    *file_out = file;
    return src;
}

static void check_cancelled(QTestState *src, const char *file,
                            const char *run_state)
{
    json_node_unref(qtest_qmp_assert_success(src,
                                             "{'execute': 'migrate_cancel'}"));
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "cancelled");
    snap_assert_run_state(src, run_state);
    /* A snapshot to file: is complete or absent. */
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
}

static void test_cancel_in_setup(void)
{
    const char *file;
    QTestState *src = start_slow_migration(&file, false);

    check_cancelled(src, file, "running");
    qtest_quit(src);
}

static void test_cancel_active(void)
{
    const char *file;
    QTestState *src = start_slow_migration(&file, false);

    wait_migration_status(src, "active");
    g_usleep(300 * 1000);
    /* While one runs: a second migrate and option changes are refused. */
    g_autoptr(JsonObject) r1 = qtest_qmp(src, "{'execute': 'migrate', "
                                         "'arguments': {'uri': 'exec:cat'}}");
    g_assert_nonnull(strstr(qtest_reply_error_desc(r1, "GenericError"),
                            "in progress"));
    g_autoptr(JsonObject) r2 = qtest_qmp(
        src, "{'execute': 'migrate-set-parameters', "
        "'arguments': {'downtime-limit': 10}}");
    g_assert_nonnull(strstr(qtest_reply_error_desc(r2, "GenericError"),
                            "in progress"));
    check_cancelled(src, file, "running");
    qtest_quit(src);
}

static void test_cancel_paused_guest(void)
{
    const char *file;
    QTestState *src = start_slow_migration(&file, true);

    wait_migration_status(src, "active");
    check_cancelled(src, file, "paused");
    qtest_quit(src);
}

/* quit while a migration runs: snapvm cancels it and exits cleanly. */
static void test_quit_during_migration(void)
{
    const char *file;
    QTestState *src = start_slow_migration(&file, false);

    wait_migration_status(src, "active");
    qtest_qmp_send(src, "{'execute': 'quit'}");
    g_assert_cmpint(qtest_wait_exit(src, 20000), ==, 0);
}

/* Save a 64 MiB guest, stopped, to a file; returns its path. */
static char *save_snapshot(QTestState *src)
{
    char *file = g_build_filename(qtest_tmpdir(src), "good.snap", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    json_node_unref(qtest_qmp_assert_success(src, "{'execute': 'stop'}"));
    snap_set_params(src, -1, 0);
    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    return file;
}

static void check_target_refuses(const char *args, const char *why)
{
    g_autofree char *err = NULL;
    int status = qtest_run(args, 60000, NULL, &err);

    g_assert_cmpint(status, ==, 1);
    if (!strstr(err, why)) {
        g_error("stderr '%s' does not explain '%s'", err, why);
    }
}

static void test_bad_streams(void)
{
    SnapVM vm = { "a-b-sweep", 1, RAM_MB, false };
    QTestState *src = snap_start(&vm, NULL);
    g_autofree char *good = save_snapshot(src);
    g_autofree char *trunc = g_build_filename(qtest_tmpdir(src),
                                              "trunc.snap", NULL);
    g_autofree char *content = NULL;
    gsize len;

    g_assert_true(g_file_get_contents(good, &content, &len, NULL));
    g_assert_true(g_file_set_contents(trunc, content, len / 2, NULL));

    g_autofree char *a1 = g_strdup_printf("-m %dM -incoming file:%s",
                                          RAM_MB, trunc);
    check_target_refuses(a1, "load of migration failed");
    check_target_refuses(a1, "offset");
    g_autofree char *a2 = g_strdup_printf("-m %dM -incoming file:%s",
                                          RAM_MB * 2, good);
    check_target_refuses(a2, "pc.ram");
    g_autofree char *a3 = g_strdup_printf("-m %dM -incoming exec:'cat %s'",
                                          RAM_MB, trunc);
    check_target_refuses(a3, "offset");
    check_target_refuses("-m 64M -incoming file:/nonexistent/vm.snap",
                         "No such file");
    qtest_quit(src);
}

static void test_options(void)
{
    QTestState *qts = qtest_init("-m 32M -S");
    JsonNode *ret;

    ret = qtest_qmp_assert_success(qts,
                                   "{'execute': 'query-migrate-parameters'}");
    JsonObject *p = json_node_get_object(ret);
    g_assert_cmpint(json_object_get_int_member(p, "downtime-limit"), ==, 300);
    g_assert_cmpint(json_object_get_int_member(p, "max-bandwidth"), ==,
                    128 << 20);
    json_node_unref(ret);

    g_autoptr(JsonObject) r1 = qtest_qmp(
        qts, "{'execute': 'migrate-set-parameters', "
        "'arguments': {'downtime-limit': 2000001}}");
    g_assert_nonnull(strstr(qtest_reply_error_desc(r1, "GenericError"),
                            "downtime_limit"));
    g_autoptr(JsonObject) r2 = qtest_qmp(
        qts, "{'execute': 'migrate-set-capabilities', 'arguments': "
        "{'capabilities': [{'capability': 'no-such', 'state': true}]}}");
    qtest_reply_error_desc(r2, "GenericError");
    g_autoptr(JsonObject) r3 = qtest_qmp(qts, "{'execute': 'migrate', "
                                         "'arguments': {'uri': 'rdma:x'}}");
    g_assert_nonnull(strstr(qtest_reply_error_desc(r3, "GenericError"),
                            "Unknown migration protocol"));
    g_autoptr(JsonObject) r4 = qtest_qmp(
        qts, "{'execute': 'migrate-incoming', 'arguments': {'uri': 'x'}}");
    g_assert_nonnull(strstr(qtest_reply_error_desc(r4, "GenericError"),
                            "-incoming"));
    g_autoptr(JsonObject) r5 = qtest_qmp(qts, "{'execute': 'closefd', "
                                         "'arguments': {'fdname': 'x'}}");
    qtest_reply_error_desc(r5, "GenericError");

    /* HMP sets the same state. */
    g_autofree char *o1 = qtest_hmp(qts, "migrate_set_parameter "
                                    "downtime-limit 123");
    g_autofree char *o2 = qtest_hmp(qts, "migrate_set_capability events on");
    g_autofree char *o3 = qtest_hmp(qts, "info migrate_parameters");
    g_autofree char *o4 = qtest_hmp(qts, "info migrate_capabilities");
    /* A setting that took prints nothing. */
    g_assert_cmpstr(o1, ==, "");
    g_assert_cmpstr(o2, ==, "");
    g_assert_nonnull(strstr(o3, "downtime-limit: 123 ms"));
    g_assert_nonnull(strstr(o4, "events: on"));
    g_assert_nonnull(strstr(o4, "background-snapshot: off"));
    qtest_quit(qts);
}

static const RoundTrip roundtrips[] = {
    { "/migration/roundtrip/file/live/a-b-sweep/smp1",
      { "a-b-sweep", 1, RAM_MB, false }, T_FILE, false },
    { "/migration/roundtrip/file/paused/a-b-sweep/smp2-two-blocks",
      { "a-b-sweep", 2, RAM_MB, true }, T_FILE, true },
    { "/migration/roundtrip/exec/live/random-writer/smp2",
      { "random-writer", 2, RAM_MB, false }, T_EXEC, false },
    { "/migration/roundtrip/unix/live/a-b-sweep/smp2-two-blocks",
      { "a-b-sweep", 2, RAM_MB, true }, T_UNIX, false },
    { "/migration/roundtrip/tcp/paused/random-writer/smp1-two-blocks",
      { "random-writer", 1, RAM_MB, true }, T_TCP, true },
    { "/migration/roundtrip/fd-socket/live/a-b-sweep/smp1",
      { "a-b-sweep", 1, RAM_MB, false }, T_FD_SOCKET, false },
    { "/migration/roundtrip/fd-file/live/random-writer/smp2-two-blocks",
      { "random-writer", 2, RAM_MB, true }, T_FD_FILE, false },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(roundtrips); i++) {
        g_test_add_data_func(roundtrips[i].name, &roundtrips[i],
                             test_roundtrip);
    }
    g_test_add_func("/migration/precopy/converges-under-downtime-limit",
                    test_precopy_converges);
    g_test_add_func("/migration/fail/exec-false", test_fail_exec_false);
    g_test_add_func("/migration/fail/target-closes-early",
                    test_fail_target_closes_early);
    g_test_add_func("/migration/fail/tcp-unreachable", test_fail_unreachable);
    g_test_add_func("/migration/fail/unix-absent", test_fail_unix_absent);
    g_test_add_func("/migration/cancel/setup", test_cancel_in_setup);
    g_test_add_func("/migration/cancel/active", test_cancel_active);
    g_test_add_func("/migration/cancel/paused-guest",
                    test_cancel_paused_guest);
    g_test_add_func("/migration/quit-during-migration",
                    test_quit_during_migration);
    g_test_add_func("/migration/incoming/refuses-bad-streams",
                    test_bad_streams);
    g_test_add_func("/migration/options", test_options);
    return g_test_run();
}
