/*
 * Dirty tracking for pre-copy (include/migration/dirty-tracking.h).
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "qemu/pagemap-scan.h"
#include "qemu/userfaultfd.h"
#include "migration/dirty-tracking.h"
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define PAGEMAP_SOFT_DIRTY (1ULL << 55)
#define SCAN_VEC_LEN 1024
#define SOFT_DIRTY_CHUNK 65536      /* pagemap entries per pread */

struct DirtyTracker {
    DirtyTrackingMethod method;
    RAMBlock **blocks;
    unsigned nblocks;
    DirtyQuiesceOps quiesce;
    int uffd;               /* pagemap-scan */
    int pagemap_fd;
    uint64_t last_sync_ns;
};

static uint64_t clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * A kernel built without CONFIG_MEM_SOFT_DIRTY accepts clear_refs "4" and
 * simply never sets bit 55, which would make every page look clean: probe
 * that a freshly written page reads soft-dirty.
 */
static bool soft_dirty_probe(Error **errp)
{
    uint8_t *page = mmap(NULL, TARGET_PAGE_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t entry = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    bool ok = false;

    if (page != MAP_FAILED && fd >= 0) {
        page[0] = 1;
        ok = pread(fd, &entry, 8,
                   ((uintptr_t)page >> TARGET_PAGE_BITS) * 8) == 8 &&
             (entry & PAGEMAP_SOFT_DIRTY);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (page != MAP_FAILED) {
        munmap(page, TARGET_PAGE_SIZE);
    }
    if (!ok) {
        error_setg(errp, "soft-dirty tracking is unavailable: this kernel "
                   "does not set the pagemap soft-dirty bit "
                   "(CONFIG_MEM_SOFT_DIRTY)");
    }
    return ok;
}

bool dirty_tracking_supported(DirtyTrackingMethod method, Error **errp)
{
    if (method == DIRTY_TRACKING_SOFT_DIRTY) {
        if (access("/proc/self/clear_refs", W_OK) < 0) {
            error_setg_errno(errp, errno, "soft-dirty tracking needs "
                             "/proc/self/clear_refs");
            return false;
        }
        return soft_dirty_probe(errp);
    }
    Error *err = NULL;
    uint64_t features = uffd_query_async_wp_features(&err);
    if (err) {
        error_propagate(errp, err);
        error_prepend(errp, "pagemap-scan dirty tracking: ");
        return false;
    }
    if (!(features & UFFD_FEATURE_WP_ASYNC)) {
        error_setg(errp, "pagemap-scan dirty tracking needs userfaultfd "
                   "asynchronous write-protect (Linux 6.7 or later)");
        return false;
    }
    return true;
}

static void pagemap_scan_stop(DirtyTracker *dt)
{
    for (unsigned i = 0; i < dt->nblocks; i++) {
        RAMBlock *rb = dt->blocks[i];

        /*
         * Unregistering also drops the protection on current kernels;
         * removing it first does not rely on that.  Errors only mean the
         * block was never registered.
         */
        uffd_writeprotect(dt->uffd, rb->host, rb->used_length, false, false,
                          NULL);
        uffd_unregister(dt->uffd, rb->host, rb->used_length, NULL);
    }
}

static bool pagemap_scan_start(DirtyTracker *dt, Error **errp)
{
    uint64_t available = uffd_query_async_wp_features(errp);
    uint64_t wanted = UFFD_FEATURE_WP_ASYNC;

    if (!(available & UFFD_FEATURE_WP_ASYNC)) {
        return dirty_tracking_supported(DIRTY_TRACKING_PAGEMAP_SCAN, errp);
    }
    /* Without it, holes are not reported anyway: this is only speed. */
    wanted |= available & UFFD_FEATURE_WP_UNPOPULATED;
    for (unsigned i = 0; i < dt->nblocks; i++) {
        if (dt->blocks[i]->shared) {
            wanted |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
        }
    }
    if ((wanted & available) != wanted) {
        error_setg(errp, "userfaultfd lacks write-protect for shared memory");
        return false;
    }
    dt->uffd = uffd_open(wanted, errp);
    if (dt->uffd < 0) {
        return false;
    }
    dt->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (dt->pagemap_fd < 0) {
        error_setg_errno(errp, errno, "cannot open /proc/self/pagemap");
        return false;
    }
    for (unsigned i = 0; i < dt->nblocks; i++) {
        RAMBlock *rb = dt->blocks[i];

        if (!uffd_register(dt->uffd, rb->host, rb->used_length,
                           UFFDIO_REGISTER_MODE_WP, errp) ||
            !uffd_writeprotect(dt->uffd, rb->host, rb->used_length, true,
                               false, errp)) {
            error_prepend(errp, "RAMBlock %s: ", rb->idstr);
            return false;
        }
    }
    return true;
}

static int64_t pagemap_scan_sync(DirtyTracker *dt, DirtyRangeFn fn,
                                 void *opaque, Error **errp)
{
    g_autofree struct page_region *vec =
        g_new(struct page_region, SCAN_VEC_LEN);
    int64_t pages = 0;

    for (unsigned i = 0; i < dt->nblocks; i++) {
        RAMBlock *rb = dt->blocks[i];
        uint64_t start = (uintptr_t)rb->host;
        uint64_t end = start + rb->used_length;

        while (start < end) {
            struct pm_scan_arg arg = {
                .size = sizeof(arg),
                /* Report and re-protect in one step: no write is lost. */
                .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
                .start = start,
                .end = end,
                .vec = (uintptr_t)vec,
                .vec_len = SCAN_VEC_LEN,
                .category_mask = PAGE_IS_WRITTEN,
                .return_mask = PAGE_IS_WRITTEN,
            };
            int n = fault_inject(FAULT_PAGEMAP_READ) ? -1 :
                    ioctl(dt->pagemap_fd, PAGEMAP_SCAN, &arg);
            if (n < 0) {
                error_setg_errno(errp, errno, "RAMBlock %s: PAGEMAP_SCAN "
                                 "failed", rb->idstr);
                return -1;
            }
            for (int r = 0; r < n; r++) {
                uint64_t first = (vec[r].start - (uintptr_t)rb->host)
                                 >> TARGET_PAGE_BITS;
                uint64_t count = (vec[r].end - vec[r].start)
                                 >> TARGET_PAGE_BITS;
                fn(rb, first, count, opaque);
                pages += count;
            }
            if (arg.walk_end <= start) {
                error_setg(errp, "RAMBlock %s: PAGEMAP_SCAN made no "
                           "progress", rb->idstr);
                return -1;
            }
            start = arg.walk_end;
        }
    }
    return pages;
}

static bool soft_dirty_clear(Error **errp)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, "4", 1) == 1;

    if (!ok) {
        error_setg_errno(errp, errno, "cannot clear soft-dirty bits");
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static bool soft_dirty_start(DirtyTracker *dt, Error **errp)
{
    if (!dirty_tracking_supported(DIRTY_TRACKING_SOFT_DIRTY, errp)) {
        return false;
    }
    if (!dt->quiesce.pause || !dt->quiesce.resume) {
        error_setg(errp, "soft-dirty tracking needs a way to pause writers");
        return false;
    }
    dt->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (dt->pagemap_fd < 0) {
        error_setg_errno(errp, errno, "cannot open /proc/self/pagemap");
        return false;
    }
    return soft_dirty_clear(errp);
}

static int64_t soft_dirty_read(DirtyTracker *dt, DirtyRangeFn fn,
                               void *opaque, Error **errp)
{
    g_autofree uint64_t *entries = g_new(uint64_t, SOFT_DIRTY_CHUNK);
    int64_t pages = 0;

    for (unsigned i = 0; i < dt->nblocks; i++) {
        RAMBlock *rb = dt->blocks[i];
        uint64_t npages = ramblock_pages(rb);
        uint64_t base = (uintptr_t)rb->host >> TARGET_PAGE_BITS;

        for (uint64_t p = 0; p < npages; p += SOFT_DIRTY_CHUNK) {
            uint64_t n = MIN(SOFT_DIRTY_CHUNK, npages - p);
            ssize_t len = fault_inject(FAULT_PAGEMAP_READ) ? -1 :
                          pread(dt->pagemap_fd, entries, n * 8,
                                (base + p) * 8);
            if (len != (ssize_t)(n * 8)) {
                error_setg_errno(errp, len < 0 ? errno : EIO,
                                 "RAMBlock %s: cannot read pagemap",
                                 rb->idstr);
                return -1;
            }
            uint64_t run = 0;
            for (uint64_t j = 0; j <= n; j++) {
                if (j < n && (entries[j] & PAGEMAP_SOFT_DIRTY)) {
                    run++;
                    continue;
                }
                if (run) {
                    fn(rb, p + j - run, run, opaque);
                    pages += run;
                    run = 0;
                }
            }
        }
    }
    return pages;
}

static int64_t soft_dirty_sync(DirtyTracker *dt, DirtyRangeFn fn,
                               void *opaque, Error **errp)
{
    /*
     * Reading the bits and clearing them are two system calls: a write in
     * between would be cleared unseen, so nobody writes meanwhile.
     */
    dt->quiesce.pause(dt->quiesce.opaque);
    int64_t pages = soft_dirty_read(dt, fn, opaque, errp);
    if (pages >= 0 && !soft_dirty_clear(errp)) {
        pages = -1;
    }
    dt->quiesce.resume(dt->quiesce.opaque);
    return pages;
}

DirtyTracker *dirty_tracker_start(DirtyTrackingMethod method,
                                  RAMBlock *const *blocks, unsigned nblocks,
                                  const DirtyQuiesceOps *quiesce,
                                  Error **errp)
{
    DirtyTracker *dt = g_new0(DirtyTracker, 1);
    bool ok;

    dt->method = method;
    dt->blocks = g_memdup2(blocks, sizeof(*blocks) * nblocks);
    dt->nblocks = nblocks;
    dt->uffd = -1;
    dt->pagemap_fd = -1;
    if (quiesce) {
        dt->quiesce = *quiesce;
    }
    uint64_t t0 = clock_ns();
    if (method == DIRTY_TRACKING_SOFT_DIRTY) {
        ok = soft_dirty_start(dt, errp);
    } else {
        ok = pagemap_scan_start(dt, errp);
    }
    dt->last_sync_ns = clock_ns() - t0;
    if (!ok) {
        dirty_tracker_stop(dt);
        return NULL;
    }
    return dt;
}

int64_t dirty_tracker_sync(DirtyTracker *dt, DirtyRangeFn fn, void *opaque,
                           Error **errp)
{
    uint64_t t0 = clock_ns();
    int64_t pages;

    if (dt->method == DIRTY_TRACKING_SOFT_DIRTY) {
        pages = soft_dirty_sync(dt, fn, opaque, errp);
    } else {
        pages = pagemap_scan_sync(dt, fn, opaque, errp);
    }
    dt->last_sync_ns = clock_ns() - t0;
    return pages;
}

uint64_t dirty_tracker_last_sync_ns(DirtyTracker *dt)
{
    return dt->last_sync_ns;
}

void dirty_tracker_stop(DirtyTracker *dt)
{
    if (!dt) {
        return;
    }
    if (dt->uffd >= 0) {
        pagemap_scan_stop(dt);
        close(dt->uffd);
    }
    if (dt->pagemap_fd >= 0) {
        close(dt->pagemap_fd);
    }
    g_free(dt->blocks);
    g_free(dt);
}
