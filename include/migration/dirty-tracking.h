/*
 * Dirty tracking for live pre-copy: which guest pages were written since
 * they were last looked at.  Two methods (see docs/devel/migration.md for
 * the measurements that chose the default):
 *
 *  - pagemap-scan: the RAMBlocks are registered with userfaultfd in
 *    asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC: a write to a
 *    protected page is resolved by the kernel, which just clears the
 *    protection bit, no fault reaches us); a sync is one PAGEMAP_SCAN
 *    ioctl per block that returns the written ranges and re-protects them
 *    atomically, so no write can fall between "read" and "clear".
 *  - soft-dirty: /proc/self/clear_refs and the pagemap soft-dirty bit.
 *    Reading the bits and clearing them are two steps, so a write between
 *    them would be lost: a sync needs the writers paused (@quiesce).
 *
 * The tracker never keeps RAM protected or registered after
 * dirty_tracker_stop(), which every user calls on every path.
 */
#ifndef MIGRATION_DIRTY_TRACKING_H
#define MIGRATION_DIRTY_TRACKING_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"
#include "migration/options.h"

typedef struct DirtyTracker DirtyTracker;

/* Pages [first_page, first_page + npages) of @rb were written. */
typedef void (*DirtyRangeFn)(RAMBlock *rb, uint64_t first_page,
                             uint64_t npages, void *opaque);

/* Pause / resume every writer of guest RAM (soft-dirty only). */
typedef struct DirtyQuiesceOps {
    void (*pause)(void *opaque);
    void (*resume)(void *opaque);
    void *opaque;
} DirtyQuiesceOps;

/* Whether @method can work on this kernel; the error says what lacks. */
bool dirty_tracking_supported(DirtyTrackingMethod method, Error **errp);

/*
 * Start tracking writes to @blocks (the array is copied, the blocks must
 * outlive the tracker).  Every page counts as clean from now on.
 * @quiesce may be NULL for pagemap-scan.
 */
DirtyTracker *dirty_tracker_start(DirtyTrackingMethod method,
                                  RAMBlock *const *blocks, unsigned nblocks,
                                  const DirtyQuiesceOps *quiesce,
                                  Error **errp);

/*
 * Report every page written since the start or the previous sync through
 * @fn, and count them clean again.  Returns the number of pages reported,
 * or -1 with @errp set.
 */
int64_t dirty_tracker_sync(DirtyTracker *dt, DirtyRangeFn fn, void *opaque,
                           Error **errp);

/* Duration of the last sync, in ns (for query-migrate and the notes). */
uint64_t dirty_tracker_last_sync_ns(DirtyTracker *dt);

/* Remove every protection and registration, and free.  NULL is ok. */
void dirty_tracker_stop(DirtyTracker *dt);

#endif
