/*
 * Thin helpers over the userfaultfd(2) ioctls, with errors a user can act
 * on.  The write-protect mode is what background snapshots stand on.
 */
#ifndef QEMU_USERFAULTFD_H
#define QEMU_USERFAULTFD_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include <linux/userfaultfd.h>

/* Newer than the 6.1 UAPI headers Debian 12 ships; values are the kernel's. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
/* UFFDIO_MOVE (Linux 6.8). */
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
/* userfaultfd(2) flag (Linux 5.11). */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/*
 * The features this kernel offers (UFFDIO_API with no feature requested),
 * or 0 if userfaultfd cannot be opened at all.  The test switch
 * SNAPVM_TEST_UFFD_HIDE_FEATURES (qemu/test-switches.h) masks features
 * out, here and in uffd_open(): tests use it to prove that a missing
 * feature is refused cleanly.
 */
uint64_t uffd_query_features(Error **errp);

/*
 * As uffd_query_features(), for a userfaultfd that will only ever do
 * asynchronous write-protect (UFFD_FEATURE_WP_ASYNC): the kernel resolves
 * those faults itself, whether user or kernel mode raised them, so a
 * process without the privilege for more may use one that serves
 * user-mode faults only (UFFD_USER_MODE_ONLY).  uffd_open() does the same
 * when @features include UFFD_FEATURE_WP_ASYNC.
 */
uint64_t uffd_query_async_wp_features(Error **errp);

/*
 * Open a userfaultfd (O_CLOEXEC | O_NONBLOCK) and enable @features; fails
 * if the kernel lacks any of them.  Returns the fd or -1.  With
 * UFFD_FEATURE_WP_ASYNC in @features it may serve user-mode faults only
 * (see uffd_query_async_wp_features()).
 */
int uffd_open(uint64_t features, Error **errp);

/* @mode: UFFDIO_REGISTER_MODE_WP and/or _MISSING. */
bool uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode,
                   Error **errp);
bool uffd_unregister(int uffd, void *addr, uint64_t len, Error **errp);

/*
 * Set (@wp) or remove write protection on [addr, addr + len).  Removing it
 * wakes the threads that fault in the range unless @dontwake.
 */
bool uffd_writeprotect(int uffd, void *addr, uint64_t len, bool wp,
                       bool dontwake, Error **errp);

/*
 * Resolve missing faults (a range registered UFFDIO_REGISTER_MODE_MISSING)
 * by putting @len bytes from @src at @dst, and wake the threads waiting
 * there.  uffd_copy() copies (UFFDIO_COPY).  uffd_move() moves the pages
 * (UFFDIO_MOVE, which needs UFFD_FEATURE_MOVE; @src is left empty) and
 * is an optimisation: false if the kernel would not move them all, with
 * *@moved the bytes it did move; the caller copies the rest.  Neither has
 * a fault-injection hook: their one caller, the lazy restore, can only
 * end the process when a copy fails (see lazy_fatal()).
 */
bool uffd_copy(int uffd, void *dst, const void *src, uint64_t len,
               Error **errp);
bool uffd_move(int uffd, void *dst, void *src, uint64_t len,
               uint64_t *moved);

/* Wake the threads that fault in [addr, addr + len) (UFFDIO_WAKE). */
bool uffd_wake(int uffd, void *addr, uint64_t len, Error **errp);

/*
 * Read up to @max pending events into @msgs.  Returns how many (0 if none
 * is pending), or -1 with @errp set.
 */
int uffd_read_events(int uffd, struct uffd_msg *msgs, int max, Error **errp);

#endif
