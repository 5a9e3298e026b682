/*
 * Write tracking for background snapshots: userfaultfd write protection
 * over every RAMBlock, a fault-handler thread, and the claims that make
 * each region go into the snapshot exactly once with its content at the
 * snapshot instant.
 *
 * The unit of protection and of claiming is a *region*: an aligned 2 MiB
 * range (the last one of a block may be shorter), the size of a
 * transparent huge page.  Protection is only ever removed from a whole
 * region, so huge pages are not split by the snapshot.
 *
 * Use, from the migration thread:
 *   wp_tracker_check_support()   when the capability is turned on
 *   wp_tracker_new()             register, start the fault thread
 *   wp_tracker_start()           with the vCPUs paused: protect everything
 *   loop: wp_tracker_next() / write the pages / flush / wp_tracker_done()
 *   wp_tracker_free()            always: removes every protection first
 */
#ifndef MIGRATION_WP_TRACKER_H
#define MIGRATION_WP_TRACKER_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"

#define WP_REGION_SIZE (2 * MiB)
#define WP_REGION_PAGES (WP_REGION_SIZE / TARGET_PAGE_SIZE)
/* The saver claims up to this many consecutive regions per walk step. */
#define WP_WALK_MAX_REGIONS 4
#define WP_RUN_MAX_PAGES (WP_WALK_MAX_REGIONS * WP_REGION_PAGES)

typedef struct WPTracker WPTracker;

/* How pages never populated before the snapshot are told apart. */
typedef enum WPUnpopulatedMethod {
    WP_UNPOPULATED_PAGEMAP_SCAN,    /* "pagemap-scan": a map at the pause */
    WP_UNPOPULATED_MARKERS,         /* "wp-unpopulated": kernel markers */
    WP_UNPOPULATED_POPULATE_READ,   /* "populate-read": populated first */
} WPUnpopulatedMethod;

const char *wp_unpopulated_method_name(WPUnpopulatedMethod method);

typedef struct WPTrackerStats {
    uint64_t faults;            /* write faults taken */
    uint64_t copied_pages;      /* pages copied aside by the fault handler */
    uint64_t waited_faults;     /* faults whose vCPU waited for a write */
    uint64_t wait_time_ns;      /* summed over those faults */
    uint64_t buffer_size;       /* copy buffer, bytes */
    uint64_t buffer_peak;       /* most of it in use at once, bytes */
    uint64_t unprotect_calls;   /* UFFDIO_WRITEPROTECT calls to unprotect */
    bool wp_unpopulated;        /* UFFD_FEATURE_WP_UNPOPULATED in use */
    WPUnpopulatedMethod unpopulated;
} WPTrackerStats;

/*
 * A run of pages handed to the saver.  page[i] is where page
 * first_page + i's content is, or NULL if it is zero without being read
 * (never populated).  With @in_guest_ram the content is guest RAM still
 * write-protected: it stays valid until wp_tracker_done(); otherwise it
 * is a copy in the copy buffer.
 */
typedef struct WPRun {
    RAMBlock *rb;
    uint64_t first_page;
    uint32_t npages;
    bool in_guest_ram;
    const uint8_t *page[WP_RUN_MAX_PAGES];
    void *priv;
} WPRun;

/*
 * Can every block of @blocks be write-protected with userfaultfd here?
 * Errors name the missing kernel feature or the block that cannot be.
 */
bool wp_tracker_check_support(RAMBlock *const *blocks, unsigned nblocks,
                              Error **errp);

/*
 * @buffer_bytes: the copy buffer (0: vCPUs always wait for the write).
 * Opens the userfaultfd, registers every block and starts the
 * fault-handler thread; protects nothing yet.
 */
WPTracker *wp_tracker_new(RAMBlock *const *blocks, unsigned nblocks,
                          uint64_t buffer_bytes, Error **errp);

/*
 * With the vCPUs paused: mark every region unsaved and write-protect
 * every block.  This is all the pause holds.  On failure, what was
 * protected stays so until wp_tracker_free().
 */
bool wp_tracker_start(WPTracker *t, Error **errp);

/*
 * The next run to write: queued fault work first (priority), then the
 * next unclaimed regions in address order.  Returns 1 with @run filled, 0
 * when every region has been handed out and nothing is queued or in
 * flight, -1 on error (the fault handler failed, or a cancel).
 */
int wp_tracker_next(WPTracker *t, WPRun *run, Error **errp);

/*
 * @run's pages have left for the channel (the caller flushed any
 * zero-copy references to guest RAM): unprotect it or free its copies.
 */
bool wp_tracker_done(WPTracker *t, WPRun *run, Error **errp);

/* Make a wp_tracker_next() that waits return -1 soon (thread safe). */
void wp_tracker_cancel(WPTracker *t);

void wp_tracker_get_stats(WPTracker *t, WPTrackerStats *stats);

/*
 * Remove every protection (waking any blocked vCPU), stop the fault
 * thread, unregister, free.  Safe at any point after wp_tracker_new().
 */
void wp_tracker_free(WPTracker *t);

/* ---- the "mprotect" backend (x-background-snapshot-method) ---- */

/*
 * The same tracker with mprotect(PROT_READ) instead of userfaultfd and a
 * SIGSEGV handler in the faulting thread instead of the fault thread
 * (migration/wp-mprotect.c), for kernels without userfaultfd
 * write-protect.  Use as above.
 */
WPTracker *wp_tracker_new_mprotect(RAMBlock *const *blocks, unsigned nblocks,
                                   uint64_t buffer_bytes, Error **errp);
/* Would protecting every region separately fit vm.max_map_count? */
bool wp_tracker_check_mprotect(RAMBlock *const *blocks, unsigned nblocks,
                               Error **errp);

/* Between wp-tracker.c and wp-mprotect.c only. */
bool wp_tracker_write_fault(WPTracker *t, uintptr_t addr);
bool wp_mprotect_attach(WPTracker *t, RAMBlock *const *blocks,
                        unsigned nblocks, Error **errp);
void wp_mprotect_detach(WPTracker *t);
bool wp_mprotect_range(uint8_t *host, uint64_t len, bool protect,
                       Error **errp);
void wp_mprotect_sleep(int *seq, int seen);
void wp_mprotect_wake(int *seq);

#endif
