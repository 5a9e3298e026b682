/*
 * mapped-ram end to end: snapshots written in the fixed layout (one place
 * per guest page, docs/interop/snapshot-format.md) by stop-and-copy, by a
 * background snapshot and by live pre-copy, with 1, 2 and 4 writers and
 * with direct-io, restored eagerly and lazily into a second snapvm whose
 * RAM and registers must be those of the saved instant.  Then what must
 * be refused: a truncated file, a corrupted header or bitmap (the error
 * names the offset), mapped-ram to anything but file:, and a mapped-ram
 * file read through a pipe.  Last, snapvm-img on the layout: info, check
 * and convert in both directions.
 */
#include "snap-util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#define RAM_MB 64
/* Two blocks: anonymous RAM (lazily mappable) and memfd (always read). */
#define TWO_BLOCKS \
    "-object memory-backend-ram,id=m0,size=24M " \
    "-object memory-backend-memfd,id=m1,size=40M " \
    "-numa node,memdev=m0 -numa node,memdev=m1"
#define HDR_SIZE 28
#define ALIGN (1024 * 1024)

typedef struct Guest {
    const char *kernel;     /* "a-b-sweep", "idle" */
    int smp;
    int ram_mb;
    bool two_blocks;
} Guest;

static const Guest sweep2 = { "a-b-sweep", 2, RAM_MB, false };

static char *guest_args(const Guest *g)
{
    return g_strdup_printf("-m %dM -smp %d %s", g->ram_mb, g->smp,
                           g->two_blocks ? TWO_BLOCKS : "");
}

static QTestState *start_guest(const Guest *g)
{
    g_autofree char *kernel = qtest_guest_path(g->kernel);
    g_autofree char *args = guest_args(g);
    QTestState *qts = qtest_initf("%s -kernel %s", args, kernel);

    if (!strcmp(g->kernel, "a-b-sweep")) {
        /* Two passes: every page of the sweep holds data. */
        g_assert_true(qtest_serial_wait(qts, "BB", SNAP_PROGRESS_TIMEOUT_MS));
    }
    return qts;
}

static void set_caps(QTestState *qts, bool mapped_ram, bool background)
{
    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
        "{\"capabilities\": [{\"capability\": \"mapped-ram\", \"state\": %s},"
        " {\"capability\": \"background-snapshot\", \"state\": %s}]}}",
        mapped_ram ? "true" : "false", background ? "true" : "false"));
}

static void set_params(QTestState *qts, const char *members)
{
    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": {%s}}",
        members));
}

static char *tmp_file(QTestState *qts, const char *name)
{
    return g_build_filename(qtest_tmpdir(qts), name, NULL);
}

/* migrate to file:@path and wait; returns the final query-migrate. */
static JsonObject *save_to(QTestState *qts, const char *path)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    JsonObject *info;

    snap_migrate(qts, uri);
    info = snap_wait_end(qts, SNAP_END_TIMEOUT_MS);
    if (strcmp(snap_status(info), "completed")) {
        g_error("snapshot to %s: %s (%s)", uri, snap_status(info),
                snap_error_desc(info));
    }
    return info;
}

/*
 * A paused snapvm of @g restored from @path with x-mapped-ram-restore
 * @mode and @channels readers (-incoming defer, then migrate-incoming).
 */
static QTestState *restore_from_env(const Guest *g, const char *path,
                                    const char *mode, int channels,
                                    const char *const *env)
{
    g_autofree char *args = guest_args(g);
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *quoted = qtest_json_quote(uri);
    g_autofree char *members = g_strdup_printf(
        "\"x-mapped-ram-restore\": \"%s\", \"multifd-channels\": %d",
        mode, channels);
    g_autofree char *cmdline = g_strdup_printf("%s -S -incoming defer",
                                               args);
    QTestState *dst = qtest_init_env(env, cmdline);
    g_autoptr(JsonObject) info = NULL;
    g_autofree char *st = NULL;

    set_params(dst, members);
    json_node_unref(qtest_qmp_assert_success(dst,
        "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": %s}}",
        quoted));
    info = snap_wait_end(dst, SNAP_END_TIMEOUT_MS);
    g_assert_cmpstr(snap_status(info), ==, "completed");
    st = qtest_query_status(dst);
    g_assert_cmpstr(st, ==, "paused");
    return dst;
}

static QTestState *restore_from(const Guest *g, const char *path,
                                const char *mode, int channels)
{
    return restore_from_env(g, path, mode, channels, NULL);
}

/* Whether /proc/PID/maps of @qts maps @path (a lazy restore does). */
static bool maps_file(QTestState *qts, const char *path)
{
    g_autofree char *maps_path = g_strdup_printf("/proc/%d/maps",
                                                 (int)qtest_pid(qts));
    g_autofree char *maps = NULL;

    g_assert_true(g_file_get_contents(maps_path, &maps, NULL, NULL));
    return strstr(maps, path) != NULL;
}

static char *registers(QTestState *qts, int cpu)
{
    g_autoptr(JsonNode) ret = qtest_qmp_assert_success(qts,
        "{\"execute\": \"human-monitor-command\", \"arguments\": "
        "{\"command-line\": \"info registers\", \"cpu-index\": %d}}", cpu);

    return g_strdup(json_node_get_string(ret));
}

/* @dst holds exactly the RAM and registers of the stopped @src. */
static void assert_same_state(QTestState *src, QTestState *dst,
                              const Guest *g)
{
    uint64_t size = (uint64_t)g->ram_mb * SNAP_MiB;
    g_autofree guint8 *a = sweep_read_guest_ram(src, 0, size);
    g_autofree guint8 *b = sweep_read_guest_ram(dst, 0, size);

    if (memcmp(a, b, size)) {
        uint64_t i = 0;

        while (a[i] == b[i]) {
            i++;
        }
        g_error("restored RAM differs first at 0x%" PRIx64 " (0x%02x, "
                "saved 0x%02x)", i, b[i], a[i]);
    }
    for (int cpu = 0; cpu < g->smp; cpu++) {
        g_autofree char *ra = registers(src, cpu);
        g_autofree char *rb = registers(dst, cpu);

        g_assert_cmpstr(ra, ==, rb);
    }
}

static void cont_and_assert_runs(QTestState *qts)
{
    g_autofree char *st = NULL;

    json_node_unref(qtest_qmp_assert_success(qts, "{\"execute\": \"cont\"}"));
    st = qtest_query_status(qts);
    g_assert_cmpstr(st, ==, "running");
    snap_assert_guest_runs(qts);
}

/* ---- the file itself ---- */

typedef struct BlockHeader {
    uint64_t at;            /* offset of the header */
    uint32_t version;
    uint64_t page_size, bitmap_offset, pages_offset;
    uint64_t used_length;   /* from the block list */
} BlockHeader;

static uint64_t be_get(const guint8 *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void be_put(guint8 *p, int n, uint64_t v)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = v;
        v >>= 8;
    }
}

/*
 * The block headers, read the way docs/interop/snapshot-format.md says:
 * the stream header, the configuration (with its capabilities
 * subsection), the RAM START section's header, then the block list, in
 * which each block's used_length is followed by its header, and the next
 * block's entry starts where its page area ends.
 */
static GArray *read_headers(const char *path)
{
    GArray *hdrs = g_array_new(false, true, sizeof(BlockHeader));
    g_autofree guint8 *buf = g_malloc(4096);
    int fd = open(path, O_RDONLY);
    uint64_t at, total, listed = 0;
    guint8 len;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, 4096, 0), ==, 4096);
    g_assert_cmphex(be_get(buf, 4), ==, 0x5145564d);
    g_assert_cmpint(buf[8], ==, 0x07);
    at = 13 + be_get(buf + 9, 4);
    g_assert_cmpint(buf[at], ==, 0x05);     /* the capabilities */
    at += 2 + buf[at + 1] + 8;
    for (uint64_t n = be_get(buf + at - 4, 4); n; n--) {
        at += 1 + buf[at];
    }
    g_assert_cmpint(buf[at], ==, 0x01);     /* RAM START */
    at += 5 + 1 + buf[at + 5] + 8;
    total = be_get(buf + at, 8);
    g_assert_cmphex(total & 0xfff, ==, 0x04);
    total &= ~0xfffull;
    at += 8;
    while (listed < total) {
        guint8 h8[HDR_SIZE];
        BlockHeader h;
        uint64_t used;

        g_assert_cmpint(pread(fd, &len, 1, at), ==, 1);
        g_assert_cmpint(pread(fd, h8, 8, at + 1 + len), ==, 8);
        used = be_get(h8, 8);
        h.at = at + 1 + len + 8;
        g_assert_cmpint(pread(fd, h8, HDR_SIZE, h.at), ==, HDR_SIZE);
        h.version = be_get(h8, 4);
        h.page_size = be_get(h8 + 4, 8);
        h.bitmap_offset = be_get(h8 + 12, 8);
        h.pages_offset = be_get(h8 + 20, 8);
        h.used_length = used;
        /* What snapvm writes: the bitmap after, the pages at 1 MiB. */
        g_assert_cmpuint(h.version, ==, 1);
        g_assert_cmpuint(h.page_size, ==, 4096);
        g_assert_cmpuint(h.bitmap_offset, ==, h.at + HDR_SIZE);
        g_assert_cmpuint(h.pages_offset % ALIGN, ==, 0);
        g_assert_cmpuint(h.pages_offset, >=,
                         h.bitmap_offset + used / 4096 / 8);
        g_assert_cmpuint(h.pages_offset, <,
                         h.bitmap_offset + used / 4096 / 8 + ALIGN);
        g_array_append_val(hdrs, h);
        listed += used;
        at = h.pages_offset + used;
    }
    close(fd);
    return hdrs;
}

/* Bits set in the block's bitmap. */
static uint64_t present_pages(const char *path, const BlockHeader *h)
{
    uint64_t size = (h->used_length / 4096 + 63) / 64 * 8, n = 0;
    g_autofree guint8 *bm = g_malloc(size);
    int fd = open(path, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, bm, size, h->bitmap_offset), ==, (ssize_t)size);
    close(fd);
    for (uint64_t i = 0; i < size; i++) {
        n += __builtin_popcount(bm[i]);
    }
    g_assert_cmpuint(n, >, 0);
    return n;
}

static void patch_file(const char *path, uint64_t offset, const void *data,
                       size_t len)
{
    int fd = open(path, O_WRONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, data, len, offset), ==, (ssize_t)len);
    close(fd);
}

static guint8 read_byte(const char *path, uint64_t offset)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    guint8 b;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, &b, 1, offset), ==, 1);
    close(fd);
    return b;
}

static void copy_file(const char *from, const char *to)
{
    g_autofree char *cmd = g_strdup_printf("cp --sparse=always '%s' '%s'",
                                           from, to);

    g_assert_cmpint(system(cmd), ==, 0);
}

/*
 * Start snapvm of @g with -incoming defer and QMP on stdin, ask for a
 * restore of @path with @mode, and return what it printed on stderr; it
 * must end with status 1 (a refused stream) within a minute.
 */
static char *restore_must_fail(const Guest *g, const char *path,
                               const char *mode)
{
    g_autofree char *args = guest_args(g);
    g_autofree char *line = g_strdup_printf("%s %s -S -incoming defer "
                                            "-qmp stdio -serial none",
                                            qtest_binary(), args);
    g_autofree char *cmds = g_strdup_printf(
        "{\"execute\": \"qmp_capabilities\"}\n"
        "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
        "{\"x-mapped-ram-restore\": \"%s\"}}\n"
        "{\"execute\": \"migrate-incoming\", \"arguments\": "
        "{\"uri\": \"file:%s\"}}\n", mode, path);
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) gerr = NULL;
    GString *err = g_string_new(NULL);
    int in_fd, out_fd, err_fd, status = -1;
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
    GPid pid;

    g_assert_true(g_shell_parse_argv(line, NULL, &argv, NULL));
    if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  NULL, NULL, &pid, &in_fd, &out_fd, &err_fd,
                                  &gerr)) {
        g_error("cannot start snapvm: %s", gerr->message);
    }
    /* stdin stays open: an end of input would be a quit. */
    g_assert_cmpint(write(in_fd, cmds, strlen(cmds)), ==, (ssize_t)strlen(cmds));
    g_unix_set_fd_nonblocking(out_fd, true, NULL);
    g_unix_set_fd_nonblocking(err_fd, true, NULL);
    for (;;) {
        char buf[4096];
        ssize_t n;
        pid_t r;

        while ((n = read(out_fd, buf, sizeof(buf))) > 0) {
            /* QMP replies: not needed. */
        }
        while ((n = read(err_fd, buf, sizeof(buf))) > 0) {
            g_string_append_len(err, buf, n);
        }
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            g_error("snapvm did not refuse %s within 60 s", path);
        }
        g_usleep(5000);
    }
    {
        char buf[4096];
        ssize_t n;

        while ((n = read(err_fd, buf, sizeof(buf))) > 0) {
            g_string_append_len(err, buf, n);
        }
    }
    close(in_fd);
    close(out_fd);
    close(err_fd);
    g_spawn_close_pid(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
        g_error("snapvm restoring %s (%s) ended with status 0x%x, not exit "
                "1; stderr: %s", path, mode, status, err->str);
    }
    return g_string_free(err, false);
}

static void assert_refused(const Guest *g, const char *path, const char *mode,
                           const char *what, uint64_t offset)
{
    g_autofree char *err = restore_must_fail(g, path, mode);
    g_autofree char *at = g_strdup_printf("offset %" PRIu64, offset);

    if (!strstr(err, what) || !strstr(err, at)) {
        g_error("restore of %s (%s): stderr '%s' does not say '%s' and '%s'",
                path, mode, err, what, at);
    }
}

/* ---- round trips ---- */

static void stop_copy(const char *mode)
{
    Guest g = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = start_guest(&g);
    g_autofree char *file = tmp_file(src, "stop-copy.snap");
    QTestState *dst;

    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"stop\"}"));
    set_caps(src, true, false);
    json_object_unref(save_to(src, file));
    dst = restore_from(&g, file, mode, 2);
    assert_same_state(src, dst, &g);
    /* Either way the RAM is memory of its own, not the file's pages. */
    g_assert_false(maps_file(dst, file));
    cont_and_assert_runs(dst);
    sweep_assert_consistent(src, (uint64_t)g.ram_mb * SNAP_MiB, g.smp);
    qtest_quit(dst);
    qtest_quit(src);
}

static void test_stop_copy_eager(void)
{
    stop_copy("eager");
}

static void test_stop_copy_lazy(void)
{
    stop_copy("lazy");
}

/*
 * A background snapshot of a running guest with mapped-ram, restored
 * with @mode and @channels: the restored guest is of one instant.
 */
static void background(const char *mode, int channels, bool direct_io)
{
    QTestState *src = start_guest(&sweep2);
    g_autofree char *file = tmp_file(src, "bg.snap");
    g_autofree char *members = g_strdup_printf(
        "\"multifd-channels\": %d, \"direct-io\": %s", channels,
        direct_io ? "true" : "false");
    g_autoptr(JsonObject) info = NULL;
    g_autoptr(JsonNode) params = NULL;
    g_autofree char *st = NULL;
    QTestState *dst;

    set_caps(src, true, true);
    set_params(src, members);
    params = qtest_qmp_assert_success(src,
        "{\"execute\": \"query-migrate-parameters\"}");
    g_assert_cmpint(json_object_get_int_member(json_node_get_object(params),
                                               "multifd-channels"), ==,
                    channels);
    g_assert_cmpint(json_object_get_boolean_member(
                        json_node_get_object(params), "direct-io"), ==,
                    direct_io);
    info = save_to(src, file);
    st = qtest_query_status(src);
    g_assert_cmpstr(st, ==, "running");
    snap_assert_guest_runs(src);
    snap_assert_nothing_protected(src);

    dst = restore_from(&sweep2, file, mode, channels);
    sweep_assert_consistent(dst, (uint64_t)sweep2.ram_mb * SNAP_MiB,
                            sweep2.smp);
    cont_and_assert_runs(dst);
    qtest_quit(dst);
    qtest_quit(src);
}

static void test_background_eager(void)
{
    background("eager", 2, false);
}

static void test_background_lazy(void)
{
    background("lazy", 2, false);
}

static void test_writers(gconstpointer data)
{
    background("eager", GPOINTER_TO_INT(data), true);
}

/*
 * Live pre-copy of a running guest writes many pages more than once; the
 * file must still be exactly its layout (no page has two places), and an
 * idle guest's file must be mostly holes.
 */
static void test_bounded(void)
{
    QTestState *src = start_guest(&sweep2);
    g_autofree char *file = tmp_file(src, "live.snap");
    g_autoptr(JsonObject) info = NULL;
    g_autoptr(GArray) hdrs = NULL;
    uint64_t ram = (uint64_t)sweep2.ram_mb * SNAP_MiB;
    JsonObject *r;
    BlockHeader *h;
    struct stat st;
    QTestState *dst;

    set_caps(src, true, false);
    snap_set_params(src, -1, 0);
    info = save_to(src, file);
    r = json_object_get_object_member(info, "ram");
    hdrs = read_headers(file);
    g_assert_cmpuint(hdrs->len, ==, 1);
    h = &g_array_index(hdrs, BlockHeader, 0);
    /* Pages the guest dirtied were written again (more writes than
     * pages present in the end)... */
    g_assert_cmpint(json_object_get_int_member(r, "dirty-sync-count"), >=, 1);
    g_assert_cmpint(json_object_get_int_member(r, "normal"), >,
                    present_pages(file, h));
    /* ...over themselves: one block, its page area, a little device state. */
    g_assert_cmpint(stat(file, &st), ==, 0);
    g_assert_cmpuint(h->pages_offset, ==, ALIGN);
    g_assert_cmpuint(st.st_size, >, h->pages_offset + ram);
    g_assert_cmpuint(st.st_size, <, h->pages_offset + ram + 64 * 1024);
    /* And it restores to the last instant (the guest was stopped then). */
    dst = restore_from(&sweep2, file, "eager", 2);
    sweep_assert_consistent(dst, ram, sweep2.smp);
    qtest_quit(dst);
    qtest_quit(src);

    /* An idle guest: 256 MiB of RAM, almost all of it holes. */
    Guest idle = { "idle", 1, 256, false };
    src = start_guest(&idle);
    g_free(file);
    file = tmp_file(src, "idle.snap");
    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"stop\"}"));
    set_caps(src, true, false);
    json_object_unref(save_to(src, file));
    g_assert_cmpint(stat(file, &st), ==, 0);
    g_assert_cmpuint(st.st_size, >, 256ull * SNAP_MiB);
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, 4ull * SNAP_MiB);
    dst = restore_from(&idle, file, "lazy", 1);
    assert_same_state(src, dst, &idle);
    qtest_quit(dst);
    qtest_quit(src);
}

/* Pages of guest RAM (the first block) present in snapvm's page tables. */
static uint64_t ram_present_pages(QTestState *qts)
{
    g_autofree char *table = qtest_hmp(qts, "info ramblock");
    g_auto(GStrv) lines = g_strsplit(table, "\n", -1);
    g_auto(GStrv) col = g_strsplit_set(g_strstrip(lines[1]), " ", -1);
    guint n = g_strv_length(col);
    uint64_t hva = g_ascii_strtoull(col[n - 1], NULL, 16);
    uint64_t size = g_ascii_strtoull(col[n - 2], NULL, 16);
    g_autofree char *path = g_strdup_printf("/proc/%d/pagemap",
                                            (int)qtest_pid(qts));
    g_autofree uint64_t *ent = g_new(uint64_t, size / SWEEP_PAGE);
    int fd = open(path, O_RDONLY);
    uint64_t present = 0;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, ent, size / SWEEP_PAGE * 8,
                          hva / SWEEP_PAGE * 8), ==,
                    (ssize_t)(size / SWEEP_PAGE * 8));
    close(fd);
    for (uint64_t i = 0; i < size / SWEEP_PAGE; i++) {
        present += ent[i] >> 63;
    }
    return present;
}

/*
 * Lazy restore brings RAM in on first touch, 2 MiB at a time: with the
 * background walk off (a test-only switch), nothing is in memory after
 * the load, one read brings exactly its chunk, and reading everything
 * gives the saved guest exactly.
 */
static void test_lazy_on_demand(void)
{
    Guest g = { "a-b-sweep", 2, RAM_MB, false };
    const char *env[] = { "SNAPVM_TEST_MAPPED_RAM_NO_WALK=1", NULL };
    QTestState *src = start_guest(&g);
    g_autofree char *file = tmp_file(src, "on-demand.snap");
    g_autofree guint8 *page = NULL;
    QTestState *dst;

    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"stop\"}"));
    set_caps(src, true, false);
    json_object_unref(save_to(src, file));
    dst = restore_from_env(&g, file, "lazy", 2, env);
    g_assert_cmpuint(ram_present_pages(dst), ==, 0);
    /* One page at 5 MiB + 4 KiB: its 2 MiB chunk, [4 MiB, 6 MiB). */
    page = sweep_read_guest_ram(dst, 5 * SNAP_MiB + SWEEP_PAGE, SWEEP_PAGE);
    g_assert_cmpuint(ram_present_pages(dst), ==, 2 * SNAP_MiB / SWEEP_PAGE);
    assert_same_state(src, dst, &g);
    g_assert_cmpuint(ram_present_pages(dst), ==,
                     (uint64_t)RAM_MB * SNAP_MiB / SWEEP_PAGE);
    cont_and_assert_runs(dst);
    qtest_quit(dst);

    /* Quit with most of RAM never brought in: a clean exit, status 0. */
    dst = restore_from_env(&g, file, "lazy", 2, env);
    g_free(sweep_read_guest_ram(dst, 0, SWEEP_PAGE));
    g_assert_cmpuint(ram_present_pages(dst), ==, 2 * SNAP_MiB / SWEEP_PAGE);
    qtest_qmp_send(dst, "{\"execute\": \"quit\"}");
    g_assert_cmpint(qtest_wait_exit(dst, 30000), ==, 0);
    qtest_quit(src);
}

/* ---- refusals ---- */

/* A good stop-and-copy mapped-ram file of @g, in @qts's directory. */
static char *good_file(QTestState **qts, const Guest *g)
{
    char *file;

    *qts = start_guest(g);
    file = tmp_file(*qts, "good.snap");
    json_node_unref(qtest_qmp_assert_success(*qts,
                                             "{\"execute\": \"stop\"}"));
    set_caps(*qts, true, false);
    json_object_unref(save_to(*qts, file));
    return file;
}

static void test_truncated(void)
{
    QTestState *src;
    g_autofree char *good = good_file(&src, &sweep2);
    g_autofree char *bad = tmp_file(src, "truncated.snap");
    g_autoptr(GArray) hdrs = read_headers(good);
    BlockHeader *h = &g_array_index(hdrs, BlockHeader, 0);
    uint64_t cut = h->pages_offset + 5 * SNAP_MiB;

    g_assert_cmpuint(hdrs->len, ==, 1);
    /* Inside the page area: the size says it is short. */
    copy_file(good, bad);
    g_assert_cmpint(truncate(bad, cut), ==, 0);
    assert_refused(&sweep2, bad, "eager", "truncated", cut);
    assert_refused(&sweep2, bad, "lazy", "truncated", cut);
    /* Inside the bitmap: the stream itself ends early. */
    g_assert_cmpint(truncate(bad, h->bitmap_offset + 8), ==, 0);
    {
        g_autofree char *err = restore_must_fail(&sweep2, bad, "eager");
        g_assert_nonnull(strstr(err, "offset"));
        g_assert_nonnull(strstr(err, "pc.ram"));
    }
    qtest_quit(src);
}

static void test_corrupt_header(void)
{
    QTestState *src;
    g_autofree char *good = good_file(&src, &sweep2);
    g_autofree char *bad = tmp_file(src, "header.snap");
    g_autoptr(GArray) hdrs = read_headers(good);
    BlockHeader *h = &g_array_index(hdrs, BlockHeader, 0);
    guint8 b[8];

    g_assert_cmpuint(hdrs->len, ==, 1);
    copy_file(good, bad);
    be_put(b, 4, 2);
    patch_file(bad, h->at, b, 4);
    assert_refused(&sweep2, bad, "eager", "version 2", h->at);

    copy_file(good, bad);
    be_put(b, 8, 65536);
    patch_file(bad, h->at + 4, b, 8);
    assert_refused(&sweep2, bad, "lazy", "page size 65536", h->at + 4);

    /* Pages not page aligned: they could not be mapped. */
    copy_file(good, bad);
    be_put(b, 8, h->pages_offset + 100);
    patch_file(bad, h->at + 20, b, 8);
    assert_refused(&sweep2, bad, "lazy", "do not fit the layout", h->at + 12);

    /* Pages beyond the end of the file. */
    copy_file(good, bad);
    be_put(b, 8, h->pages_offset + 1024ull * SNAP_MiB);
    patch_file(bad, h->at + 20, b, 8);
    {
        struct stat st;

        g_assert_cmpint(stat(bad, &st), ==, 0);
        assert_refused(&sweep2, bad, "eager", "truncated", st.st_size);
    }
    qtest_quit(src);
}

/*
 * A bitmap that marks a hole present: snapvm never writes a zero page,
 * so the page area must hold data there.  Eager finds it reading, lazy
 * with SEEK_HOLE, snapvm-img check too.
 */
static void test_corrupt_bitmap(void)
{
    QTestState *src;
    g_autofree char *good = good_file(&src, &sweep2);
    g_autofree char *bad = tmp_file(src, "bitmap.snap");
    g_autoptr(GArray) hdrs = read_headers(good);
    BlockHeader *h = &g_array_index(hdrs, BlockHeader, 0);
    guint8 word[8];
    int fd = open(good, O_RDONLY);
    uint64_t page = UINT64_MAX;

    g_assert_cmpuint(hdrs->len, ==, 1);
    g_assert_cmpint(fd, >=, 0);
    /* The first absent page: below 1 MiB, where the guest wrote little. */
    for (uint64_t w = 0; w < 256 / 64 && page == UINT64_MAX; w++) {
        g_assert_cmpint(pread(fd, word, 8, h->bitmap_offset + w * 8), ==, 8);
        for (int bit = 0; bit < 64; bit++) {
            if (!(word[bit / 8] & (1 << (bit % 8)))) {
                page = w * 64 + bit;
                break;
            }
        }
    }
    close(fd);
    g_assert_cmpuint(page, !=, UINT64_MAX);
    copy_file(good, bad);
    {
        guint8 byte;

        fd = open(bad, O_RDONLY);
        g_assert_cmpint(pread(fd, &byte, 1, h->bitmap_offset + page / 8), ==,
                        1);
        close(fd);
        byte |= 1 << (page % 8);
        patch_file(bad, h->bitmap_offset + page / 8, &byte, 1);
    }
    assert_refused(&sweep2, bad, "eager", "holds no data",
                   h->bitmap_offset + page / 8);
    assert_refused(&sweep2, bad, "lazy", "holds no data",
                   h->bitmap_offset + page / 8);
    assert_refused(&sweep2, bad, "lazy", "marks page",
                   h->pages_offset + page * SWEEP_PAGE);
    qtest_quit(src);
}

static void test_not_file(void)
{
    QTestState *src = start_guest(&sweep2);
    g_autofree char *good = NULL;
    g_autofree char *cat = NULL;
    g_autofree char *sock = tmp_file(src, "mig.sock");
    g_autofree char *unix_uri = g_strdup_printf("unix:%s", sock);
    const char *uris[] = { "exec:cat > /dev/null", unix_uri,
                           "tcp:127.0.0.1:1" };

    set_caps(src, true, false);
    for (unsigned i = 0; i < G_N_ELEMENTS(uris); i++) {
        g_autofree char *q = qtest_json_quote(uris[i]);
        g_autoptr(JsonObject) r = qtest_qmp(src,
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": %s}}", q);
        const char *desc = qtest_reply_error_desc(r, "GenericError");

        if (!strstr(desc, "Capability 'mapped-ram' needs a file: migration "
                    "URI")) {
            g_error("migrate %s with mapped-ram: '%s'", uris[i], desc);
        }
    }
    /* Nothing started: the guest runs on, and a file: target works. */
    {
        g_autoptr(JsonObject) info = snap_query_migrate(src);
        g_assert_cmpstr(snap_status(info), ==, "none");
    }
    snap_assert_guest_runs(src);
    /* direct-io without mapped-ram is refused as well. */
    set_caps(src, false, false);
    set_params(src, "\"direct-io\": true");
    {
        g_autofree char *f = tmp_file(src, "x.snap");
        g_autofree char *uri = g_strdup_printf("file:%s", f);
        g_autofree char *q = qtest_json_quote(uri);
        g_autoptr(JsonObject) r = qtest_qmp(src,
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": %s}}", q);

        g_assert_nonnull(strstr(qtest_reply_error_desc(r, "GenericError"),
                                "needs the capability 'mapped-ram'"));
    }
    set_params(src, "\"direct-io\": false");
    qtest_quit(src);

    /* A mapped-ram file through a pipe cannot be read at its offsets. */
    good = good_file(&src, &sweep2);
    cat = g_strdup_printf("-m %dM -smp %d -incoming 'exec:cat %s'",
                          sweep2.ram_mb, sweep2.smp, good);
    {
        g_autofree char *err = NULL;

        g_assert_cmpint(qtest_run(cat, 60000, NULL, &err), ==, 1);
        if (!strstr(err, "open it with file:")) {
            g_error("mapped-ram file through exec:cat: '%s'", err);
        }
    }
    qtest_quit(src);
}

/*
 * A lazily restored guest runs, then is snapshotted again (background,
 * mapped-ram, over the very file its RAM is mapped from): the new file is
 * exact, and the guest no longer depends on the old one.
 */
static void test_lazy_then_snapshot(void)
{
    QTestState *src = start_guest(&sweep2);
    g_autofree char *file = tmp_file(src, "first.snap");
    g_autofree char *stream = tmp_file(src, "second.stream");
    uint64_t ram = (uint64_t)sweep2.ram_mb * SNAP_MiB;
    QTestState *mid, *dst;
    gsize before;

    set_caps(src, true, true);
    json_object_unref(save_to(src, file));

    mid = restore_from(&sweep2, file, "lazy", 2);
    json_node_unref(qtest_qmp_assert_success(mid, "{\"execute\": \"cont\"}"));
    /* Several passes of the sweep over the file-backed RAM. */
    before = qtest_serial_size(mid);
    while (qtest_serial_size(mid) < before + 4) {
        snap_assert_guest_runs(mid);
    }
    set_caps(mid, true, true);
    json_object_unref(save_to(mid, file));
    g_assert_false(maps_file(mid, file));
    snap_assert_guest_runs(mid);
    snap_assert_nothing_protected(mid);
    dst = restore_from(&sweep2, file, "lazy", 2);
    sweep_assert_consistent(dst, ram, sweep2.smp);
    qtest_quit(dst);

    /* And a plain stream snapshot of it as well. */
    set_caps(mid, false, true);
    {
        SnapVM vm = { sweep2.kernel, sweep2.smp, sweep2.ram_mb };

        snap_snapshot_and_check(mid, &vm, stream);
    }
    qtest_quit(mid);
    /* Its directory holds the files. */
    qtest_quit(src);
}

/* ---- snapvm-img ---- */

static char *img_binary(void)
{
    g_autofree char *dir = g_path_get_dirname(qtest_binary());

    return g_build_filename(dir, "snapvm-img", NULL);
}

/* Run snapvm-img with @args; its exit status; @out gets stdout+stderr. */
static int img(char **out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static int img(char **out, const char *fmt, ...)
{
    g_autofree char *bin = img_binary();
    g_autofree char *args = NULL;
    g_autofree char *line = NULL;
    g_autofree char *o = NULL, *e = NULL;
    g_auto(GStrv) argv = NULL;
    g_autoptr(GError) err = NULL;
    va_list ap;
    int status;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strdup_printf("'%s' %s", bin, args);
    g_assert_true(g_shell_parse_argv(line, NULL, &argv, NULL));
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &e,
                      &status, &err)) {
        g_error("cannot run %s: %s", line, err->message);
    }
    if (out) {
        *out = g_strconcat(o, e, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_img(void)
{
    Guest g = { "a-b-sweep", 2, RAM_MB, true };
    QTestState *src = start_guest(&g);
    g_autofree char *stream = tmp_file(src, "a.stream");
    g_autofree char *mapped = tmp_file(src, "b.mapped");
    g_autofree char *mapped2 = tmp_file(src, "c.mapped");
    g_autofree char *stream2 = tmp_file(src, "d.stream");
    g_autofree char *bad = tmp_file(src, "e.mapped");
    g_autofree char *out = NULL;
    g_autofree char *d1 = tmp_file(src, "dump1");
    g_autofree char *d2 = tmp_file(src, "dump2");
    g_autoptr(GArray) hdrs = NULL;
    QTestState *dst;

    /* The same stopped guest saved in both layouts. */
    json_node_unref(qtest_qmp_assert_success(src, "{\"execute\": \"stop\"}"));
    set_caps(src, false, false);
    json_object_unref(save_to(src, stream));
    set_caps(src, true, false);
    json_object_unref(save_to(src, mapped));

    g_assert_cmpint(img(&out, "info '%s'", mapped), ==, 0);
    g_assert_nonnull(strstr(out, "layout: mapped-ram"));
    g_assert_nonnull(strstr(out, "complete: yes"));
    g_free(out);
    g_assert_cmpint(img(&out, "info '%s'", stream), ==, 0);
    g_assert_nonnull(strstr(out, "layout: stream"));
    g_free(out);
    g_assert_cmpint(img(&out, "check '%s'", mapped), ==, 0);
    g_free(out);

    /* dump-ram of either layout gives the same blocks. */
    g_assert_cmpint(img(NULL, "dump-ram '%s' '%s'", stream, d1), ==, 0);
    g_assert_cmpint(img(NULL, "dump-ram '%s' '%s'", mapped, d2), ==, 0);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "m1" : "m0";
        g_autofree char *p1 = g_build_filename(d1, name, NULL);
        g_autofree char *p2 = g_build_filename(d2, name, NULL);
        g_autofree char *a = NULL, *b = NULL;
        gsize la, lb;

        g_assert_true(g_file_get_contents(p1, &a, &la, NULL));
        g_assert_true(g_file_get_contents(p2, &b, &lb, NULL));
        g_assert_cmpuint(la, ==, lb);
        g_assert_true(memcmp(a, b, la) == 0);
    }

    /* stream -> mapped-ram, restored lazily: the saved guest exactly. */
    g_assert_cmpint(img(&out, "convert '%s' '%s' --to mapped-ram", stream,
                        mapped2), ==, 0);
    g_free(out);
    g_assert_cmpint(img(&out, "info '%s'", mapped2), ==, 0);
    g_assert_nonnull(strstr(out, "layout: mapped-ram"));
    g_free(out);
    hdrs = read_headers(mapped2);
    g_assert_cmpuint(hdrs->len, ==, 2);
    dst = restore_from(&g, mapped2, "lazy", 2);
    assert_same_state(src, dst, &g);
    qtest_quit(dst);

    /* mapped-ram -> stream, restored through a pipe: exactly again. */
    g_assert_cmpint(img(&out, "convert '%s' '%s' --to stream", mapped,
                        stream2), ==, 0);
    g_free(out);
    {
        g_autofree char *args = guest_args(&g);
        g_autoptr(JsonObject) info = NULL;

        dst = qtest_initf("%s -S -incoming 'exec:cat %s'", args, stream2);
        info = snap_wait_end(dst, SNAP_END_TIMEOUT_MS);
        g_assert_cmpstr(snap_status(info), ==, "completed");
        assert_same_state(src, dst, &g);
        qtest_quit(dst);
    }

    /* check refuses a corrupted bitmap, naming its offset. */
    copy_file(mapped, bad);
    g_array_unref(hdrs);
    hdrs = read_headers(bad);
    {
        BlockHeader *h = &g_array_index(hdrs, BlockHeader, 0);
        guint8 ones = 0xff;
        g_autofree char *at = g_strdup_printf("offset %" PRIu64,
                                              h->bitmap_offset);

        patch_file(bad, h->bitmap_offset, &ones, 1);
        g_assert_cmpint(img(&out, "check '%s'", bad), ==, 1);
        g_assert_nonnull(strstr(out, "holds no data"));
        g_assert_nonnull(strstr(out, at));
        g_free(out);
        out = NULL;
    }
    /* convert refuses what it cannot read, and leaves no file. */
    g_assert_cmpint(img(&out, "convert '%s' '%s' --to stream", bad,
                        stream2), ==, 1);
    qtest_quit(src);
}

/*
 * A bit flipped in a page of a good file: snapvm-img check, an eager and
 * a lazy restore each refuse it, naming the region and its file offsets.
 * A present page marked absent fails the bitmaps' checksum.
 */
static void test_checksums(void)
{
    QTestState *src;
    g_autofree char *good = good_file(&src, &sweep2);
    g_autofree char *bad = tmp_file(src, "flipped.snap");
    g_autoptr(GArray) hdrs = read_headers(good);
    BlockHeader *h = &g_array_index(hdrs, BlockHeader, 0);
    const uint64_t page = 800;      /* in [2 MiB, 4 MiB): region 1 */
    uint64_t page_at = h->pages_offset + page * 4096;
    g_autofree char *needle = g_strdup_printf(
        "RAM block 'pc.ram', bytes 0x200000 to 0x3fffff (2 MiB region 1, "
        "file offsets %" PRIu64 " to %" PRIu64 "), does not match its "
        "checksum", h->pages_offset + 2 * SNAP_MiB,
        h->pages_offset + 4 * SNAP_MiB - 1);
    g_autofree char *out = NULL, *err = NULL;
    guint8 byte, bm;

    g_assert_cmpint(img(&out, "verify '%s'", good), ==, 0);
    g_assert_nonnull(strstr(out, "checksums: verified"));
    g_clear_pointer(&out, g_free);

    copy_file(good, bad);
    byte = read_byte(bad, page_at + 100);
    byte ^= 0x08;
    patch_file(bad, page_at + 100, &byte, 1);
    g_assert_cmpint(img(&out, "check '%s'", bad), ==, 1);
    if (!strstr(out, needle)) {
        g_error("snapvm-img check: '%s' lacks '%s'", out, needle);
    }
    err = restore_must_fail(&sweep2, bad, "eager");
    if (!strstr(err, needle)) {
        g_error("eager restore: '%s' lacks '%s'", err, needle);
    }
    g_clear_pointer(&err, g_free);
    /* Lazy: the background walk fills region 1 and stops there. */
    err = restore_must_fail(&sweep2, bad, "lazy");
    if (!strstr(err, needle)) {
        g_error("lazy restore: '%s' lacks '%s'", err, needle);
    }

    /* Page 800 marked absent: its data is ignored, the bitmaps differ. */
    copy_file(good, bad);
    bm = read_byte(bad, h->bitmap_offset + page / 8);
    g_assert_true(bm & (1u << (page % 8)));
    bm &= ~(1u << (page % 8));
    patch_file(bad, h->bitmap_offset + page / 8, &bm, 1);
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(img(&out, "check '%s'", bad), ==, 1);
    g_assert_nonnull(strstr(out, "the mapped-ram bitmaps do not match"));
    g_clear_pointer(&out, g_free);

    /* A field of vCPU 0, and a field's name in the trailer. */
    g_assert_cmpint(img(&out, "info '%s'", good), ==, 0);
    {
        const char *cpu = strstr(out, "  cpu ");
        const char *at = cpu ? strstr(cpu, "bytes at offset ") : NULL;
        uint64_t cpu_at;
        g_autofree char *file = NULL;
        gsize len;
        const char *json, *rax;

        g_assert_nonnull(at);
        cpu_at = g_ascii_strtoull(at + strlen("bytes at offset "), NULL, 10);
        g_clear_pointer(&out, g_free);
        copy_file(good, bad);
        /* Past the 17-byte header: the first register. */
        byte = read_byte(bad, cpu_at + 17 + 7) ^ 0x01;
        patch_file(bad, cpu_at + 17 + 7, &byte, 1);
        g_assert_cmpint(img(&out, "check '%s'", bad), ==, 1);
        g_assert_nonnull(strstr(out, "device state of 'cpu' instance 0"));
        g_clear_pointer(&out, g_free);

        g_assert_true(g_file_get_contents(good, &file, &len, NULL));
        /* The trailer is the file's last bytes, after the last NUL. */
        json = memmem(file + len - MIN(len, 64 * 1024), MIN(len, 64 * 1024),
                      "{\"page_size\"", 12);
        g_assert_nonnull(json);
        rax = strstr(json, "\"rax\"");
        g_assert_nonnull(rax);
        copy_file(good, bad);
        patch_file(bad, rax - file + 2, "b", 1);
        g_assert_cmpint(img(&out, "check '%s'", bad), ==, 1);
        g_assert_nonnull(strstr(out, "JSON description at offset"));
        g_assert_nonnull(strstr(out, "does not match its checksum"));
        g_clear_pointer(&out, g_free);
    }

    /* x-checksums off: a file as before checksums, which verify fails. */
    set_params(src, "\"x-checksums\": false");
    json_object_unref(save_to(src, bad));
    g_assert_cmpint(img(&out, "check '%s'", bad), ==, 0);
    g_assert_nonnull(strstr(out, "checksums: none"));
    g_clear_pointer(&out, g_free);
    g_assert_cmpint(img(&out, "verify '%s'", bad), ==, 1);
    g_assert_nonnull(strstr(out, "has no checksums"));
    qtest_quit(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mapped-ram/stop-copy/eager", test_stop_copy_eager);
    g_test_add_func("/mapped-ram/stop-copy/lazy", test_stop_copy_lazy);
    g_test_add_func("/mapped-ram/lazy-on-demand", test_lazy_on_demand);
    g_test_add_func("/mapped-ram/background/eager", test_background_eager);
    g_test_add_func("/mapped-ram/background/lazy", test_background_lazy);
    g_test_add_data_func("/mapped-ram/writers/1/direct-io",
                        GINT_TO_POINTER(1), test_writers);
    g_test_add_data_func("/mapped-ram/writers/2/direct-io",
                        GINT_TO_POINTER(2), test_writers);
    g_test_add_data_func("/mapped-ram/writers/4/direct-io",
                        GINT_TO_POINTER(4), test_writers);
    g_test_add_func("/mapped-ram/bounded", test_bounded);
    g_test_add_func("/mapped-ram/refuse/truncated", test_truncated);
    g_test_add_func("/mapped-ram/refuse/header", test_corrupt_header);
    g_test_add_func("/mapped-ram/refuse/bitmap", test_corrupt_bitmap);
    g_test_add_func("/mapped-ram/refuse/not-file", test_not_file);
    g_test_add_func("/mapped-ram/lazy-then-snapshot", test_lazy_then_snapshot);
    g_test_add_func("/mapped-ram/snapvm-img", test_img);
    g_test_add_func("/mapped-ram/checksums", test_checksums);
    return g_test_run();
}
