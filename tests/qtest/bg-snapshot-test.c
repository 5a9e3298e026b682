/*
 * Background snapshots, end to end: "it must be exact, and must never
 * leave a guest frozen" (issue 5).
 *
 * An a-b-sweep guest is snapshotted while it runs; the file is restored
 * in a second snapvm with -S, whose RAM and registers must be of one
 * instant (sweep-check.h: every slice has at most one step, exactly at
 * its RBX).  The source must keep running through it and after it.
 * Every way a snapshot can end badly (cancel, a target that fails,
 * quit) must leave no guest page write-protected, which the test reads
 * from /proc/PID/pagemap (bit 57, "pte is uffd-wp write-protected") over
 * the host range HMP "info ramblock" reports.
 */
#include "libqtest.h"
#include "snap-util.h"
#include "sweep-check.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define MiB SNAP_MiB
#define RAM_MB 32
#define RAM_BYTES ((uint64_t)RAM_MB * MiB)
#define BUFFER_DEFAULT (-1)

/* ---- the guest and its monitor ---- */

static bool capability_is_on(QTestState *qts)
{
    g_autoptr(JsonNode) ret = qtest_qmp_assert_success(qts,
        "{\"execute\": \"query-migrate-capabilities\"}");
    JsonArray *caps = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(caps); i++) {
        JsonObject *c = json_array_get_object_element(caps, i);
        if (!strcmp(json_object_get_string_member(c, "capability"),
                    "background-snapshot")) {
            return json_object_get_boolean_member(c, "state");
        }
    }
    g_error("query-migrate-capabilities lists no background-snapshot");
}

static bool bg_wp_unpopulated(JsonObject *info)
{
    JsonObject *bg = json_object_get_object_member(info,
                                                   "background-snapshot");
    return json_object_get_boolean_member(bg, "wp-unpopulated");
}

/* ---- snapshot, restore, check ---- */

/*
 * Snapshot the running a-b-sweep guest of @src to exec: or file:, assert
 * it completed with the guest running throughout, and that the file
 * restores to a consistent image.  Returns the final query-migrate.
 */
static JsonObject *snapshot_and_check(QTestState *src, const SnapVM *vm,
                                      bool to_file)
{
    g_autofree char *file = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    g_autofree char *uri = to_file ? g_strdup_printf("file:%s", file)
                                   : g_strdup_printf("exec:cat > '%s'", file);
    gsize serial_before = qtest_serial_size(src);
    JsonObject *info;

    snap_assert_run_state(src, "running");
    snap_migrate(src, uri);
    info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    if (strcmp(snap_status(info), "completed")) {
        g_error("snapshot to %s: %s (%s)", uri, snap_status(info),
                snap_error_desc(info));
    }
    if (g_test_verbose()) {
        g_printerr("# %s: %" PRId64 " ms, serial %zu -> %zu, faults %" PRId64
                   " copied %" PRId64 " waited %" PRId64 " wait %" PRId64
                   " us, pause %" PRId64 " us\n", uri,
                   json_object_get_int_member(info, "total-time"),
                   serial_before, qtest_serial_size(src),
                   snap_bg_stat(info, "faults"),
                   snap_bg_stat(info, "copied-pages"),
                   snap_bg_stat(info, "waited-faults"),
                   snap_bg_stat(info, "wait-time-us"),
                   snap_bg_stat(info, "pause-us"));
    }
    /* A snapshot, not a migration: the source goes on. */
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    g_assert_cmpint(snap_bg_stat(info, "buffer-peak"), <=,
                    snap_bg_stat(info, "buffer-size"));
    /* Throughput is reported for a snapshot as for a migration. */
    JsonObject *ram = json_object_get_object_member(info, "ram");
    g_assert_cmpfloat(json_object_get_double_member(ram, "mbps"), >, 0);
    g_assert_cmpint(json_object_get_int_member(ram, "pages-per-second"), >,
                    0);
    /*
     * Not asserted here: faults > 0.  Whether the guest writes a
     * protected page during a 20 ms snapshot depends on the host's
     * scheduler (a starved vCPU thread writes nothing); test_runs_during()
     * checks that the guest runs and faults with a bandwidth limit that
     * makes the snapshot long.
     */
    snap_assert_nothing_protected(src);

    snap_restore_and_check(vm, file);
    g_unlink(file);
    return info;
}

/* ---- 1. exactness ---- */

typedef struct ExactCase {
    const char *name;
    int smp;
    bool two_blocks;
    int64_t buffer;
    int rounds;             /* exec: and file: alternate */
} ExactCase;

static void test_exact(gconstpointer opaque)
{
    const ExactCase *c = opaque;
    SnapVM vm = { "a-b-sweep", c->smp, RAM_MB, c->two_blocks };
    QTestState *src = snap_start(&vm, NULL);
    gint64 copied = 0, waited = 0;

    snap_set_capability(src, true);
    snap_set_params(src, c->buffer, 0);
    for (int round = 0; round < c->rounds; round++) {
        g_autoptr(JsonObject) info = snapshot_and_check(src, &vm, round % 2);

        copied += snap_bg_stat(info, "copied-pages");
        waited += snap_bg_stat(info, "waited-faults");
        if (c->buffer >= 0) {
            g_assert_cmpint(snap_bg_stat(info, "buffer-size"), ==, c->buffer);
        }
        if (c->buffer == 0) {
            g_assert_cmpint(snap_bg_stat(info, "copied-pages"), ==, 0);
            g_assert_cmpint(snap_bg_stat(info, "buffer-peak"), ==, 0);
        }
    }
    /*
     * Which path a fault takes depends on where the vCPU is against the
     * saver's walk (a region the saver has claimed is waited for with
     * any buffer), so count over the rounds.
     */
    if (c->buffer == 0) {
        g_assert_cmpint(waited, >, 0);
    } else {
        g_assert_cmpint(copied, >, 0);
    }
    qtest_quit(src);
}

/*
 * The guest's serial output grows while a snapshot runs: here one long
 * enough (8 MiB/s: 4 s for 32 MiB) that a frozen guest would show.
 */
static void test_runs_during(gconstpointer opaque)
{
    const int64_t buffer = *(const int64_t *)opaque;
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = snap_start(&vm, NULL);
    g_autofree char *file = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    gsize serial_at_fault;
    bool grew = false;

    snap_set_capability(src, true);
    snap_set_params(src, buffer, 8 * MiB);
    snap_migrate(src, uri);
    snap_wait_faulting(src);
    serial_at_fault = qtest_serial_size(src);
    for (;;) {
        g_autoptr(JsonObject) info = snap_query_migrate(src);
        if (snap_over(info)) {
            break;
        }
        if (qtest_serial_size(src) > serial_at_fault) {
            grew = true;
            break;
        }
        g_usleep(5 * 1000);
    }
    g_assert_true(grew);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    snap_assert_run_state(src, "running");
    snap_assert_nothing_protected(src);
    snap_restore_and_check(&vm, file);
    qtest_quit(src);
}

/* ---- 2. throttling ---- */

/*
 * The random-writer's latest store: it writes its running store count
 * into the page it stores to, so the largest count in RAM says how far
 * it has got (one vCPU).
 */
static uint64_t random_writer_progress(QTestState *qts)
{
    g_autofree guint8 *mem = sweep_read_guest_ram(qts, SWEEP_BASE,
                                                  RAM_BYTES - SWEEP_BASE);
    uint64_t most = 0;

    for (uint64_t off = 0; off < RAM_BYTES - SWEEP_BASE; off += SWEEP_PAGE) {
        uint64_t v;
        memcpy(&v, mem + off, sizeof(v));
        most = MAX(most, v);
    }
    return most;
}

static void test_throttled(void)
{
    SnapVM vm = { "random-writer", 1, RAM_MB, false };
    QTestState *src = snap_start(&vm, NULL);
    g_autofree char *uri = g_strdup_printf("exec:cat > '%s/vm.snap'",
                                           qtest_tmpdir(src));
    const int64_t buffer = 4 * MiB;

    snap_set_capability(src, true);
    /* 4 s for 32 MiB: the guest dirties far faster than that. */
    snap_set_params(src, buffer, 8 * MiB);
    snap_migrate(src, uri);
    snap_wait_faulting(src);
    /*
     * Throttled, not frozen: it stores on while the snapshot runs.  Each
     * wait can last as long as the saver takes to write what it holds
     * (up to 10 MiB at 8 MiB/s), so look until the snapshot is over.
     */
    uint64_t before = random_writer_progress(src);
    bool stored_on = false;
    for (;;) {
        g_usleep(100 * 1000);
        uint64_t now = random_writer_progress(src);
        g_autoptr(JsonObject) mid = snap_query_migrate(src);
        if (snap_over(mid)) {
            break;
        }
        if (now > before) {
            stored_on = true;
            break;
        }
    }
    g_assert_true(stored_on);

    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    g_assert_cmpint(snap_bg_stat(info, "buffer-size"), ==, buffer);
    g_assert_cmpint(snap_bg_stat(info, "buffer-peak"), <=, buffer);
    g_assert_cmpint(snap_bg_stat(info, "buffer-peak"), >, 0);
    g_assert_cmpint(snap_bg_stat(info, "waited-faults"), >, 0);
    g_assert_cmpint(snap_bg_stat(info, "wait-time-us"), >, 0);
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    snap_assert_nothing_protected(src);
    qtest_quit(src);
}

/* ---- 3. failures ---- */

/*
 * After a snapshot that did not complete: the guest runs, nothing is
 * protected, query-migrate says why, and the next snapshot is exact.
 */
static void check_recovered(QTestState *src, const SnapVM *vm,
                            JsonObject *info, const char *status)
{
    const char *desc;

    g_assert_cmpstr(snap_status(info), ==, status);
    g_assert_true(json_object_has_member(info, "error-desc"));
    desc = json_object_get_string_member(info, "error-desc");
    g_assert_cmpuint(strlen(desc), >, 0);
    if (g_test_verbose()) {
        g_printerr("# %s: %s\n", status, desc);
    }
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    snap_assert_nothing_protected(src);

    snap_set_params(src, 4 * MiB, 0);
    json_object_unref(snapshot_and_check(src, vm, true));
}

static void test_cancel(void)
{
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = snap_start(&vm, NULL);
    g_autofree char *file = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    snap_set_capability(src, true);
    /* No buffer, 16 s for 32 MiB: vCPUs are surely blocked on a page. */
    snap_set_params(src, 0, 2 * MiB);
    snap_migrate(src, uri);
    snap_wait_faulting(src);
    /* The pagemap check sees protection when there is some. */
    g_assert_cmpuint(snap_protected_pages(src), >, 0);

    gint64 t0 = g_get_monotonic_time();
    json_node_unref(qtest_qmp_assert_success(src,
        "{\"execute\": \"migrate_cancel\"}"));
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    if (g_test_verbose()) {
        g_printerr("# cancel took %" PRId64 " ms\n",
                   (g_get_monotonic_time() - t0) / 1000);
    }
    /* A file: target is complete or absent. */
    g_assert_false(g_file_test(file, G_FILE_TEST_EXISTS));
    check_recovered(src, &vm, info, "cancelled");
    qtest_quit(src);
}

static void check_target_fails(const char *uri)
{
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = snap_start(&vm, NULL);

    snap_set_capability(src, true);
    snap_set_params(src, 0, 0);
    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    check_recovered(src, &vm, info, "failed");
    qtest_quit(src);
}

static void test_fail_exec_false(void)
{
    check_target_fails("exec:false");
}

static void test_fail_target_closes_early(void)
{
    check_target_fails("exec:head -c 8192 >/dev/null");
}

/* ---- 4. where the capability is refused, and old kernels ---- */

static void test_refused_without_uffd_wp(void)
{
    SnapVM vm = { "a-b-sweep", 1, RAM_MB, false };
    const char *env[] = { "SNAPVM_TEST_UFFD_HIDE_FEATURES=0x1", NULL };
    QTestState *qts = snap_start(&vm, env);
    g_autoptr(JsonObject) r = qtest_qmp(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", "
        "\"state\": true}]}}");
    const char *desc = qtest_reply_error_desc(r, "GenericError");

    if (!strstr(desc, "write-protect")) {
        g_error("refusal '%s' does not name write-protect", desc);
    }
    g_assert_false(capability_is_on(qts));
    qtest_quit(qts);
}

static void test_refused_on_disk_file(void)
{
    g_autofree char *dir = g_strdup("/tmp/bg-snapshot-test-XXXXXX");
    g_autofree char *mem = NULL;
    g_autofree char *args = NULL;
    QTestState *qts;

    g_assert_nonnull(g_mkdtemp(dir));
    mem = g_build_filename(dir, "guest-ram", NULL);
    args = g_strdup_printf("-m %dM -object memory-backend-file,id=diskmem,"
                           "size=%dM,mem-path=%s,share=on "
                           "-numa node,memdev=diskmem", RAM_MB, RAM_MB, mem);
    qts = qtest_init(args);
    /* The kernel cannot write-protect a shared mapping of an ext4 file. */
    g_autoptr(JsonObject) r = qtest_qmp(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", "
        "\"state\": true}]}}");
    const char *desc = qtest_reply_error_desc(r, "GenericError");

    if (!strstr(desc, "'diskmem'")) {
        g_error("refusal '%s' does not name the RAMBlock", desc);
    }
    g_assert_false(capability_is_on(qts));
    qtest_quit(qts);
    g_unlink(mem);
    g_rmdir(dir);
}

static void test_exact_without_wp_unpopulated(void)
{
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, true };
    const char *env[] = { "SNAPVM_TEST_UFFD_HIDE_FEATURES=0x2000", NULL };
    QTestState *src = snap_start(&vm, env);

    snap_set_capability(src, true);
    snap_set_params(src, 4 * MiB, 0);
    for (int round = 0; round < 2; round++) {
        g_autoptr(JsonObject) info = snapshot_and_check(src, &vm, round % 2);
        g_assert_false(bg_wp_unpopulated(info));
    }
    qtest_quit(src);
}

/* ---- 5, 6. stop, cont and quit while a snapshot runs ---- */

static QTestState *start_slow_snapshot(const SnapVM *vm, int64_t bandwidth)
{
    QTestState *src = snap_start(vm, NULL);
    g_autofree char *uri = g_strdup_printf("file:%s/vm.snap",
                                           qtest_tmpdir(src));

    snap_set_capability(src, true);
    snap_set_params(src, 0, bandwidth);
    snap_migrate(src, uri);
    snap_wait_faulting(src);
    return src;
}

static void test_stop_cont(void)
{
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, false };
    QTestState *src = start_slow_snapshot(&vm, 8 * MiB);
    g_autofree char *file = g_build_filename(qtest_tmpdir(src), "vm.snap",
                                             NULL);
    gint64 t0 = g_get_monotonic_time();

    /* vCPUs blocked on protected pages must still stop, soon. */
    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"stop\"}"));
    if (g_test_verbose()) {
        g_printerr("# stop took %" PRId64 " ms\n",
                   (g_get_monotonic_time() - t0) / 1000);
    }
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 10 * G_USEC_PER_SEC);
    snap_assert_run_state(src, "paused");
    gsize paused_at = qtest_serial_size(src);
    g_usleep(200 * 1000);
    g_assert_cmpuint(qtest_serial_size(src), ==, paused_at);
    g_autoptr(JsonObject) mid = snap_query_migrate(src);
    g_assert_cmpstr(snap_status(mid), ==, "active");

    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"cont\"}"));
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    snap_assert_run_state(src, "running");
    snap_assert_nothing_protected(src);
    g_assert_cmpint(snap_bg_stat(info, "waited-faults"), >, 0);
    snap_restore_and_check(&vm, file);
    qtest_quit(src);
}

/*
 * quit while vCPUs wait on protected pages: snapvm must cancel the
 * snapshot (which lifts every protection in tens of ms) and exit, not
 * wait for the saver to write, at 1 MiB/s, the pages the vCPUs are
 * blocked on.
 */
static void test_quit(void)
{
    SnapVM vm = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = start_slow_snapshot(&vm, 1 * MiB);
    gint64 t0 = g_get_monotonic_time(), took_ms;

    qtest_qmp_send(src, "{\"execute\": \"quit\"}");
    g_assert_cmpint(qtest_wait_exit(src, 30000), ==, 0);
    took_ms = (g_get_monotonic_time() - t0) / 1000;
    if (g_test_verbose()) {
        g_printerr("# quit took %" PRId64 " ms\n", took_ms);
    }
    /*
     * Cancel first, then quit, takes 15-30 ms here; waiting for the saver
     * would take RAM_MB seconds.  The bound only tells the two apart.
     */
    g_assert_cmpint(took_ms, <, RAM_MB * 1000 / 3);
}

/* ---- the check itself can fail ---- */

static void test_sweep_check_rejects_torn_image(void)
{
    const uint64_t ram = 8 * MiB, len = ram - SWEEP_BASE;
    const uint64_t slice = len / SWEEP_PAGE / 2 * SWEEP_PAGE;
    g_autofree guint8 *mem = g_malloc0(len);
    uint64_t rbx[2] = { SWEEP_BASE + 5 * SWEEP_PAGE,
                        SWEEP_BASE + slice + slice };
    unsigned steps;

    /* vCPU 0 mid-pass (7 below RBX, 6 above); vCPU 1 just done (all 3). */
    for (uint64_t off = 0; off < slice; off += SWEEP_PAGE) {
        mem[off] = off < 5 * SWEEP_PAGE ? 7 : 6;
        mem[slice + off] = 3;
    }
    g_assert_null(sweep_check_image(mem, ram, rbx, 2, &steps));
    g_assert_cmpuint(steps, ==, 1);

    mem[9 * SWEEP_PAGE] = 7;            /* a page ahead of its time */
    g_autofree char *e1 = sweep_check_image(mem, ram, rbx, 2, NULL);
    g_assert_nonnull(e1);
    mem[9 * SWEEP_PAGE] = 6;
    rbx[0] += SWEEP_PAGE;               /* registers of another instant */
    g_autofree char *e2 = sweep_check_image(mem, ram, rbx, 2, NULL);
    g_assert_nonnull(e2);
    rbx[0] = SWEEP_BASE + 5 * SWEEP_PAGE + 8;
    g_autofree char *e3 = sweep_check_image(mem, ram, rbx, 2, NULL);
    g_assert_nonnull(e3);
}

static const ExactCase exact_cases[] = {
    { "/bg-snapshot/exact/smp1-one-block-buffer-default",
      1, false, BUFFER_DEFAULT, 3 },
    { "/bg-snapshot/exact/smp1-one-block-buffer4m", 1, false, 4 * MiB, 3 },
    { "/bg-snapshot/exact/smp1-one-block-buffer0", 1, false, 0, 3 },
    { "/bg-snapshot/exact/smp1-two-blocks-buffer-default",
      1, true, BUFFER_DEFAULT, 3 },
    { "/bg-snapshot/exact/smp1-two-blocks-buffer4m", 1, true, 4 * MiB, 3 },
    { "/bg-snapshot/exact/smp1-two-blocks-buffer0", 1, true, 0, 3 },
    { "/bg-snapshot/exact/smp2-one-block-buffer-default",
      2, false, BUFFER_DEFAULT, 3 },
    { "/bg-snapshot/exact/smp2-one-block-buffer4m", 2, false, 4 * MiB, 3 },
    { "/bg-snapshot/exact/smp2-one-block-buffer0", 2, false, 0, 3 },
    { "/bg-snapshot/exact/smp2-two-blocks-buffer-default",
      2, true, BUFFER_DEFAULT, 3 },
    { "/bg-snapshot/exact/smp2-two-blocks-buffer4m", 2, true, 4 * MiB, 3 },
    { "/bg-snapshot/exact/smp2-two-blocks-buffer0", 2, true, 0, 3 },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bg-snapshot/sweep-check/rejects-torn-image",
                    test_sweep_check_rejects_torn_image);
    for (unsigned i = 0; i < G_N_ELEMENTS(exact_cases); i++) {
        g_test_add_data_func(exact_cases[i].name, &exact_cases[i],
                             test_exact);
    }
    static const int64_t buffer_default = BUFFER_DEFAULT;
    g_test_add_data_func("/bg-snapshot/runs-during/buffer-default",
                         &buffer_default, test_runs_during);
    g_test_add_func("/bg-snapshot/throttled/random-writer", test_throttled);
    g_test_add_func("/bg-snapshot/fail/cancel", test_cancel);
    g_test_add_func("/bg-snapshot/fail/exec-false", test_fail_exec_false);
    g_test_add_func("/bg-snapshot/fail/target-closes-early",
                    test_fail_target_closes_early);
    g_test_add_func("/bg-snapshot/refused/no-uffd-wp",
                    test_refused_without_uffd_wp);
    g_test_add_func("/bg-snapshot/refused/shared-disk-file",
                    test_refused_on_disk_file);
    g_test_add_func("/bg-snapshot/exact/without-wp-unpopulated",
                    test_exact_without_wp_unpopulated);
    g_test_add_func("/bg-snapshot/stop-cont", test_stop_cont);
    g_test_add_func("/bg-snapshot/quit", test_quit);
    return g_test_run();
}
