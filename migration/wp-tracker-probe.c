/*
 * Whether a background snapshot of these blocks can work here: asked
 * when the capability is turned on, so that "migrate" never fails for
 * want of a kernel feature (include/migration/wp-tracker.h).
 */
#include "qemu/osdep.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"

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
