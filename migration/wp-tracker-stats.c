/*
 * What the write tracker counted, for query-migrate and the tests.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"

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
