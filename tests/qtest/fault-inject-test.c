/*
 * Every failure of a background snapshot is safe (issue 7): break it on
 * purpose, everywhere it can break, and check what must hold after.
 *
 * Countdowns: for each kind of failable call (include/qemu/fault-inject.h)
 * and N = 1, 2, 3, ..., a fresh snapvm fails the Nth call of that kind
 * (SNAPVM_FAULT_INJECT=kind:N) while an a-b-sweep guest is snapshotted,
 * until a run never reaches the Nth call.  After each injected failure:
 * the guest runs, no guest page is write-protected, query-migrate says
 * "failed" naming the step, no thread or descriptor leaked, and the next
 * snapshot in the same process completes and is exact.
 *
 * The same countdowns over a live pre-copy migration (no
 * background-snapshot) walk the dirty tracker's calls: it opens,
 * registers and write-protects through util/userfaultfd.c and reads
 * pagemap, so a failure there must leave the guest running, nothing
 * protected, nothing leaked, and the next migration exact.
 *
 * The suite caps N at SNAPVM_FAULT_COUNTDOWN_MAX (default 3; 2 with ASan,
 * 1 with TSan, so the file stays within its time budget);
 * SNAPVM_FAULT_COUNTDOWN_MAX=0 walks every N until the snapshot succeeds
 * (the long run, docs/devel/testing.md).
 *
 * Targets that fail without injection: a full tmpfs (ENOSPC), an exec:
 * command killed mid-stream, a unix peer that closes after 4 KiB, and a
 * unix peer that stalls, which migrate_cancel must still end promptly.
 */
#include "snap-util.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define RAM_MB 32
/*
 * Sanitized builds run 2-3 times slower (ThreadSanitizer 5-10 times):
 * walk less of each countdown.
 */
#if defined(__SANITIZE_THREAD__)
#define DEFAULT_COUNTDOWN_MAX 1
#elif defined(__SANITIZE_ADDRESS__)
#define DEFAULT_COUNTDOWN_MAX 2
#else
#define DEFAULT_COUNTDOWN_MAX 3
#endif

typedef struct CountdownCase {
    const char *kind;
    /* A substring of the error a failure of this kind must report. */
    const char *step;
    int smp;
    bool exec_target;       /* exec: instead of file: (spawns a process) */
    bool precopy;           /* a live pre-copy, not a background snapshot */
} CountdownCase;

typedef struct CountdownTotals {
    unsigned runs, injected, at_capability, completed_after_fault;
} CountdownTotals;

static CountdownTotals totals;

static unsigned countdown_max(void)
{
    const char *env = g_getenv("SNAPVM_FAULT_COUNTDOWN_MAX");

    return env ? (unsigned)g_ascii_strtoull(env, NULL, 10)
               : DEFAULT_COUNTDOWN_MAX;
}

static unsigned log_lines(const char *path)
{
    g_autofree char *text = NULL;
    unsigned n = 0;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    for (const char *p = text; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

static void assert_names_step(const CountdownCase *c, const char *desc,
                              unsigned n)
{
    if (!strstr(desc, c->step)) {
        g_error("%s:%u: error '%s' does not name the step ('%s')", c->kind,
                n, desc, c->step);
    }
}

/*
 * One run of the countdown.  Returns false once the Nth call was not
 * reached at all: the countdown is over.
 */
static bool countdown_run(const CountdownCase *c, unsigned n,
                          const char *dir)
{
    SnapVM vm = { "a-b-sweep", c->smp, RAM_MB };
    g_autofree char *log = g_build_filename(dir, "fault.log", NULL);
    g_autofree char *file = g_build_filename(dir, "vm.snap", NULL);
    g_autofree char *spec = g_strdup_printf("SNAPVM_FAULT_INJECT=%s:%u",
                                            c->kind, n);
    g_autofree char *logenv = g_strdup_printf("SNAPVM_FAULT_INJECT_LOG=%s",
                                              log);
    const char *env[] = { spec, logenv, NULL };
    g_autofree char *uri = c->exec_target ?
        g_strdup_printf("exec:cat > '%s'", file) :
        g_strdup_printf("file:%s", file);
    bool hit;

    g_unlink(log);
    g_unlink(file);
    QTestState *src = snap_start(&vm, env);
    totals.runs++;

    /* The capability probes userfaultfd: the fault may strike there. */
    g_autoptr(JsonObject) cap = snap_try_set_capability(src, true);
    if (!json_object_has_member(cap, "return")) {
        g_assert_cmpuint(log_lines(log), ==, 1);
        assert_names_step(c, qtest_reply_error_desc(cap, "GenericError"), n);
        totals.injected++;
        totals.at_capability++;
        snap_assert_guest_runs(src);
        snap_set_capability(src, true);
    }
    /* A copy buffer smaller than the guest: both fault paths run. */
    snap_set_params(src, 4 * SNAP_MiB, 0);
    unsigned hits_before = log_lines(log);
    int threads = snap_thread_count(src);
    int fds = qtest_open_fd_count(src);

    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    unsigned hits = log_lines(log);
    hit = hits > 0;
    g_assert_cmpuint(hits, <=, 1);
    const char *status = snap_status(info);

    if (hits == hits_before) {
        /* Not reached during the snapshot: it must simply work. */
        if (strcmp(status, "completed")) {
            g_error("%s:%u not reached, yet the snapshot %s: %s", c->kind,
                    n, status, snap_error_desc(info));
        }
    } else if (!strcmp(status, "failed")) {
        assert_names_step(c, snap_error_desc(info), n);
        totals.injected++;
        /* A file: target is complete or absent. */
        if (!c->exec_target) {
            g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
        }
    } else {
        /*
         * The fault struck where the snapshot no longer depends on the
         * call (tear-down after the last byte): the file must be whole.
         */
        g_assert_cmpstr(status, ==, "completed");
        totals.injected++;
        totals.completed_after_fault++;
        if (g_test_verbose()) {
            g_printerr("# %s:%u reached after the stream was complete\n",
                       c->kind, n);
        }
    }
    if (g_test_verbose()) {
        g_printerr("# %s:%u smp%d: %s%s%s\n", c->kind, n, c->smp, status,
                   *snap_error_desc(info) ? ": " : "", snap_error_desc(info));
    }

    /* Whatever happened, the guest is safe and nothing leaked. */
    snap_assert_guest_runs(src);
    snap_assert_nothing_protected(src);
    snap_assert_no_leak(src, threads, fds);
    if (!strcmp(status, "completed")) {
        snap_restore_and_check(&vm, file);
    }
    if (hit) {
        /* The next snapshot of the same process works and is exact. */
        snap_snapshot_and_check(src, &vm, file);
    }
    qtest_quit(src);
    return hit;
}

/*
 * One run of a pre-copy countdown.  A completed pre-copy leaves the
 * guest stopped (postmigrate): only a failed one must leave it running.
 */
static bool countdown_run_precopy(const CountdownCase *c, unsigned n,
                                  const char *dir)
{
    SnapVM vm = { "a-b-sweep", c->smp, RAM_MB };
    g_autofree char *log = g_build_filename(dir, "fault.log", NULL);
    g_autofree char *file = g_build_filename(dir, "vm.snap", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    g_autofree char *spec = g_strdup_printf("SNAPVM_FAULT_INJECT=%s:%u",
                                            c->kind, n);
    g_autofree char *logenv = g_strdup_printf("SNAPVM_FAULT_INJECT_LOG=%s",
                                              log);
    const char *env[] = { spec, logenv, NULL };

    g_unlink(log);
    g_unlink(file);
    QTestState *src = snap_start(&vm, env);
    totals.runs++;
    int threads = snap_thread_count(src);
    int fds = qtest_open_fd_count(src);

    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    unsigned hits = log_lines(log);
    const char *status = snap_status(info);

    g_assert_cmpuint(hits, <=, 1);
    if (g_test_verbose()) {
        g_printerr("# pre-copy %s:%u smp%d: %s%s%s\n", c->kind, n, c->smp,
                   status, *snap_error_desc(info) ? ": " : "",
                   snap_error_desc(info));
    }
    snap_assert_nothing_protected(src);
    snap_assert_no_leak(src, threads, fds);
    if (!strcmp(status, "completed")) {
        /* Not reached, or only in the tear-down: the file is exact. */
        totals.injected += hits;
        totals.completed_after_fault += hits;
        snap_restore_and_check(&vm, file);
        qtest_quit(src);
        return hits > 0;
    }
    g_assert_cmpstr(status, ==, "failed");
    g_assert_cmpuint(hits, ==, 1);
    assert_names_step(c, snap_error_desc(info), n);
    totals.injected++;
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    /* The next migration of the same process works and is exact. */
    snap_migrate(src, uri);
    g_autoptr(JsonObject) again = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    if (strcmp(snap_status(again), "completed")) {
        g_error("pre-copy after %s:%u: %s (%s)", c->kind, n,
                snap_status(again), snap_error_desc(again));
    }
    snap_assert_nothing_protected(src);
    snap_restore_and_check(&vm, file);
    qtest_quit(src);
    return true;
}

static void test_countdown(gconstpointer opaque)
{
    const CountdownCase *c = opaque;
    unsigned max = countdown_max();
    g_autofree char *dir = g_dir_make_tmp("fault-inject-XXXXXX", NULL);
    unsigned n;

    g_assert_nonnull(dir);
    for (n = 1; max == 0 || n <= max; n++) {
        if (!(c->precopy ? countdown_run_precopy : countdown_run)(c, n,
                                                                 dir)) {
            break;
        }
    }
    /* Every kind is reached at least once: the hook is really there. */
    g_assert_cmpuint(n, >, 1);
    if (g_test_verbose()) {
        g_printerr("# %s smp%d: %s after N=%u\n", c->kind, c->smp,
                   max && n > max ? "capped" : "succeeded", n);
    }
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    g_assert_cmpint(system(cmd), ==, 0);
}

/* ---- targets that fail by themselves ---- */

typedef struct Fixture {
    SnapVM vm;
    QTestState *src;
    int threads, fds;
} Fixture;

static void fixture_start(Fixture *f, int smp, int64_t buffer,
                          int64_t bandwidth)
{
    f->vm = (SnapVM) { "a-b-sweep", smp, RAM_MB };
    f->src = snap_start(&f->vm, NULL);
    snap_set_capability(f->src, true);
    snap_set_params(f->src, buffer, bandwidth);
    f->threads = snap_thread_count(f->src);
    f->fds = qtest_open_fd_count(f->src);
}

/* After a snapshot that did not complete: all safe, the next one exact. */
static void fixture_check_recovered(Fixture *f, JsonObject *info,
                                    const char *status, const char *why)
{
    g_autofree char *file = g_build_filename(qtest_tmpdir(f->src),
                                             "again.snap", NULL);

    g_assert_cmpstr(snap_status(info), ==, status);
    if (why && !strstr(snap_error_desc(info), why)) {
        g_error("error '%s' does not say '%s'", snap_error_desc(info), why);
    }
    snap_assert_guest_runs(f->src);
    snap_assert_nothing_protected(f->src);
    snap_assert_no_leak(f->src, f->threads, f->fds);
    snap_set_params(f->src, 4 * SNAP_MiB, 0);
    snap_snapshot_and_check(f->src, &f->vm, file);
    qtest_quit(f->src);
}

static void test_enospc(void)
{
    g_autofree char *dir = g_dir_make_tmp("fault-enospc-XXXXXX", NULL);
    g_autofree char *file = g_build_filename(dir, "vm.snap", NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    Fixture f;

    if (mount("tmpfs", dir, "tmpfs", 0, "size=8m,mode=0700") < 0) {
        g_autofree char *why = g_strdup_printf("cannot mount a tmpfs: %s",
                                               g_strerror(errno));
        g_rmdir(dir);
        g_test_skip(why);
        return;
    }
    fixture_start(&f, 2, 4 * SNAP_MiB, 0);
    snap_migrate(f.src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(f.src, SNAP_END_TIMEOUT_MS);
    /* Nothing left behind: not the file, not its temporary. */
    g_autofree char *empty = g_strdup_printf("test -z \"$(ls -A '%s')\"",
                                             dir);
    g_assert_cmpint(system(empty), ==, 0);
    g_assert_cmpint(umount(dir), ==, 0);
    g_rmdir(dir);
    fixture_check_recovered(&f, info, "failed", g_strerror(ENOSPC));
}

static void test_exec_killed(void)
{
    Fixture f;
    g_autofree char *uri = NULL;

    /* 4 MiB/s: 8 s for the guest, so the kill lands mid-stream. */
    fixture_start(&f, 2, 0, 4 * SNAP_MiB);
    uri = g_strdup_printf("exec:cat > '%s/killed.snap'",
                          qtest_tmpdir(f.src));
    snap_migrate(f.src, uri);
    g_autoptr(GArray) kids = NULL;
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    do {
        g_clear_pointer(&kids, g_array_unref);
        kids = snap_children(f.src);
        g_usleep(20 * 1000);
    } while (!kids->len && g_get_monotonic_time() < deadline);
    g_assert_cmpuint(kids->len, ==, 1);
    g_usleep(300 * 1000);
    g_assert_cmpint(kill(g_array_index(kids, pid_t, 0), SIGKILL), ==, 0);
    g_autoptr(JsonObject) info = snap_wait_end(f.src, SNAP_END_TIMEOUT_MS);
    /* The shell ran cat and was killed itself: say so. */
    fixture_check_recovered(&f, info, "failed", "signal 9");
}

/* A unix peer: reads @read_limit bytes then closes, or never reads. */
typedef struct Peer {
    char *path;
    int listen_fd;
    size_t read_limit;      /* 0: accept and never read */
    GThread *thread;
    int conn_fd;
    size_t got;
} Peer;

static gpointer peer_thread(gpointer opaque)
{
    Peer *p = opaque;
    char buf[4096];

    p->conn_fd = accept(p->listen_fd, NULL, NULL);
    g_assert_cmpint(p->conn_fd, >=, 0);
    if (!p->read_limit) {
        return NULL;        /* stall: keep it open, read nothing */
    }
    while (p->got < p->read_limit) {
        ssize_t n = read(p->conn_fd, buf, MIN(sizeof(buf),
                                              p->read_limit - p->got));
        if (n <= 0) {
            break;
        }
        p->got += n;
    }
    close(p->conn_fd);
    p->conn_fd = -1;
    return NULL;
}

static Peer *peer_new(const char *dir, size_t read_limit)
{
    Peer *p = g_new0(Peer, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    p->path = g_build_filename(dir, "peer.sock", NULL);
    p->read_limit = read_limit;
    p->conn_fd = -1;
    g_strlcpy(addr.sun_path, p->path, sizeof(addr.sun_path));
    p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(p->listen_fd, >=, 0);
    g_assert_cmpint(bind(p->listen_fd, (struct sockaddr *)&addr,
                         sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(p->listen_fd, 1), ==, 0);
    p->thread = g_thread_new("peer", peer_thread, p);
    return p;
}

static void peer_free(Peer *p)
{
    g_thread_join(p->thread);
    if (p->conn_fd >= 0) {
        close(p->conn_fd);
    }
    close(p->listen_fd);
    g_unlink(p->path);
    g_free(p->path);
    g_free(p);
}

static void test_unix_peer_closes(void)
{
    Fixture f;

    fixture_start(&f, 2, 4 * SNAP_MiB, 0);
    Peer *p = peer_new(qtest_tmpdir(f.src), 4096);
    g_autofree char *uri = g_strdup_printf("unix:%s", p->path);
    snap_migrate(f.src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(f.src, SNAP_END_TIMEOUT_MS);
    peer_free(p);
    fixture_check_recovered(&f, info, "failed", "write failed");
}

static void test_unix_peer_stalls_cancel(void)
{
    Fixture f;

    fixture_start(&f, 2, 0, 0);
    Peer *p = peer_new(qtest_tmpdir(f.src), 0);
    g_autofree char *uri = g_strdup_printf("unix:%s", p->path);
    snap_migrate(f.src, uri);

    /* Wait for the stall: the socket buffers are full, nothing moves. */
    gint64 last = -1, deadline = g_get_monotonic_time() +
                                 SNAP_PROGRESS_TIMEOUT_MS * 1000;
    for (;;) {
        g_autoptr(JsonObject) mid = snap_query_migrate(f.src);
        g_assert_false(snap_over(mid));
        JsonObject *ram = json_object_has_member(mid, "ram") ?
            json_object_get_object_member(mid, "ram") : NULL;
        gint64 sent = ram ? json_object_get_int_member(ram, "transferred")
                          : 0;
        if (sent > 0 && sent == last) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        last = sent;
        g_usleep(200 * 1000);
    }
    json_node_unref(qtest_qmp_assert_success(f.src,
                                             "{\"execute\": \"migrate_cancel\"}"));
    /* The peer never reads again: only a working cancel ends this. */
    g_autoptr(JsonObject) info = snap_wait_end(f.src, SNAP_END_TIMEOUT_MS);
    peer_free(p);
    fixture_check_recovered(&f, info, "cancelled", NULL);
}

static const CountdownCase countdowns[] = {
    { "uffd-open", "userfaultfd", 1, false },
    { "uffd-open", "userfaultfd", 2, false },
    { "uffd-ioctl", "UFFDIO_", 1, false },
    { "uffd-ioctl", "UFFDIO_", 2, false },
    { "uffd-read", "userfaultfd events", 1, false },
    { "uffd-read", "userfaultfd events", 2, false },
    { "channel-write", "write failed", 1, false },
    { "channel-write", "write failed", 2, false },
    { "channel-fsync", "fsync failed", 1, false },
    { "channel-fsync", "fsync failed", 2, false },
    { "fork", "cannot start the command", 1, true },
    { "fork", "cannot start the command", 2, true },
    { "thread-create", "thread", 1, false },
    { "thread-create", "thread", 2, false },
    { "alloc", "copy buffer", 1, false },
    { "alloc", "copy buffer", 2, false },
    { "pagemap-read", "pagemap", 1, false },
    { "pagemap-read", "pagemap", 2, false },
    /*
     * The dirty tracker of a live pre-copy (migration/dirty-tracking.c).
     * Its PAGEMAP_SCAN reads come after dozens of the RAM saver's
     * pagemap reads, beyond these caps: test-dirty-tracking walks them.
     */
    { "uffd-open", "userfaultfd", 1, false, true },
    { "uffd-ioctl", "UFFDIO_", 1, false, true },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(countdowns); i++) {
        const CountdownCase *c = &countdowns[i];
        g_autofree char *name = g_strdup_printf("/fault-inject/countdown/"
                                                "%s%s/smp%d",
                                                c->precopy ? "precopy/" : "",
                                                c->kind, c->smp);
        g_test_add_data_func(name, c, test_countdown);
    }
    g_test_add_func("/fault-inject/target/enospc", test_enospc);
    g_test_add_func("/fault-inject/target/exec-killed", test_exec_killed);
    g_test_add_func("/fault-inject/target/unix-closes-after-4k",
                    test_unix_peer_closes);
    g_test_add_func("/fault-inject/target/unix-stalls-cancel",
                    test_unix_peer_stalls_cancel);
    int ret = g_test_run();
    g_printerr("# fault-inject: %u runs, %u injected failures (%u at "
               "capability, %u after a complete stream)\n", totals.runs,
               totals.injected, totals.at_capability,
               totals.completed_after_fault);
    return ret;
}
