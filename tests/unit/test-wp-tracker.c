/*
 * The write tracker keeps a background snapshot exact: host threads play
 * the vCPUs, writing to write-protected memory as fast as they can while
 * the test drains the tracker the way the RAM save thread does.  The
 * pages collected must be the content at the instant of protection, each
 * exactly once, and afterwards no page may be left protected.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/cutils.h"
#include "migration/wp-tracker.h"
#include "migration/page-queue.h"
#include <sys/mman.h>

#define PAGEMAP_UFFD_WP (UINT64_C(1) << 57)

typedef struct Fixture {
    RAMBlock blocks[2];
    RAMBlock *list[2];
    unsigned nblocks;
    uint8_t *expected[2];       /* content at the snapshot instant */
    uint8_t *result[2];         /* what the saver collected */
    uint32_t *times_written[2];
    bool stop_writers;
    uint64_t writes;
} Fixture;

static void block_init(RAMBlock *rb, const char *name, uint64_t size,
                       bool memfd)
{
    memset(rb, 0, sizeof(*rb));
    g_strlcpy(rb->idstr, name, sizeof(rb->idstr));
    rb->used_length = size;
    rb->page_size = TARGET_PAGE_SIZE;
    rb->fd = -1;
    if (memfd) {
        rb->fd = memfd_create(name, MFD_CLOEXEC);
        g_assert_cmpint(rb->fd, >=, 0);
        g_assert_cmpint(ftruncate(rb->fd, size), ==, 0);
        rb->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                        rb->fd, 0);
        rb->shared = true;
        rb->backend = RAM_BACKEND_MEMFD;
    } else {
        /* 2 MiB aligned so that regions line up with huge pages. */
        uint8_t *p = mmap(NULL, size + WP_REGION_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        g_assert(p != MAP_FAILED);
        rb->host = (uint8_t *)QEMU_ALIGN_UP((uintptr_t)p, WP_REGION_SIZE);
        madvise(rb->host, size, MADV_HUGEPAGE);
        rb->backend = RAM_BACKEND_ANON;
    }
    g_assert(rb->host != MAP_FAILED);
}

/*
 * Page i gets a recognisable pattern, except that every 7th page stays
 * zero and the last eighth of the block is never touched (unpopulated).
 */
static void block_fill(uint8_t *base, uint64_t npages, unsigned salt)
{
    for (uint64_t i = 0; i < npages - npages / 8; i++) {
        if (i % 7 == 3) {
            continue;
        }
        uint64_t *p = (uint64_t *)(base + (i << TARGET_PAGE_BITS));
        p[0] = i * 2654435761u + salt;
        p[511] = ~i;
    }
}

static void fixture_setup(Fixture *f, uint64_t size0, uint64_t size1)
{
    memset(f, 0, sizeof(*f));
    block_init(&f->blocks[0], "pc.ram", size0, false);
    f->nblocks = 1;
    if (size1) {
        block_init(&f->blocks[1], "mem1", size1, true);
        f->nblocks = 2;
    }
    for (unsigned i = 0; i < f->nblocks; i++) {
        RAMBlock *rb = &f->blocks[i];
        f->list[i] = rb;
        /* Filled twice rather than copied, so the tail stays unpopulated. */
        block_fill(rb->host, ramblock_pages(rb), i + 1);
        f->expected[i] = g_malloc0(rb->used_length);
        block_fill(f->expected[i], ramblock_pages(rb), i + 1);
        f->result[i] = g_malloc0(rb->used_length);
        f->times_written[i] = g_new0(uint32_t, ramblock_pages(rb));
    }
}

static void fixture_teardown(Fixture *f)
{
    for (unsigned i = 0; i < f->nblocks; i++) {
        g_free(f->expected[i]);
        g_free(f->result[i]);
        g_free(f->times_written[i]);
        if (f->blocks[i].fd >= 0) {
            munmap(f->blocks[i].host, f->blocks[i].used_length);
            close(f->blocks[i].fd);
        }
        /* Anonymous blocks are left mapped: the process ends soon. */
    }
}

/*
 * A guest store.  snapvm's vCPUs store through the CPU engine's generated
 * code, which ThreadSanitizer does not instrument, and the kernel orders
 * a store to a protected page after the tracker's copy of it, out of
 * TSan's sight.  The threads that play vCPUs here store the same way, so
 * that the TSan build checks the tracker, not this stand-in.
 */
__attribute__((noinline, no_sanitize("thread")))
static void guest_store_add(void *p, uint64_t v)
{
    uint64_t *word = p;

    *word += v;
}

typedef struct Writer {
    Fixture *f;
    unsigned seed;
} Writer;

/* A "vCPU": scribbles over random pages, unpopulated ones included. */
static gpointer writer_thread(gpointer opaque)
{
    Writer *w = opaque;
    GRand *rand = g_rand_new_with_seed(w->seed);

    while (!qatomic_load_acquire(&w->f->stop_writers)) {
        RAMBlock *rb = &w->f->blocks[g_rand_int_range(rand, 0,
                                                      w->f->nblocks)];
        uint64_t page = g_rand_int_range(rand, 0, ramblock_pages(rb));
        uint64_t *p = (uint64_t *)(rb->host + (page << TARGET_PAGE_BITS));
        guest_store_add(&p[g_rand_int_range(rand, 0, 512)], 0x1234567);
        qatomic_inc(&w->f->writes);
    }
    g_rand_free(rand);
    return NULL;
}

static unsigned block_index(Fixture *f, RAMBlock *rb)
{
    for (unsigned i = 0; i < f->nblocks; i++) {
        if (&f->blocks[i] == rb) {
            return i;
        }
    }
    g_assert_not_reached();
}

/* Pages of @rb's [@first, +@npages) write-protected now (pagemap). */
static uint64_t protected_range(RAMBlock *rb, uint64_t first,
                                uint64_t npages)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    uint64_t count = 0;
    g_autofree uint64_t *entries = g_new(uint64_t, npages);
    off_t off = ((uintptr_t)rb->host / TARGET_PAGE_SIZE + first) *
                sizeof(uint64_t);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, entries, npages * 8, off), ==, npages * 8);
    close(fd);
    for (uint64_t i = 0; i < npages; i++) {
        count += !!(entries[i] & PAGEMAP_UFFD_WP);
    }
    return count;
}

static uint64_t protected_pages(RAMBlock *rb)
{
    return protected_range(rb, 0, ramblock_pages(rb));
}

/*
 * Drain the tracker like the RAM save thread; optionally slowly.  Once a
 * run of guest RAM is done its pages are the guest's again: none stays
 * protected.
 */
static void save_all(Fixture *f, WPTracker *t, unsigned delay_us)
{
    WPRun *run = g_new0(WPRun, 1);
    Error *err = NULL;
    bool in_guest_ram;
    int ret;

    while ((ret = wp_tracker_next(t, run, &err)) == 1) {
        unsigned bi = block_index(f, run->rb);
        for (uint32_t i = 0; i < run->npages; i++) {
            uint64_t page = run->first_page + i;
            uint8_t *dst = f->result[bi] + (page << TARGET_PAGE_BITS);
            if (run->page[i]) {
                memcpy(dst, run->page[i], TARGET_PAGE_SIZE);
            } else {
                memset(dst, 0, TARGET_PAGE_SIZE);
            }
            f->times_written[bi][page]++;
        }
        if (delay_us) {
            g_usleep(delay_us);
        }
        in_guest_ram = run->in_guest_ram;
        g_assert_true(wp_tracker_done(t, run, &err));
        g_assert_null(err);
        /*
         * A run of copies is the fault thread's, which lifts the region's
         * protection on its own time (TSan's pace showed it can be after
         * the done); a run of guest RAM is lifted by the done itself.
         */
        if (in_guest_ram) {
            g_assert_cmpuint(protected_range(run->rb, run->first_page,
                                             run->npages), ==, 0);
        }
    }
    g_assert_null(err);
    g_assert_cmpint(ret, ==, 0);
    g_free(run);
}

/*
 * Wait until the writers have written past @count.  Only the progress is
 * checked, not its speed: a loaded machine may not schedule a writer for
 * a long while, so the bound is generous and only keeps a stuck writer
 * from hanging the test.
 */
static bool writers_pass(Fixture *f, uint64_t count)
{
    for (int i = 0; i < 2000 && qatomic_read(&f->writes) <= count; i++) {
        g_usleep(10 * 1000);
    }
    return qatomic_read(&f->writes) > count;
}


static void run_snapshot_expect(uint64_t size0, uint64_t size1,
                                uint64_t buffer, unsigned delay_us,
                                unsigned nwriters, int expect_method)
{
    Fixture f;
    Error *err = NULL;
    Writer writers[4];
    GThread *threads[4];

    fixture_setup(&f, size0, size1);
    g_assert_true(wp_tracker_check_support(f.list, f.nblocks, &err));
    g_assert_null(err);
    WPTracker *t = wp_tracker_new(f.list, f.nblocks, buffer, &err);
    g_assert_nonnull(t);
    g_assert_true(wp_tracker_start(t, &err));
    g_assert_null(err);
    for (unsigned i = 0; i < f.nblocks; i++) {
        g_assert_cmpuint(protected_pages(&f.blocks[i]), >, 0);
    }

    for (unsigned i = 0; i < nwriters; i++) {
        writers[i] = (Writer) { .f = &f, .seed = 42 + i };
        threads[i] = g_thread_new("writer", writer_thread, &writers[i]);
    }
    save_all(&f, t, delay_us);

    WPTrackerStats stats;
    wp_tracker_get_stats(t, &stats);
    wp_tracker_free(t);
    for (unsigned i = 0; i < f.nblocks; i++) {
        g_assert_cmpuint(protected_pages(&f.blocks[i]), ==, 0);
    }
    /* The writers must not have been stuck: they still make progress. */
    if (nwriters) {
        g_assert_true(writers_pass(&f, qatomic_read(&f.writes)));
    }
    qatomic_store_release(&f.stop_writers, true);
    for (unsigned i = 0; i < nwriters; i++) {
        g_thread_join(threads[i]);
    }

    for (unsigned bi = 0; bi < f.nblocks; bi++) {
        RAMBlock *rb = &f.blocks[bi];
        for (uint64_t p = 0; p < ramblock_pages(rb); p++) {
            if (f.times_written[bi][p] != 1) {
                g_error("%s page %" PRIu64 " written %u times", rb->idstr, p,
                        f.times_written[bi][p]);
            }
        }
        if (memcmp(f.expected[bi], f.result[bi], rb->used_length)) {
            for (uint64_t p = 0; p < ramblock_pages(rb); p++) {
                uint64_t off = p << TARGET_PAGE_BITS;
                if (memcmp(f.expected[bi] + off, f.result[bi] + off,
                           TARGET_PAGE_SIZE)) {
                    g_error("%s page %" PRIu64 " differs from the snapshot "
                            "instant", rb->idstr, p);
                }
            }
        }
    }
    if (g_test_verbose()) {
        g_printerr("faults %" PRIu64 " copied %" PRIu64 " waited %" PRIu64
                   " peak %" PRIu64 " writes %" PRIu64 "\n", stats.faults,
                   stats.copied_pages, stats.waited_faults, stats.buffer_peak,
                   f.writes);
    }
    g_assert_cmpuint(stats.buffer_peak, <=, buffer);
    if (expect_method >= 0) {
        g_assert_cmpstr(wp_unpopulated_method_name(stats.unpopulated), ==,
                        wp_unpopulated_method_name(expect_method));
    }
    if (nwriters && buffer == 0) {
        g_assert_cmpuint(stats.copied_pages, ==, 0);
    }
    fixture_teardown(&f);
}

static void run_snapshot(uint64_t size0, uint64_t size1, uint64_t buffer,
                         unsigned delay_us, unsigned nwriters)
{
    run_snapshot_expect(size0, size1, buffer, delay_us, nwriters, -1);
}

/*
 * Anonymous RAM only: the populated map is taken at the pause, and the
 * writers' stores to never-populated pages must not reach the snapshot.
 */
static void test_exact_anon_pagemap_scan(void)
{
    run_snapshot_expect(32 * MiB, 0, 4 * MiB, 100, 2,
                        WP_UNPOPULATED_PAGEMAP_SCAN);
    run_snapshot_expect(16 * MiB, 0, 0, 100, 2, WP_UNPOPULATED_PAGEMAP_SCAN);
}

static void test_exact_anon_markers(void)
{
    g_setenv("SNAPVM_TEST_NO_PAGEMAP_SCAN", "1", true);
    run_snapshot_expect(32 * MiB, 0, 4 * MiB, 100, 2,
                        WP_UNPOPULATED_MARKERS);
    g_unsetenv("SNAPVM_TEST_NO_PAGEMAP_SCAN");
}

static void test_exact_anon_populate_read(void)
{
    g_setenv("SNAPVM_TEST_NO_PAGEMAP_SCAN", "1", true);
    g_setenv("SNAPVM_TEST_UFFD_HIDE_FEATURES", "0x2000", true);
    run_snapshot_expect(32 * MiB, 0, 4 * MiB, 100, 2,
                        WP_UNPOPULATED_POPULATE_READ);
    g_unsetenv("SNAPVM_TEST_UFFD_HIDE_FEATURES");
    g_unsetenv("SNAPVM_TEST_NO_PAGEMAP_SCAN");
}

static void test_exact_no_writers(void)
{
    run_snapshot(16 * MiB, 0, 4 * MiB, 0, 0);
}

static void test_exact_large_buffer(void)
{
    run_snapshot(64 * MiB, 8 * MiB, 128 * MiB, 50, 2);
}

static void test_exact_small_buffer(void)
{
    run_snapshot(64 * MiB, 8 * MiB, 4 * MiB, 200, 2);
}

static void test_exact_no_buffer(void)
{
    run_snapshot(32 * MiB, 8 * MiB, 0, 100, 2);
}

static void test_exact_odd_size(void)
{
    /* A block that ends in the middle of a region. */
    run_snapshot(5 * MiB + 12 * KiB, 3 * MiB + 4 * KiB, 1 * MiB, 50, 2);
}

static void test_exact_without_wp_unpopulated(void)
{
    g_setenv("SNAPVM_TEST_UFFD_HIDE_FEATURES", "0x2000", true);
    run_snapshot(32 * MiB, 4 * MiB, 4 * MiB, 50, 2);
    g_unsetenv("SNAPVM_TEST_UFFD_HIDE_FEATURES");
}

static void test_refused_without_wp(void)
{
    Fixture f;
    Error *err = NULL;

    fixture_setup(&f, 4 * MiB, 0);
    g_setenv("SNAPVM_TEST_UFFD_HIDE_FEATURES", "0x1", true);
    g_assert_false(wp_tracker_check_support(f.list, 1, &err));
    g_unsetenv("SNAPVM_TEST_UFFD_HIDE_FEATURES");
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "write-protect"));
    error_free(err);
    fixture_teardown(&f);
}

static void test_cancel_unblocks(void)
{
    Fixture f;
    Error *err = NULL;
    Writer w;

    fixture_setup(&f, 16 * MiB, 0);
    WPTracker *t = wp_tracker_new(f.list, 1, 0, &err);
    g_assert_true(wp_tracker_start(t, &err));
    w = (Writer) { .f = &f, .seed = 7 };
    GThread *th = g_thread_new("writer", writer_thread, &w);
    /* With no copy buffer and no saver, the writer blocks on a fault. */
    g_usleep(20000);
    uint64_t stuck = qatomic_read(&f.writes);
    g_usleep(20000);
    g_assert_cmpuint(qatomic_read(&f.writes), ==, stuck);
    wp_tracker_cancel(t);
    WPRun *run = g_new0(WPRun, 1);
    g_assert_cmpint(wp_tracker_next(t, run, &err), ==, -1);
    g_assert_nonnull(err);
    error_free(err);
    g_free(run);
    wp_tracker_free(t);
    g_assert_cmpuint(protected_pages(&f.blocks[0]), ==, 0);
    g_assert_true(writers_pass(&f, stuck));
    qatomic_store_release(&f.stop_writers, true);
    g_thread_join(th);
    fixture_teardown(&f);
}

/*
 * A save that fails after taking a queued region (a write error, a
 * cancel) never gives it back with wp_tracker_done(): freeing the tracker
 * must free it.  (The sanitizer build's leak check is what fails here.)
 */
static void test_free_while_saving(void)
{
    Fixture f;
    Error *err = NULL;

    fixture_setup(&f, 8 * MiB, 0);
    WPTracker *t = wp_tracker_new(f.list, 1, 4 * MiB, &err);
    g_assert_nonnull(t);
    g_assert_true(wp_tracker_start(t, &err));
    /* A write of ours: copied into the buffer and queued. */
    guest_store_add(f.blocks[0].host + 2 * WP_REGION_SIZE, 1);
    WPRun *run = g_new0(WPRun, 1);
    g_assert_cmpint(wp_tracker_next(t, run, &err), ==, 1);
    g_assert_false(run->in_guest_ram);
    g_assert_cmpuint(run->first_page, ==, 2 * WP_REGION_PAGES);
    wp_tracker_free(t);
    g_free(run);
    g_assert_cmpuint(protected_pages(&f.blocks[0]), ==, 0);
    fixture_teardown(&f);
}

static void test_page_queue_bounded(void)
{
    Error *err = NULL;
    PageQueue *q = page_queue_new(8 * TARGET_PAGE_SIZE, &err);
    uint32_t slots[9];

    g_assert_nonnull(q);
    g_assert_false(page_queue_reserve(q, 9, slots));
    g_assert_true(page_queue_reserve(q, 5, slots));
    g_assert_false(page_queue_reserve(q, 4, slots + 5));
    g_assert_true(page_queue_reserve(q, 3, slots + 5));
    for (unsigned i = 0; i < 8; i++) {
        for (unsigned j = 0; j < i; j++) {
            g_assert_cmpuint(slots[i], !=, slots[j]);
        }
    }
    page_queue_release(q, slots, 8);
    g_assert_cmpuint(page_queue_peak_bytes(q), ==, 8 * TARGET_PAGE_SIZE);
    g_assert_true(page_queue_reserve(q, 8, slots));
    page_queue_free(q);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/wp-tracker/page-queue/bounded", test_page_queue_bounded);
    g_test_add_func("/wp-tracker/exact/no-writers", test_exact_no_writers);
    g_test_add_func("/wp-tracker/exact/anon-pagemap-scan",
                    test_exact_anon_pagemap_scan);
    g_test_add_func("/wp-tracker/exact/anon-wp-unpopulated",
                    test_exact_anon_markers);
    g_test_add_func("/wp-tracker/exact/anon-populate-read",
                    test_exact_anon_populate_read);
    g_test_add_func("/wp-tracker/exact/large-buffer",
                    test_exact_large_buffer);
    g_test_add_func("/wp-tracker/exact/small-buffer",
                    test_exact_small_buffer);
    g_test_add_func("/wp-tracker/exact/no-buffer", test_exact_no_buffer);
    g_test_add_func("/wp-tracker/exact/odd-size", test_exact_odd_size);
    g_test_add_func("/wp-tracker/exact/without-wp-unpopulated",
                    test_exact_without_wp_unpopulated);
    g_test_add_func("/wp-tracker/refused-without-wp", test_refused_without_wp);
    g_test_add_func("/wp-tracker/cancel-unblocks", test_cancel_unblocks);
    g_test_add_func("/wp-tracker/free-while-saving", test_free_while_saving);
    return g_test_run();
}
