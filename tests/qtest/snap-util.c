/*
 * Background-snapshot helpers for the reliability qtests (snap-util.h).
 */
#include "snap-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define PAGEMAP_UFFD_WP (1ull << 57)

char *snap_vm_args(const SnapVM *vm)
{
    int m0 = vm->ram_mb * 3 / 8;

    if (!vm->two_blocks) {
        return g_strdup_printf("-m %dM -smp %d", vm->ram_mb, vm->smp);
    }
    return g_strdup_printf("-m %dM -smp %d "
                           "-object memory-backend-ram,id=m0,size=%dM "
                           "-object memory-backend-memfd,id=m1,size=%dM "
                           "-numa node,memdev=m0 -numa node,memdev=m1",
                           vm->ram_mb, vm->smp, m0, vm->ram_mb - m0);
}

QTestState *snap_start(const SnapVM *vm, const char *const *env)
{
    g_autofree char *kernel = qtest_guest_path(vm->guest);
    g_autofree char *base = snap_vm_args(vm);
    g_autofree char *args = g_strdup_printf("%s -kernel %s", base, kernel);
    const char *mark = !strcmp(vm->guest, "random-writer") ? "R" : "BB";
    QTestState *qts = qtest_init_env(env, args);

    if (!qtest_serial_wait(qts, mark, SNAP_PROGRESS_TIMEOUT_MS)) {
        g_error("%s wrote no '%s' within %d s: it does not run", vm->guest,
                mark, SNAP_PROGRESS_TIMEOUT_MS / 1000);
    }
    return qts;
}

void snap_assert_run_state(QTestState *qts, const char *want)
{
    g_autofree char *st = qtest_query_status(qts);

    g_assert_cmpstr(st, ==, want);
}

JsonObject *snap_try_set_capability(QTestState *qts, bool on)
{
    return qtest_qmp(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"background-snapshot\", "
        "\"state\": %s}]}}", on ? "true" : "false");
}

void snap_set_capability(QTestState *qts, bool on)
{
    g_autoptr(JsonObject) r = snap_try_set_capability(qts, on);

    if (!json_object_has_member(r, "return")) {
        g_error("cannot set background-snapshot: %s",
                qtest_reply_error_desc(r, "GenericError"));
    }
}

void snap_set_params(QTestState *qts, int64_t buffer, int64_t bandwidth)
{
    g_autofree char *buf = buffer < 0 ? g_strdup("") :
        g_strdup_printf(", \"background-snapshot-buffer-size\": %" PRId64,
                        buffer);

    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"max-bandwidth\": %" PRId64 "%s}}", bandwidth, buf));
}

void snap_migrate(QTestState *qts, const char *uri)
{
    g_autofree char *quoted = qtest_json_quote(uri);

    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate\", \"arguments\": {\"uri\": %s}}", quoted));
}

JsonObject *snap_query_migrate(QTestState *qts)
{
    g_autoptr(JsonNode) ret = qtest_qmp_assert_success(qts,
        "{\"execute\": \"query-migrate\"}");

    return json_object_ref(json_node_get_object(ret));
}

const char *snap_status(JsonObject *info)
{
    return json_object_has_member(info, "status") ?
           json_object_get_string_member(info, "status") : "none";
}

const char *snap_error_desc(JsonObject *info)
{
    return json_object_has_member(info, "error-desc") ?
           json_object_get_string_member(info, "error-desc") : "";
}

bool snap_over(JsonObject *info)
{
    const char *st = snap_status(info);

    return !strcmp(st, "completed") || !strcmp(st, "failed") ||
           !strcmp(st, "cancelled");
}

JsonObject *snap_wait_end(QTestState *qts, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000ll;

    do {
        JsonObject *info = snap_query_migrate(qts);
        if (snap_over(info)) {
            return info;
        }
        json_object_unref(info);
        g_usleep(5 * 1000);
    } while (g_get_monotonic_time() < deadline);
    g_error("the snapshot did not end within %d ms", timeout_ms);
}

gint64 snap_bg_stat(JsonObject *info, const char *name)
{
    JsonObject *bg;

    g_assert_true(json_object_has_member(info, "background-snapshot"));
    bg = json_object_get_object_member(info, "background-snapshot");
    if (!json_object_has_member(bg, name)) {
        g_error("query-migrate's background-snapshot has no '%s'", name);
    }
    return json_object_get_int_member(bg, name);
}

void snap_wait_faulting(QTestState *qts)
{
    gint64 deadline = g_get_monotonic_time() +
                      SNAP_PROGRESS_TIMEOUT_MS * 1000ll;

    do {
        g_autoptr(JsonObject) info = snap_query_migrate(qts);

        g_assert_false(snap_over(info));
        if (!strcmp(snap_status(info), "active") &&
            json_object_has_member(info, "background-snapshot") &&
            snap_bg_stat(info, "faults") > 0) {
            return;
        }
        g_usleep(2 * 1000);
    } while (g_get_monotonic_time() < deadline);
    g_error("the guest took no write fault during the snapshot");
}

void snap_assert_guest_runs(QTestState *qts)
{
    gsize before = qtest_serial_size(qts);
    gint64 deadline = g_get_monotonic_time() +
                      SNAP_PROGRESS_TIMEOUT_MS * 1000ll;

    while (qtest_serial_size(qts) == before) {
        if (g_get_monotonic_time() > deadline) {
            g_error("the guest wrote nothing for %d s: frozen?",
                    SNAP_PROGRESS_TIMEOUT_MS / 1000);
        }
        g_usleep(2 * 1000);
    }
}

uint64_t snap_protected_pages(QTestState *qts)
{
    g_autofree char *table = qtest_hmp(qts, "info ramblock");
    g_auto(GStrv) lines = g_strsplit(table, "\n", -1);
    g_autofree char *path = g_strdup_printf("/proc/%d/pagemap",
                                            (int)qtest_pid(qts));
    int fd = open(path, O_RDONLY);
    uint64_t protected = 0, blocks = 0;
    const long page = sysconf(_SC_PAGESIZE);

    g_assert_cmpint(fd, >=, 0);
    /* The last column is the host address, the one before it the size. */
    for (char **l = lines + 1; *l && **l; l++) {
        g_auto(GStrv) col = g_strsplit_set(g_strstrip(*l), " ", -1);
        guint n = g_strv_length(col);
        uint64_t hva, size;

        g_assert_cmpuint(n, >=, 3);
        hva = g_ascii_strtoull(col[n - 1], NULL, 16);
        size = g_ascii_strtoull(col[n - 2], NULL, 16);
        g_assert_cmpuint(hva % page, ==, 0);
        g_assert_cmpuint(size, >, 0);
        blocks++;
        for (uint64_t off = 0; off < size;) {
            uint64_t ent[4096];
            uint64_t count = MIN(G_N_ELEMENTS(ent), (size - off) / page);
            ssize_t got = pread(fd, ent, count * sizeof(ent[0]),
                                (hva + off) / page * sizeof(ent[0]));

            g_assert_cmpint(got, ==, (ssize_t)(count * sizeof(ent[0])));
            for (uint64_t i = 0; i < count; i++) {
                protected += !!(ent[i] & PAGEMAP_UFFD_WP);
            }
            off += count * page;
        }
    }
    close(fd);
    g_assert_cmpuint(blocks, >=, 1);
    return protected;
}

void snap_assert_nothing_protected(QTestState *qts)
{
    uint64_t n = snap_protected_pages(qts);

    if (n) {
        g_error("%" PRIu64 " guest pages are still write-protected", n);
    }
}

static int count_dir_entries(const char *path)
{
    GDir *dir = g_dir_open(path, 0, NULL);
    int n = 0;

    if (!dir) {
        return -1;
    }
    while (g_dir_read_name(dir)) {
        n++;
    }
    g_dir_close(dir);
    return n;
}

int snap_thread_count(QTestState *qts)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task",
                                            (int)qtest_pid(qts));
    return count_dir_entries(path);
}

void snap_assert_no_leak(QTestState *qts, int threads, int fds)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    int t, f;

    for (;;) {
        t = snap_thread_count(qts);
        f = qtest_open_fd_count(qts);
        if ((t == threads && f == fds) ||
            g_get_monotonic_time() > deadline) {
            break;
        }
        g_usleep(10 * 1000);
    }
    if (t != threads || f != fds) {
        g_autofree char *cmd = g_strdup_printf("ls -l /proc/%d/fd >&2",
                                               (int)qtest_pid(qts));
        if (system(cmd) < 0) {
            /* Only a diagnostic. */
        }
        g_error("leak: %d threads (were %d), %d descriptors (were %d)",
                t, threads, f, fds);
    }
}

GArray *snap_children(QTestState *qts)
{
    g_autofree char *task = g_strdup_printf("/proc/%d/task",
                                            (int)qtest_pid(qts));
    GArray *pids = g_array_new(false, false, sizeof(pid_t));
    GDir *dir = g_dir_open(task, 0, NULL);
    const char *tid;

    if (!dir) {
        return pids;
    }
    while ((tid = g_dir_read_name(dir))) {
        g_autofree char *path = g_strdup_printf("%s/%s/children", task, tid);
        g_autofree char *text = NULL;

        if (!g_file_get_contents(path, &text, NULL, NULL)) {
            continue;
        }
        g_auto(GStrv) words = g_strsplit(g_strstrip(text), " ", -1);
        for (char **w = words; *w && **w; w++) {
            pid_t pid = atoi(*w);
            g_array_append_val(pids, pid);
        }
    }
    g_dir_close(dir);
    return pids;
}

void snap_restore_and_check(const SnapVM *vm, const char *file)
{
    g_autofree char *base = snap_vm_args(vm);
    g_autofree char *args = g_strdup_printf("%s -S -incoming 'exec:cat %s'",
                                            base, file);
    QTestState *dst = qtest_init(args);
    g_autoptr(JsonObject) info = snap_wait_end(dst, SNAP_END_TIMEOUT_MS);

    g_assert_cmpstr(snap_status(info), ==, "completed");
    snap_assert_run_state(dst, "paused");
    sweep_assert_consistent(dst, (uint64_t)vm->ram_mb * SNAP_MiB, vm->smp);
    qtest_quit(dst);
}

void snap_snapshot_and_check(QTestState *src, const SnapVM *vm,
                             const char *file)
{
    g_autofree char *uri = g_strdup_printf("file:%s", file);

    snap_migrate(src, uri);
    g_autoptr(JsonObject) info = snap_wait_end(src, SNAP_END_TIMEOUT_MS);
    if (strcmp(snap_status(info), "completed")) {
        g_error("snapshot to %s: %s (%s)", uri, snap_status(info),
                snap_error_desc(info));
    }
    snap_assert_run_state(src, "running");
    snap_assert_guest_runs(src);
    snap_assert_nothing_protected(src);
    snap_restore_and_check(vm, file);
    g_unlink(file);
}
