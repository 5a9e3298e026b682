/*
 * The write tracker's state and the helpers its parts share: set-up
 * (wp-tracker-setup.c), the fault handler (wp-tracker-fault.c), the
 * saver's side (wp-tracker-save.c), tear-down (wp-tracker-teardown.c)
 * and protection itself (wp-tracker.c, with the invariant they keep).
 *
 * Private to migration/wp-tracker*.c.
 */
#ifndef MIGRATION_WP_TRACKER_INTERNAL_H
#define MIGRATION_WP_TRACKER_INTERNAL_H

#include "qemu/osdep.h"
#include "migration/page-queue.h"
#include "migration/ram-populated.h"
#include "migration/wp-tracker.h"

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

static inline uint32_t region_npages(const WPBlock *b, uint64_t r)
{
    uint64_t first = r * WP_REGION_PAGES;
    return MIN(WP_REGION_PAGES, ramblock_pages(b->rb) - first);
}

static inline bool block_is_fd_backed(const RAMBlock *rb)
{
    return rb->fd >= 0 || rb->shared;
}

/* Fail the snapshot from the fault handler: the saver sees it and stops. */
void wp_fail(WPTracker *t, Error *err);

/* Protect or unprotect [host, host + len) with the tracker's backend. */
bool wp_protect(WPTracker *t, uint8_t *host, uint64_t len, bool protect,
                Error **errp);

/* Which of pages [first, first + n) of @b may hold data (n <= 512). */
bool wp_populated(RamPopulatedReader *reader, WPBlock *b, uint64_t first,
                  uint32_t n, bool *out, Error **errp);

/*
 * Remove protection from regions [r0, r0 + nreg) of @b, then account for
 * vCPUs that waited on them.  Rule 2 must hold for every page in range.
 */
bool wp_unprotect_regions(WPTracker *t, WPBlock *b, uint64_t r0,
                          uint64_t nreg, Error **errp);

/* The userfaultfd backend's fault thread (wp-tracker-fault.c). */
gpointer wp_fault_thread(gpointer opaque);

#endif
