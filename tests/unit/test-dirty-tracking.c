/*
 * Dirty tracking for pre-copy (migration/dirty-tracking.c): every page
 * written between two syncs is reported, a quiet interval reports
 * nothing, and nothing stays protected after the tracker stops.
 *
 * Its userfaultfd calls go through util/userfaultfd.c: the test feature
 * mask hides asynchronous write-protect from it, and a fault injected in
 * any of those calls (or in its pagemap reads) fails the start or the
 * sync cleanly, leaving nothing registered or protected.
 *
 * With -m perf (g_test_perf) the tracker is timed on 1 GiB, the figures
 * quoted in docs/devel/migration.md; each timed sync must also have
 * reported exactly the pages written before it.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "qemu/userfaultfd.h"
#include "migration/dirty-tracking.h"
#include <sys/mman.h>

#define PAGEMAP_UFFD_WP (1ULL << 57)

typedef struct Seen {
    unsigned long *pages;   /* one bit per page of the block */
    uint64_t count;
} Seen;

static void record_dirty(RAMBlock *rb, uint64_t first, uint64_t n,
                         void *opaque)
{
    Seen *seen = opaque;

    g_assert_cmpuint(first + n, <=, ramblock_pages(rb));
    for (uint64_t p = first; p < first + n; p++) {
        seen->pages[p / 64] |= 1UL << (p % 64);
    }
    seen->count += n;
}

static bool seen_has(Seen *seen, uint64_t page)
{
    return seen->pages[page / 64] & (1UL << (page % 64));
}

static RAMBlock *block_new(const char *name, uint64_t size, bool memfd)
{
    RAMBlock *rb = g_new0(RAMBlock, 1);
    int fd = -1;

    g_strlcpy(rb->idstr, name, sizeof(rb->idstr));
    rb->used_length = size;
    rb->page_size = TARGET_PAGE_SIZE;
    if (memfd) {
        fd = memfd_create(name, MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(fd, size), ==, 0);
        rb->backend = RAM_BACKEND_MEMFD;
        rb->shared = true;
    }
    rb->fd = fd;
    rb->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                    memfd ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
    g_assert(rb->host != MAP_FAILED);
    if (!memfd) {
        madvise(rb->host, size, MADV_HUGEPAGE);
    }
    return rb;
}

static void block_free(RAMBlock *rb)
{
    munmap(rb->host, rb->used_length);
    if (rb->fd >= 0) {
        close(rb->fd);
    }
    g_free(rb);
}

static void no_pause(void *opaque)
{
}

static const DirtyQuiesceOps quiesce = {
    .pause = no_pause, .resume = no_pause,
};

static void check_method(DirtyTrackingMethod method, bool memfd)
{
    const uint64_t size = 32 * MiB;
    const uint64_t npages = size / TARGET_PAGE_SIZE;
    RAMBlock *rb = block_new("ram0", size, memfd);
    g_autofree unsigned long *bits = g_new0(unsigned long, npages / 64);
    Seen seen = { .pages = bits };

    if (!dirty_tracking_supported(method, NULL)) {
        g_test_skip("dirty tracking method unavailable on this kernel");
        block_free(rb);
        return;
    }
    /* Populate half of it first: present and absent pages both count. */
    memset(rb->host, 1, size / 2);
    DirtyTracker *dt = dirty_tracker_start(method, &rb, 1, &quiesce,
                                           &error_abort);

    for (uint64_t p = 0; p < npages; p += 37) {
        rb->host[p * TARGET_PAGE_SIZE + 5] ^= 0x5a;
    }
    g_assert_cmpint(dirty_tracker_sync(dt, record_dirty, &seen,
                                       &error_abort), >=, npages / 37);
    for (uint64_t p = 0; p < npages; p += 37) {
        g_assert_true(seen_has(&seen, p));
    }

    /* Quiet interval: nothing (pagemap-scan is exact to the page). */
    memset(bits, 0, npages / 8);
    seen.count = 0;
    g_assert_cmpint(dirty_tracker_sync(dt, record_dirty, &seen,
                                       &error_abort), ==, 0);

    /* A page written again after its sync is reported again. */
    rb->host[37 * TARGET_PAGE_SIZE] = 9;
    g_assert_cmpint(dirty_tracker_sync(dt, record_dirty, &seen,
                                       &error_abort), >=, 1);
    g_assert_true(seen_has(&seen, 37));

    dirty_tracker_stop(dt);
    /* Unregistered: a fresh tracker (a new uffd) can register again. */
    dt = dirty_tracker_start(method, &rb, 1, &quiesce, &error_abort);
    dirty_tracker_stop(dt);
    rb->host[0] = 1;
    block_free(rb);
}

/* Pages of @rb that are uffd-wp (/proc/self/pagemap bit 57). */
static uint64_t protected_pages(RAMBlock *rb)
{
    uint64_t npages = ramblock_pages(rb);
    g_autofree uint64_t *entries = g_new(uint64_t, npages);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t n = 0;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, entries, npages * 8,
                          ((uintptr_t)rb->host >> TARGET_PAGE_BITS) * 8),
                    ==, npages * 8);
    close(fd);
    for (uint64_t p = 0; p < npages; p++) {
        n += !!(entries[p] & PAGEMAP_UFFD_WP);
    }
    return n;
}

/*
 * SNAPVM_TEST_UFFD_HIDE_FEATURES reaches the dirty tracker: with
 * asynchronous write-protect hidden, pagemap-scan is refused, by name.
 */
static void test_pagemap_scan_hidden_refused(void)
{
    RAMBlock *rb = block_new("ram0", 2 * MiB, false);
    g_autofree char *mask = g_strdup_printf("0x%x", UFFD_FEATURE_WP_ASYNC);
    Error *err = NULL;

    if (!dirty_tracking_supported(DIRTY_TRACKING_PAGEMAP_SCAN, NULL)) {
        g_test_skip("dirty tracking method unavailable on this kernel");
        block_free(rb);
        return;
    }
    g_setenv("SNAPVM_TEST_UFFD_HIDE_FEATURES", mask, true);
    g_assert_false(dirty_tracking_supported(DIRTY_TRACKING_PAGEMAP_SCAN,
                                            &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "asynchronous"));
    g_clear_pointer(&err, error_free);
    g_assert_null(dirty_tracker_start(DIRTY_TRACKING_PAGEMAP_SCAN, &rb, 1,
                                      &quiesce, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "asynchronous"));
    g_clear_pointer(&err, error_free);
    g_unsetenv("SNAPVM_TEST_UFFD_HIDE_FEATURES");
    block_free(rb);
}

/*
 * The countdown of include/qemu/fault-inject.h over the tracker's whole
 * life (start, two syncs, stop): for N = 1, 2, ... the Nth call of the
 * kind fails, until a run never reaches it.  After each run nothing is
 * protected, and a fresh tracker (a new userfaultfd) can register the
 * same memory, so nothing stayed registered.
 */
static void countdown_kind(const char *kind, FaultKind k)
{
    RAMBlock *rb = block_new("ram0", 8 * MiB, false);
    g_autofree unsigned long *bits = g_new0(unsigned long,
                                            ramblock_pages(rb) / 64);
    Seen seen = { .pages = bits };
    unsigned n;

    memset(rb->host, 1, rb->used_length / 2);
    for (n = 1; n < 100; n++) {
        g_autofree char *spec = g_strdup_printf("%s:%u", kind, n);
        Error *err = NULL;
        bool ok;

        g_assert_true(fault_inject_configure(spec, &error_abort));
        DirtyTracker *dt = dirty_tracker_start(DIRTY_TRACKING_PAGEMAP_SCAN,
                                               &rb, 1, &quiesce, &err);
        ok = dt != NULL;
        rb->host[4096] ^= 1;
        ok = ok && dirty_tracker_sync(dt, record_dirty, &seen, &err) >= 0;
        rb->host[8192] ^= 1;
        ok = ok && dirty_tracker_sync(dt, record_dirty, &seen, &err) >= 0;
        dirty_tracker_stop(dt);
        if (!fault_inject_injected(k)) {
            g_assert_true(ok);
            break;
        }
        /* A failure after the last sync (the stop's) reports nothing. */
        g_assert_true(ok == !err);
        if (g_test_verbose()) {
            g_printerr("# %s: %s\n", spec, err ? error_get_pretty(err)
                                               : "(in the stop)");
        }
        error_free(err);
        g_assert_true(fault_inject_configure(NULL, &error_abort));
        g_assert_cmpuint(protected_pages(rb), ==, 0);
        dt = dirty_tracker_start(DIRTY_TRACKING_PAGEMAP_SCAN, &rb, 1,
                                 &quiesce, &error_abort);
        dirty_tracker_stop(dt);
    }
    g_assert_true(fault_inject_configure(NULL, &error_abort));
    /* The hook is there: the first call failed, and the walk ended. */
    g_assert_cmpuint(n, >, 1);
    g_assert_cmpuint(n, <, 100);
    block_free(rb);
}

static void test_pagemap_scan_countdown(void)
{
    if (!dirty_tracking_supported(DIRTY_TRACKING_PAGEMAP_SCAN, NULL)) {
        g_test_skip("dirty tracking method unavailable on this kernel");
        return;
    }
    countdown_kind("uffd-open", FAULT_UFFD_OPEN);
    countdown_kind("uffd-ioctl", FAULT_UFFD_IOCTL);
    countdown_kind("pagemap-read", FAULT_PAGEMAP_READ);
}

static void test_pagemap_scan_anon(void)
{
    check_method(DIRTY_TRACKING_PAGEMAP_SCAN, false);
}

static void test_pagemap_scan_memfd(void)
{
    check_method(DIRTY_TRACKING_PAGEMAP_SCAN, true);
}

static void test_soft_dirty_anon(void)
{
    check_method(DIRTY_TRACKING_SOFT_DIRTY, false);
}

static void test_soft_dirty_memfd(void)
{
    check_method(DIRTY_TRACKING_SOFT_DIRTY, true);
}

/*
 * Time start and sync on 1 GiB, all of it populated, 1/16 rewritten, and
 * check that each timed sync reported what was written: a sync that is
 * fast because it missed pages must fail here, not look good.
 */
static void perf_method(DirtyTrackingMethod method)
{
    const uint64_t size = 1 * GiB;
    const uint64_t npages = size / TARGET_PAGE_SIZE;
    RAMBlock *rb = block_new("perf", size, false);
    g_autofree unsigned long *bits = g_new0(unsigned long, npages / 64);
    Seen seen = { .pages = bits };
    int64_t some, none, all;

    memset(rb->host, 1, size);
    g_test_timer_start();
    DirtyTracker *dt = dirty_tracker_start(method, &rb, 1, &quiesce,
                                           &error_abort);
    double start_s = g_test_timer_elapsed();
    for (uint64_t off = 0; off < size; off += 16 * TARGET_PAGE_SIZE) {
        rb->host[off]++;
    }
    some = dirty_tracker_sync(dt, record_dirty, &seen, &error_abort);
    double sync_some_ms = dirty_tracker_last_sync_ns(dt) / 1e6;
    /* Every 16th page, each one seen (a huge page may report more). */
    g_assert_cmpint(some, >=, npages / 16);
    g_assert_cmpint(some, <=, npages);
    for (uint64_t p = 0; p < npages; p += 16) {
        g_assert_true(seen_has(&seen, p));
    }
    none = dirty_tracker_sync(dt, record_dirty, &seen, &error_abort);
    double sync_none_ms = dirty_tracker_last_sync_ns(dt) / 1e6;
    g_assert_cmpint(none, ==, 0);
    memset(bits, 0, npages / 8);
    memset(rb->host, 2, size);
    all = dirty_tracker_sync(dt, record_dirty, &seen, &error_abort);
    double sync_all_ms = dirty_tracker_last_sync_ns(dt) / 1e6;
    g_assert_cmpint(all, ==, npages);
    for (uint64_t p = 0; p < npages; p++) {
        g_assert_true(seen_has(&seen, p));
    }
    dirty_tracker_stop(dt);
    g_test_message("%s on 1 GiB: start %.2f ms, sync with 1/16 written "
                   "%.2f ms, with none %.2f ms, with all %.2f ms",
                   dirty_tracking_method_name(method), start_s * 1000,
                   sync_some_ms, sync_none_ms, sync_all_ms);
    block_free(rb);
}

static void test_perf(void)
{
    for (int m = 0; m < DIRTY_TRACKING__MAX; m++) {
        if (dirty_tracking_supported(m, NULL)) {
            perf_method(m);
        }
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dirty-tracking/pagemap-scan/anon",
                    test_pagemap_scan_anon);
    g_test_add_func("/dirty-tracking/pagemap-scan/memfd",
                    test_pagemap_scan_memfd);
    g_test_add_func("/dirty-tracking/pagemap-scan/hidden-feature-refused",
                    test_pagemap_scan_hidden_refused);
    g_test_add_func("/dirty-tracking/pagemap-scan/fault-countdown",
                    test_pagemap_scan_countdown);
    g_test_add_func("/dirty-tracking/soft-dirty/anon", test_soft_dirty_anon);
    g_test_add_func("/dirty-tracking/soft-dirty/memfd",
                    test_soft_dirty_memfd);
    if (g_test_perf()) {
        g_test_add_func("/dirty-tracking/perf/1GiB", test_perf);
    }
    return g_test_run();
}
