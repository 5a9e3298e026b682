/*
 * The saver's side of the write tracker: what to write next (a region a
 * vCPU faulted on first, else the next unclaimed regions in address
 * order), and, once written, lifting its protection (rules 1-3 of
 * wp-tracker.c); cancel.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "wp-tracker-internal.h"


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
    /*
     * Every run and queue entry names a block the tracker was made with:
     * anything else is a bug in the tracker, not a state a failed or
     * cancelled snapshot can reach.
     */
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
