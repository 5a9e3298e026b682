/*
 * userfaultfd helpers (include/qemu/userfaultfd.h).
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "qemu/test-switches.h"
#include "qemu/tsan.h"
#include "qemu/userfaultfd.h"
#include <sys/ioctl.h>
#include <sys/syscall.h>

/*
 * For ThreadSanitizer: the kernel orders a write-protect before the fault
 * events it causes, and TSan does not see it; one token per descriptor
 * number stands for that order (see qemu/tsan.h).
 */
static char uffd_tsan_tokens[256];
#define uffd_tsan_token(uffd) (&uffd_tsan_tokens[(unsigned)(uffd) % 256])

/*
 * The syscall is refused to unprivileged users when
 * vm.unprivileged_userfaultfd is 0; /dev/userfaultfd is the way its
 * permissions can grant access anyway, so try both; and, if the caller
 * can do with one (@user_mode_only_ok), a userfaultfd that serves
 * user-mode faults only, which the syscall grants everyone.
 */
static int uffd_create(bool user_mode_only_ok, Error **errp)
{
    /* An injected failure stands for every way failing. */
    bool injected = fault_inject(FAULT_UFFD_OPEN);
    int fd = injected ? -1 : syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        return fd;
    }
    int sys_errno = errno;

    int dev = injected ? -1 : open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        int dev_errno = errno;
        close(dev);
        if (fd >= 0) {
            return fd;
        }
        sys_errno = dev_errno;
    }
    if (!injected && user_mode_only_ok && sys_errno == EPERM) {
        fd = syscall(__NR_userfaultfd,
                     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (fd >= 0) {
            return fd;
        }
    }
    error_setg_errno(errp, sys_errno,
                     "userfaultfd is not available (kernel without "
                     "CONFIG_USERFAULTFD, or vm.unprivileged_userfaultfd=0 "
                     "and no access to /dev/userfaultfd)");
    return -1;
}

static uint64_t uffd_query(bool user_mode_only_ok, Error **errp)
{
    int fd = uffd_create(user_mode_only_ok, errp);
    if (fd < 0) {
        return 0;
    }
    struct uffdio_api api = { .api = UFFD_API, .features = 0 };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        error_setg_errno(errp, errno, "UFFDIO_API failed");
        close(fd);
        return 0;
    }
    close(fd);
    return api.features & ~test_switch_uffd_hidden_features();
}

uint64_t uffd_query_features(Error **errp)
{
    return uffd_query(false, errp);
}

uint64_t uffd_query_async_wp_features(Error **errp)
{
    return uffd_query(true, errp);
}

int uffd_open(uint64_t features, Error **errp)
{
    uint64_t missing = features & test_switch_uffd_hidden_features();
    if (missing) {
        error_setg(errp, "userfaultfd lacks features 0x%" PRIx64
                   " (hidden for testing)", missing);
        return -1;
    }
    int fd = uffd_create(features & UFFD_FEATURE_WP_ASYNC, errp);
    if (fd < 0) {
        return -1;
    }
    struct uffdio_api api = { .api = UFFD_API, .features = features };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        error_setg_errno(errp, errno,
                         "userfaultfd does not offer features 0x%" PRIx64,
                         features);
        close(fd);
        return -1;
    }
    return fd;
}

bool uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode,
                   Error **errp)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = mode,
    };
    if (fault_inject(FAULT_UFFD_IOCTL) ||
        ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        error_setg_errno(errp, errno, "UFFDIO_REGISTER of %" PRIu64
                         " bytes at %p failed", len, addr);
        return false;
    }
    if ((mode & UFFDIO_REGISTER_MODE_WP) &&
        !(reg.ioctls & (UINT64_C(1) << _UFFDIO_WRITEPROTECT))) {
        uffd_unregister(uffd, addr, len, NULL);
        error_setg(errp, "the kernel cannot write-protect this memory "
                   "with userfaultfd");
        return false;
    }
    return true;
}

bool uffd_unregister(int uffd, void *addr, uint64_t len, Error **errp)
{
    struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };
    if (fault_inject(FAULT_UFFD_IOCTL) ||
        ioctl(uffd, UFFDIO_UNREGISTER, &range) < 0) {
        error_setg_errno(errp, errno, "UFFDIO_UNREGISTER failed");
        return false;
    }
    return true;
}

bool uffd_writeprotect(int uffd, void *addr, uint64_t len, bool wp,
                       bool dontwake, Error **errp)
{
    struct uffdio_writeprotect arg = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = (wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
                (dontwake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
    };
    /* EAGAIN: the mm changed under us (a concurrent fault); just retry. */
    int ret;
    if (wp) {
        /* A fault event on this range comes after what we did so far. */
        tsan_release(uffd_tsan_token(uffd));
    }
    do {
        ret = fault_inject(FAULT_UFFD_IOCTL) ? -1 :
              ioctl(uffd, UFFDIO_WRITEPROTECT, &arg);
    } while (ret < 0 && (errno == EAGAIN || errno == EINTR));
    if (ret < 0) {
        error_setg_errno(errp, errno, "UFFDIO_WRITEPROTECT (%s) failed",
                         wp ? "protect" : "unprotect");
        return false;
    }
    return true;
}

bool uffd_copy(int uffd, void *dst, const void *src, uint64_t len,
               Error **errp)
{
    uint64_t done = 0;

    /* EAGAIN after some progress: the mm changed, go on with the rest. */
    while (done < len) {
        struct uffdio_copy cp = {
            .dst = (uintptr_t)dst + done, .src = (uintptr_t)src + done,
            .len = len - done,
        };

        if (ioctl(uffd, UFFDIO_COPY, &cp) == 0) {
            return true;
        }
        if (errno != EAGAIN || cp.copy <= 0) {
            error_setg_errno(errp, errno, "UFFDIO_COPY");
            return false;
        }
        done += cp.copy;
    }
    return true;
}

bool uffd_move(int uffd, void *dst, void *src, uint64_t len,
               uint64_t *moved)
{
    *moved = 0;
    while (*moved < len) {
        struct uffdio_move mv = {
            .dst = (uintptr_t)dst + *moved, .src = (uintptr_t)src + *moved,
            .len = len - *moved,
        };

        if (ioctl(uffd, UFFDIO_MOVE, &mv) == 0) {
            *moved = len;
            return true;
        }
        if (errno != EAGAIN || mv.move <= 0) {
            return false;
        }
        *moved += mv.move;
    }
    return true;
}

bool uffd_wake(int uffd, void *addr, uint64_t len, Error **errp)
{
    struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };

    if (ioctl(uffd, UFFDIO_WAKE, &range) < 0) {
        error_setg_errno(errp, errno, "UFFDIO_WAKE failed");
        return false;
    }
    return true;
}

int uffd_read_events(int uffd, struct uffd_msg *msgs, int max, Error **errp)
{
    ssize_t n;
    do {
        n = fault_inject(FAULT_UFFD_READ) ? -1 :
            read(uffd, msgs, sizeof(*msgs) * max);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN) {
            return 0;
        }
        error_setg_errno(errp, errno, "reading userfaultfd events failed");
        return -1;
    }
    g_assert(n % sizeof(*msgs) == 0);
    if (n) {
        tsan_acquire(uffd_tsan_token(uffd));
    }
    return n / sizeof(*msgs);
}
