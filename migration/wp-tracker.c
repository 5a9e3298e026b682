/*
 * Write tracking for background snapshots (include/migration/wp-tracker.h).
 *
 * THE INVARIANT.  Every region goes into the snapshot exactly once, with
 * the content it had when wp_tracker_start() protected it, and no region
 * stays protected after wp_tracker_free().  It is kept by three rules:
 *
 *  1. A region is written into the stream only by the thread that cleared
 *     its bit in the block's @unclaimed bitmap (an atomic test-and-clear:
 *     of the fault handler and the saver racing for it, exactly one wins).
 *  2. Protection is removed from a region only after its content is safe:
 *     copied into the copy buffer by the fault handler, or handed to the
 *     channel by the saver (wp_tracker_done() is called after the flush).
 *     Until then no vCPU can change it, so whatever reads it reads the
 *     content at the snapshot instant.
 *  3. The saver ends only when no region is unclaimed, no claim is in
 *     flight in the fault handler (@inflight, raised before the claim and
 *     dropped after the queue push), and the queue is empty.
 *
 * Pages that were never populated are zero at the snapshot instant, and
 * are sent as zero markers without being read (or populated).  Three ways
 * to know them, best first:
 *  - anonymous RAM, Linux 6.7+: PAGEMAP_SCAN during the pause records
 *    which pages are populated (@populated_at_pause).  The others are not
 *    protected at all: a later write to one needs no fault, gets a huge
 *    page as usual, and the snapshot still says zero.
 *  - UFFD_FEATURE_WP_UNPOPULATED (6.4+): protection markers on empty page
 *    tables make a write to one fault like any other.  The markers need
 *    4 KiB page tables, so such a region, once written, is not a huge
 *    page any more: only used where the first way cannot be.
 *  - neither: wp_tracker_new() populates RAM for reading first (the
 *    shared zero page, no memory), so that everything can be protected.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "qemu/cutils.h"
#include "qemu/fault-inject.h"
#include "qemu/userfaultfd.h"
#include "migration/page-queue.h"
#include "migration/ram-populated.h"
#include "migration/wp-tracker.h"
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

typedef struct WPBlock {
    RAMBlock *rb;
    uint64_t nregions;
    unsigned long *unclaimed;   /* set: nobody has claimed the region yet */
    unsigned long *unprotected; /* set: its protection has been removed */
    int64_t *wait_since;        /* first waiting fault's time, 0 if none */
    unsigned long *populated_at_pause;  /* per page; NULL: ask the kernel */
    uint64_t cursor;            /* the saver's walk position */
    bool registered;
} WPBlock;

struct WPTracker {
    WPBlock *blocks;
    unsigned nblocks;
    unsigned walk_block;        /* the saver's current block */
    /*
     * The entry the saver popped and has not given back with
     * wp_tracker_done(): a save that fails between the two (a write
     * error, a cancel) leaves it here for wp_tracker_free().
     */
    PageQueueEntry *saving;
    PageQueue *queue;
    RamPopulatedReader *populated_fault;
    RamPopulatedReader *populated_save;
    uint64_t features;
    WPUnpopulatedMethod unpopulated;
    int uffd;
    int stop_fd;
    /*
     * The "mprotect" backend (wp-mprotect.c) instead of userfaultfd: no
     * uffd, no fault thread; the faulting vCPU's SIGSEGV handler runs
     * wp_fault() itself and sleeps on @wake_seq (a futex) until the
     * region is unprotected, or @released (everything is).
     */
    bool use_mprotect;
    int wake_seq;
    bool released;
    GThread *fault_thread;

    int inflight;               /* claims the fault handler has not queued */
    bool cancelled;
    bool failed;
    GMutex error_lock;
    Error *fault_error;

    uint64_t faults;
    uint64_t copied_pages;
    uint64_t waited_faults;
    uint64_t wait_time_ns;
    uint64_t unprotect_calls;
};

static uint32_t region_npages(const WPBlock *b, uint64_t r)
{
    uint64_t first = r * WP_REGION_PAGES;
    return MIN(WP_REGION_PAGES, ramblock_pages(b->rb) - first);
}

static bool block_is_fd_backed(const RAMBlock *rb)
{
    return rb->fd >= 0 || rb->shared;
}

/* Fail the snapshot from the fault handler: the saver sees it and stops. */
static void wp_fail(WPTracker *t, Error *err)
{
    g_mutex_lock(&t->error_lock);
    if (!t->fault_error) {
        t->fault_error = err;
    } else {
        error_free(err);
    }
    g_mutex_unlock(&t->error_lock);
    qatomic_store_release(&t->failed, true);
    page_queue_kick(t->queue);
}

bool wp_tracker_check_support(RAMBlock *const *blocks, unsigned nblocks,
                              Error **errp)
{
    Error *err = NULL;
    uint64_t features = uffd_query_features(&err);

    if (err) {
        error_propagate(errp, err);
        error_prepend(errp, "background-snapshot needs userfaultfd: ");
        return false;
    }
    if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        error_setg(errp, "background-snapshot needs userfaultfd "
                   "write-protect (UFFD_FEATURE_PAGEFAULT_FLAG_WP, Linux 5.7 "
                   "or later); this kernel does not offer it");
        return false;
    }
    uint64_t want = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
    for (unsigned i = 0; i < nblocks; i++) {
        if (!block_is_fd_backed(blocks[i])) {
            continue;
        }
        if (!(features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) {
            error_setg(errp, "RAMBlock '%s' is backed by shared memory or a "
                       "file, and this kernel cannot write-protect such "
                       "memory with userfaultfd "
                       "(UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux 5.19)",
                       blocks[i]->idstr);
            return false;
        }
        want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    }

    /* The kernel knows best which mappings it can protect: ask it. */
    int uffd = uffd_open(want, errp);
    if (uffd < 0) {
        error_prepend(errp, "background-snapshot: ");
        return false;
    }
    bool ok = true;
    for (unsigned i = 0; i < nblocks && ok; i++) {
        RAMBlock *rb = blocks[i];
        if (!uffd_register(uffd, rb->host, rb->used_length,
                           UFFDIO_REGISTER_MODE_WP, errp)) {
            error_prepend(errp, "RAMBlock '%s' cannot be write-protected, so "
                          "background-snapshot cannot be used: ", rb->idstr);
            ok = false;
            break;
        }
        uffd_unregister(uffd, rb->host, rb->used_length, NULL);
    }
    close(uffd);
    return ok;
}

static gpointer wp_fault_thread(gpointer opaque);

/* Protect or unprotect [host, host + len) with the tracker's backend. */
static bool wp_protect(WPTracker *t, uint8_t *host, uint64_t len,
                       bool protect, Error **errp)
{
    if (t->use_mprotect) {
        return wp_mprotect_range(host, len, protect, errp);
    }
    return uffd_writeprotect(t->uffd, host, len, protect, false, errp);
}

static WPTracker *wp_tracker_new_backend(RAMBlock *const *blocks,
                                         unsigned nblocks,
                                         uint64_t buffer_bytes,
                                         bool use_mprotect, Error **errp)
{
    g_autoptr(Error) err = NULL;
    uint64_t features = use_mprotect ? 0 : uffd_query_features(&err);
    if (err) {
        error_propagate(errp, g_steal_pointer(&err));
        return NULL;
    }

    WPTracker *t = g_new0(WPTracker, 1);
    t->use_mprotect = use_mprotect;
    t->uffd = -1;
    t->stop_fd = -1;
    g_mutex_init(&t->error_lock);
    t->features = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
    t->nblocks = nblocks;
    t->blocks = g_new0(WPBlock, nblocks);
    for (unsigned i = 0; i < nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        b->rb = blocks[i];
        g_assert(QEMU_IS_ALIGNED((uintptr_t)b->rb->host, TARGET_PAGE_SIZE));
        b->nregions = DIV_ROUND_UP(b->rb->used_length, WP_REGION_SIZE);
        b->unclaimed = bitmap_new(b->nregions);
        b->unprotected = bitmap_new(b->nregions);
        b->wait_since = g_new0(int64_t, b->nregions);
        if (block_is_fd_backed(b->rb)) {
            t->features |= features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        }
    }
    t->queue = page_queue_new(buffer_bytes, errp);
    if (!t->queue) {
        goto fail;
    }
    t->populated_fault = ram_populated_reader_new(errp);
    t->populated_save = ram_populated_reader_new(errp);
    if (!t->populated_fault || !t->populated_save) {
        goto fail;
    }
    bool all_anonymous = true;
    for (unsigned i = 0; i < nblocks; i++) {
        all_anonymous &= !block_is_fd_backed(blocks[i]);
    }
    if (all_anonymous && ram_populated_scan_supported(t->populated_save)) {
        t->unpopulated = WP_UNPOPULATED_PAGEMAP_SCAN;
        for (unsigned i = 0; i < nblocks; i++) {
            t->blocks[i].populated_at_pause =
                bitmap_new(ramblock_pages(blocks[i]));
        }
    } else if (use_mprotect) {
        /* mprotect covers empty page tables too, as the markers do. */
        t->unpopulated = WP_UNPOPULATED_MARKERS;
    } else if (features & UFFD_FEATURE_WP_UNPOPULATED) {
        t->unpopulated = WP_UNPOPULATED_MARKERS;
        t->features |= UFFD_FEATURE_WP_UNPOPULATED;
    } else {
        t->unpopulated = WP_UNPOPULATED_POPULATE_READ;
    }
    if (t->unpopulated == WP_UNPOPULATED_POPULATE_READ) {
        /*
         * Unpopulated pages would not be protected, and a write to one
         * would go unnoticed: map them (read-only, the zero page) now,
         * while the guest still runs, so the pause stays short.
         */
        for (unsigned i = 0; i < nblocks; i++) {
            RAMBlock *rb = blocks[i];
            if (madvise(rb->host, rb->used_length, MADV_POPULATE_READ) < 0) {
                error_setg_errno(errp, errno, "cannot populate RAMBlock '%s' "
                                 "for write-protection", rb->idstr);
                goto fail;
            }
        }
    }
    if (use_mprotect) {
        if (!wp_mprotect_attach(t, blocks, nblocks, errp)) {
            goto fail;
        }
        return t;
    }
    /*
     * Registering protects nothing yet, and neither does a fault thread
     * with no fault to read: both are done here, while the guest runs,
     * so that the pause holds only the write-protect itself.
     */
    t->uffd = uffd_open(t->features, errp);
    if (t->uffd < 0) {
        goto fail;
    }
    for (unsigned i = 0; i < nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (!uffd_register(t->uffd, b->rb->host, b->rb->used_length,
                           UFFDIO_REGISTER_MODE_WP, errp)) {
            error_prepend(errp, "RAMBlock '%s': ", b->rb->idstr);
            goto fail;
        }
        b->registered = true;
    }
    t->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (t->stop_fd < 0) {
        error_setg_errno(errp, errno, "eventfd failed");
        goto fail;
    }
    GError *gerr = NULL;
    t->fault_thread = fault_inject_gerror(FAULT_THREAD_CREATE, &gerr) ? NULL :
        g_thread_try_new("wp-fault", wp_fault_thread, t, &gerr);
    if (!t->fault_thread) {
        error_setg(errp, "cannot start the write-fault thread: %s",
                   gerr->message);
        g_error_free(gerr);
        goto fail;
    }
    return t;

fail:
    wp_tracker_free(t);
    return NULL;
}

WPTracker *wp_tracker_new(RAMBlock *const *blocks, unsigned nblocks,
                          uint64_t buffer_bytes, Error **errp)
{
    return wp_tracker_new_backend(blocks, nblocks, buffer_bytes, false, errp);
}

WPTracker *wp_tracker_new_mprotect(RAMBlock *const *blocks, unsigned nblocks,
                                   uint64_t buffer_bytes, Error **errp)
{
    return wp_tracker_new_backend(blocks, nblocks, buffer_bytes, true, errp);
}

bool wp_tracker_start(WPTracker *t, Error **errp)
{
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        bitmap_set(b->unclaimed, 0, b->nregions);
        /* Nothing can populate a page between this and the protect. */
        if (b->populated_at_pause &&
            !ram_populated_scan(t->populated_save, b->rb,
                                b->populated_at_pause, errp)) {
            return false;
        }
        if (!wp_protect(t, b->rb->host, b->rb->used_length, true, errp)) {
            error_prepend(errp, "RAMBlock '%s': ", b->rb->idstr);
            return false;
        }
    }
    return true;
}

/* Which of pages [first, first + n) of @b may hold data (n <= 512). */
static bool wp_populated(RamPopulatedReader *reader, WPBlock *b,
                         uint64_t first, uint32_t n, bool *out, Error **errp)
{
    if (b->populated_at_pause) {
        for (uint32_t i = 0; i < n; i++) {
            out[i] = test_bit(first + i, b->populated_at_pause);
        }
        return true;
    }
    return ram_populated_read(reader, b->rb, first, n, out, errp);
}

/*
 * Remove protection from regions [r0, r0 + nreg) of @b, then account for
 * vCPUs that waited on them.  Rule 2 must hold for every page in range.
 */
static bool wp_unprotect_regions(WPTracker *t, WPBlock *b, uint64_t r0,
                                 uint64_t nreg, Error **errp)
{
    uint64_t start = r0 * WP_REGION_SIZE;
    uint64_t len = MIN(nreg * WP_REGION_SIZE, b->rb->used_length - start);

    if (!wp_protect(t, b->rb->host + start, len, false, errp)) {
        return false;
    }
    qatomic_inc(&t->unprotect_calls);
    int64_t now = now_ns();
    for (uint64_t r = r0; r < r0 + nreg; r++) {
        /* Publish "unprotected" before collecting waiters: see wp_note_waiter. */
        set_bit_atomic(r, b->unprotected);
        int64_t since = qatomic_xchg(&b->wait_since[r], 0);
        if (since) {
            qatomic_inc(&t->waited_faults);
            qatomic_add(&t->wait_time_ns, now - since);
        }
    }
    if (t->use_mprotect) {
        wp_mprotect_wake(&t->wake_seq);
    }
    return true;
}

/*
 * A vCPU faulted on region @r, which is someone else's to write: it waits
 * until that region is unprotected.  Record when the wait began, unless
 * the region was unprotected already (a fault event read late), in which
 * case the vCPU has been woken and did not wait for us.
 */
static void wp_note_waiter(WPBlock *b, uint64_t r, int64_t now)
{
    int64_t none = 0;
    if (__atomic_compare_exchange_n(&b->wait_since[r], &none, now, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
        test_bit_atomic(r, b->unprotected)) {
        qatomic_xchg(&b->wait_since[r], 0);
    }
}

/* Copy the region aside into @e's slots; @populated says what to read. */
static void wp_copy_region(WPTracker *t, WPBlock *b, PageQueueEntry *e,
                           const bool *populated, const uint32_t *reserved)
{
    uint32_t unused[WP_REGION_PAGES];
    uint32_t nunused = 0, k = 0, copied = 0;

    for (uint32_t i = 0; i < e->npages; i++) {
        if (!populated[i]) {
            e->slots[i] = PAGE_QUEUE_NO_SLOT;
            continue;
        }
        const uint8_t *src = b->rb->host +
                             ((e->first_page + i) << TARGET_PAGE_BITS);
        uint32_t slot = reserved[k++];
        if (buffer_is_zero(src, TARGET_PAGE_SIZE)) {
            e->slots[i] = PAGE_QUEUE_NO_SLOT;
            unused[nunused++] = slot;
            continue;
        }
        memcpy(page_queue_slot(t->queue, slot), src, TARGET_PAGE_SIZE);
        e->slots[i] = slot;
        copied++;
    }
    page_queue_release(t->queue, unused, nunused);
    qatomic_add(&t->copied_pages, copied);
}

static void wp_fault(WPTracker *t, uint64_t addr);

/*
 * The mprotect backend's fault path, in the faulting thread's SIGSEGV
 * handler: the same claim as the fault thread's, then, unlike userfaultfd
 * where the kernel holds the vCPU, wait here until the region is
 * writable.  False if @addr is not in @t's guest RAM.
 */
bool wp_tracker_write_fault(WPTracker *t, uintptr_t addr)
{
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (addr < (uintptr_t)b->rb->host ||
            addr - (uintptr_t)b->rb->host >= b->rb->used_length) {
            continue;
        }
        uint64_t r = (addr - (uintptr_t)b->rb->host) / WP_REGION_SIZE;
        if (!test_bit_atomic(r, b->unprotected)) {
            wp_fault(t, addr);
        }
        for (;;) {
            int seq = __atomic_load_n(&t->wake_seq, __ATOMIC_SEQ_CST);
            if (test_bit_atomic(r, b->unprotected) ||
                __atomic_load_n(&t->released, __ATOMIC_SEQ_CST)) {
                return true;
            }
            wp_mprotect_sleep(&t->wake_seq, seq);
        }
    }
    return false;
}

static void wp_fault(WPTracker *t, uint64_t addr)
{
    WPBlock *b = NULL;
    for (unsigned i = 0; i < t->nblocks; i++) {
        RAMBlock *rb = t->blocks[i].rb;
        if (addr >= (uintptr_t)rb->host &&
            addr - (uintptr_t)rb->host < rb->used_length) {
            b = &t->blocks[i];
            break;
        }
    }
    if (!b) {
        Error *err = NULL;
        error_setg(&err, "write fault at 0x%" PRIx64 " outside guest RAM",
                   addr);
        wp_fail(t, err);
        return;
    }

    uint64_t r = (addr - (uintptr_t)b->rb->host) / WP_REGION_SIZE;
    int64_t now = now_ns();
    qatomic_inc(&t->faults);

    /* Rule 3: raise @inflight before the claim can make the bit vanish. */
    qatomic_inc(&t->inflight);
    if (!test_and_clear_bit_atomic(r, b->unclaimed)) {
        wp_note_waiter(b, r, now);
        qatomic_dec(&t->inflight);
        return;
    }

    uint32_t n = region_npages(b, r);
    PageQueueEntry *e = g_malloc(sizeof(*e) + n * sizeof(uint32_t));
    e->rb = b->rb;
    e->first_page = r * WP_REGION_PAGES;
    e->npages = n;
    e->fault_ns = now;

    bool populated[WP_REGION_PAGES];
    uint32_t reserved[WP_REGION_PAGES];
    Error *err = NULL;
    if (!wp_populated(t->populated_fault, b, e->first_page, n, populated,
                      &err)) {
        g_free(e);
        wp_fail(t, err);
        qatomic_dec(&t->inflight);
        return;
    }
    uint32_t ncopy = 0;
    for (uint32_t i = 0; i < n; i++) {
        ncopy += populated[i];
    }

    if (page_queue_reserve(t->queue, ncopy, reserved)) {
        e->copied = true;
        wp_copy_region(t, b, e, populated, reserved);
        page_queue_push(t->queue, e);
        if (!wp_unprotect_regions(t, b, r, 1, &err)) {
            wp_fail(t, err);
        }
    } else {
        /* No room: the vCPU stays blocked until the saver writes it. */
        e->copied = false;
        wp_note_waiter(b, r, now);
        page_queue_push(t->queue, e);
    }
    qatomic_dec(&t->inflight);
}

static gpointer wp_fault_thread(gpointer opaque)
{
    WPTracker *t = opaque;
    struct uffd_msg msgs[64];
    struct pollfd fds[2] = {
        { .fd = t->uffd, .events = POLLIN },
        { .fd = t->stop_fd, .events = POLLIN },
    };

    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            Error *err = NULL;
            error_setg_errno(&err, errno, "poll on userfaultfd failed");
            wp_fail(t, err);
            break;
        }
        if (fds[1].revents) {
            break;
        }
        Error *err = NULL;
        int n = uffd_read_events(t->uffd, msgs, G_N_ELEMENTS(msgs), &err);
        if (n < 0) {
            wp_fail(t, err);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT ||
                !(msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
                error_setg(&err, "unexpected userfaultfd event %u (flags "
                           "0x%llx)", msgs[i].event,
                           (unsigned long long)msgs[i].arg.pagefault.flags);
                wp_fail(t, err);
                err = NULL;
                continue;
            }
            wp_fault(t, msgs[i].arg.pagefault.address);
        }
    }
    return NULL;
}

/* Fill run->page[] from guest RAM for pages [first, first + n) of @b. */
static bool wp_run_from_guest(WPTracker *t, WPBlock *b, uint64_t first,
                              uint32_t n, WPRun *run, Error **errp)
{
    bool populated[WP_REGION_PAGES];

    run->rb = b->rb;
    run->first_page = first;
    run->npages = n;
    run->in_guest_ram = true;
    for (uint32_t done = 0; done < n; done += WP_REGION_PAGES) {
        uint32_t chunk = MIN(WP_REGION_PAGES, n - done);
        if (!wp_populated(t->populated_save, b, first + done, chunk,
                          populated, errp)) {
            return false;
        }
        for (uint32_t i = 0; i < chunk; i++) {
            run->page[done + i] = populated[i] ?
                b->rb->host + ((first + done + i) << TARGET_PAGE_BITS) : NULL;
        }
    }
    return true;
}

static WPBlock *wp_block_of(WPTracker *t, RAMBlock *rb)
{
    for (unsigned i = 0; i < t->nblocks; i++) {
        if (t->blocks[i].rb == rb) {
            return &t->blocks[i];
        }
    }
    g_assert_not_reached();
}

/* Claim the next unclaimed regions in address order.  1, 0 or -1. */
static int wp_walk_claim(WPTracker *t, WPRun *run, Error **errp)
{
    for (; t->walk_block < t->nblocks; t->walk_block++) {
        WPBlock *b = &t->blocks[t->walk_block];
        while (b->cursor < b->nregions) {
            uint64_t r = find_next_bit(b->unclaimed, b->nregions, b->cursor);
            if (r >= b->nregions) {
                b->cursor = b->nregions;
                break;
            }
            b->cursor = r + 1;
            if (!test_and_clear_bit_atomic(r, b->unclaimed)) {
                continue;       /* the fault handler took it */
            }
            uint64_t nreg = 1;
            while (nreg < WP_WALK_MAX_REGIONS && r + nreg < b->nregions &&
                   test_and_clear_bit_atomic(r + nreg, b->unclaimed)) {
                nreg++;
            }
            b->cursor = r + nreg;
            uint64_t first = r * WP_REGION_PAGES;
            uint64_t n = MIN(nreg * WP_REGION_PAGES,
                             ramblock_pages(b->rb) - first);
            run->priv = NULL;
            return wp_run_from_guest(t, b, first, n, run, errp) ? 1 : -1;
        }
    }
    return 0;
}

int wp_tracker_next(WPTracker *t, WPRun *run, Error **errp)
{
    for (;;) {
        if (qatomic_load_acquire(&t->failed)) {
            g_mutex_lock(&t->error_lock);
            error_propagate(errp, error_copy(t->fault_error));
            g_mutex_unlock(&t->error_lock);
            return -1;
        }
        if (qatomic_load_acquire(&t->cancelled)) {
            error_setg(errp, "background snapshot cancelled");
            return -1;
        }
        PageQueueEntry *e = page_queue_pop(t->queue);
        if (e) {
            g_assert(!t->saving);
            t->saving = e;
            run->priv = e;
            if (!e->copied) {
                WPBlock *b = wp_block_of(t, e->rb);
                return wp_run_from_guest(t, b, e->first_page, e->npages,
                                         run, errp) ? 1 : -1;
            }
            run->rb = e->rb;
            run->first_page = e->first_page;
            run->npages = e->npages;
            run->in_guest_ram = false;
            for (uint32_t i = 0; i < e->npages; i++) {
                run->page[i] = e->slots[i] == PAGE_QUEUE_NO_SLOT ? NULL :
                               page_queue_slot(t->queue, e->slots[i]);
            }
            return 1;
        }
        int claimed = wp_walk_claim(t, run, errp);
        if (claimed) {
            return claimed;
        }
        /* Rule 3: nothing unclaimed; wait out claims still in flight. */
        if (__atomic_load_n(&t->inflight, __ATOMIC_SEQ_CST) == 0 &&
            page_queue_is_empty(t->queue)) {
            return 0;
        }
        page_queue_wait(t->queue, 1000);
    }
}

bool wp_tracker_done(WPTracker *t, WPRun *run, Error **errp)
{
    PageQueueEntry *e = run->priv;
    bool ok = true;

    if (run->in_guest_ram) {
        WPBlock *b = wp_block_of(t, run->rb);
        uint64_t r0 = run->first_page / WP_REGION_PAGES;
        uint64_t nreg = DIV_ROUND_UP(run->npages, WP_REGION_PAGES);
        ok = wp_unprotect_regions(t, b, r0, nreg, errp);
    } else {
        page_queue_release(t->queue, e->slots, e->npages);
    }
    if (e) {
        g_assert(e == t->saving);
        t->saving = NULL;
        g_free(e);
    }
    run->priv = NULL;
    return ok;
}

void wp_tracker_cancel(WPTracker *t)
{
    qatomic_store_release(&t->cancelled, true);
    page_queue_kick(t->queue);
}

void wp_tracker_get_stats(WPTracker *t, WPTrackerStats *stats)
{
    *stats = (WPTrackerStats) {
        .faults = qatomic_read(&t->faults),
        .copied_pages = qatomic_read(&t->copied_pages),
        .waited_faults = qatomic_read(&t->waited_faults),
        .wait_time_ns = qatomic_read(&t->wait_time_ns),
        .buffer_size = t->queue ? page_queue_capacity_bytes(t->queue) : 0,
        .buffer_peak = t->queue ? page_queue_peak_bytes(t->queue) : 0,
        .unprotect_calls = qatomic_read(&t->unprotect_calls),
        .wp_unpopulated = !!(t->features & UFFD_FEATURE_WP_UNPOPULATED),
        .unpopulated = t->unpopulated,
    };
}

void wp_tracker_free(WPTracker *t)
{
    if (!t) {
        return;
    }
    if (t->queue) {
        wp_tracker_cancel(t);
    }
    /*
     * A guest must never stay frozen: lift every protection first, which
     * also wakes every vCPU blocked on one, before anything else can fail.
     */
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (b->registered || t->use_mprotect) {
            Error *err = NULL;
            if (!wp_protect(t, b->rb->host, b->rb->used_length, false,
                            &err)) {
                error_report_err(err);
            }
        }
    }
    if (t->use_mprotect) {
        /* Wake the waiting vCPUs, then wait out handlers still using @t. */
        __atomic_store_n(&t->released, true, __ATOMIC_SEQ_CST);
        wp_mprotect_wake(&t->wake_seq);
        wp_mprotect_detach(t);
    }
    if (t->fault_thread) {
        uint64_t one = 1;
        if (write(t->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            error_report("cannot stop the write-fault thread: %s",
                         g_strerror(errno));
            abort();
        }
        g_thread_join(t->fault_thread);
    }
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (b->registered) {
            uffd_unregister(t->uffd, b->rb->host, b->rb->used_length, NULL);
        }
        g_free(b->unclaimed);
        g_free(b->unprotected);
        g_free(b->wait_since);
        g_free(b->populated_at_pause);
    }
    if (t->uffd >= 0) {
        close(t->uffd);
    }
    if (t->stop_fd >= 0) {
        close(t->stop_fd);
    }
    g_free(t->saving);
    page_queue_free(t->queue);
    ram_populated_reader_free(t->populated_fault);
    ram_populated_reader_free(t->populated_save);
    error_free(t->fault_error);
    g_mutex_clear(&t->error_lock);
    g_free(t->blocks);
    g_free(t);
}

const char *wp_unpopulated_method_name(WPUnpopulatedMethod method)
{
    switch (method) {
    case WP_UNPOPULATED_PAGEMAP_SCAN:
        return "pagemap-scan";
    case WP_UNPOPULATED_MARKERS:
        return "wp-unpopulated";
    case WP_UNPOPULATED_POPULATE_READ:
    default:
        return "populate-read";
    }
}
