/*
 * Write tracking for background snapshots (include/migration/wp-tracker.h):
 * the invariant, and protection itself.  The tracker's parts: set-up and
 * probe (wp-tracker-setup.c, wp-tracker-probe.c), the fault handler
 * (wp-tracker-fault.c), the saver's side (wp-tracker-save.c), tear-down
 * (wp-tracker-teardown.c), statistics (wp-tracker-stats.c).
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
#include "qemu/bitops.h"
#include "qemu/cutils.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"

void wp_fail(WPTracker *t, Error *err)
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

bool wp_protect(WPTracker *t, uint8_t *host, uint64_t len, bool protect,
                Error **errp)
{
    if (t->use_mprotect) {
        return wp_mprotect_range(host, len, protect, errp);
    }
    return uffd_writeprotect(t->uffd, host, len, protect, false, errp);
}

bool wp_populated(RamPopulatedReader *reader, WPBlock *b, uint64_t first,
                  uint32_t n, bool *out, Error **errp)
{
    if (b->populated_at_pause) {
        for (uint32_t i = 0; i < n; i++) {
            out[i] = test_bit(first + i, b->populated_at_pause);
        }
        return true;
    }
    return ram_populated_read(reader, b->rb, first, n, out, errp);
}

bool wp_unprotect_regions(WPTracker *t, WPBlock *b, uint64_t r0,
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
