/*
 * Write tracker set-up: the tracker, its copy buffer, the way
 * unpopulated pages are known, registration and the fault thread, all
 * while the guest runs; then, with the vCPUs paused, the protection of
 * everything (wp_tracker_start()).
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/fault-inject.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"
#include <sys/eventfd.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

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
