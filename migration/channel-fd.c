/*
 * Descriptor-backed channels (see channel-fd.h) and the fd: transport.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "channel-fd.h"
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

bool fd_channel_init(FdChannel *c, const MigChannelOps *ops, int fd,
                     const char *description, Error **errp)
{
    c->parent.ops = ops;
    c->parent.description = g_strdup(description);
    c->fd = fd;
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create eventfd",
                         description);
        fd_channel_cleanup(c);
        return false;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "%s: bad file descriptor %d",
                         description, fd);
        fd_channel_cleanup(c);
        return false;
    }
    return true;
}

void fd_channel_cleanup(FdChannel *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->cancel_fd >= 0) {
        close(c->cancel_fd);
        c->cancel_fd = -1;
    }
    g_clear_pointer(&c->parent.description, g_free);
}

bool fd_channel_is_cancelled(FdChannel *c)
{
    struct pollfd pfd = { .fd = c->cancel_fd, .events = POLLIN };
    return poll(&pfd, 1, 0) > 0;
}

bool fd_channel_wait(FdChannel *c, int fd, short events, int timeout_ms,
                     bool *timed_out, Error **errp)
{
    struct pollfd pfd[2] = {
        { .fd = fd, .events = events },
        { .fd = c->cancel_fd, .events = POLLIN },
    };

    if (timed_out) {
        *timed_out = false;
    }
    for (;;) {
        int n = poll(pfd, 2, timeout_ms);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "%s: poll failed",
                             c->parent.description);
            return false;
        }
        /* Cancel wins over readiness: the caller asked us to stop. */
        if (pfd[1].revents) {
            error_setg(errp, "%s: channel cancelled", c->parent.description);
            return false;
        }
        if (n == 0 && timed_out) {
            *timed_out = true;
        }
        /* POLLERR/POLLHUP: let the next read/write report the reason. */
        return true;
    }
}

bool fd_channel_writev_all(MigChannel *ch, const struct iovec *iov,
                           int iovcnt, Error **errp)
{
    FdChannel *c = container_of(ch, FdChannel, parent);
    g_autofree struct iovec *local = g_memdup2(iov, sizeof(*iov) * iovcnt);
    struct iovec *cur = local;

    if (fd_channel_is_cancelled(c)) {
        error_setg(errp, "%s: channel cancelled", ch->description);
        return false;
    }
    while (iovcnt > 0) {
        if (cur->iov_len == 0) {
            cur++;
            iovcnt--;
            continue;
        }
        ssize_t n = fault_inject(FAULT_CHANNEL_WRITE) ? -1 :
                    writev(c->fd, cur, MIN(iovcnt, IOV_MAX));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!fd_channel_wait(c, c->fd, POLLOUT, -1, NULL, errp)) {
                    return false;
                }
                continue;
            }
            error_setg_errno(errp, errno, "%s: write failed",
                             ch->description);
            return false;
        }
        fd_channel_iov_consume(&cur, &iovcnt, n);
    }
    return true;
}

void fd_channel_iov_consume(struct iovec **cur, int *iovcnt, size_t n)
{
    while (n > 0 && *iovcnt > 0) {
        if (n >= (*cur)->iov_len) {
            n -= (*cur)->iov_len;
            (*cur)++;
            (*iovcnt)--;
        } else {
            (*cur)->iov_base = (char *)(*cur)->iov_base + n;
            (*cur)->iov_len -= n;
            n = 0;
        }
    }
}

ssize_t fd_channel_read(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    FdChannel *c = container_of(ch, FdChannel, parent);

    for (;;) {
        if (fd_channel_is_cancelled(c)) {
            error_setg(errp, "%s: channel cancelled", ch->description);
            return -1;
        }
        ssize_t n = read(c->fd, buf, len);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            if (!fd_channel_wait(c, c->fd, POLLIN, -1, NULL, errp)) {
                return -1;
            }
            continue;
        }
        error_setg_errno(errp, errno, "%s: read failed", ch->description);
        return -1;
    }
}

void fd_channel_cancel(MigChannel *ch)
{
    FdChannel *c = container_of(ch, FdChannel, parent);
    uint64_t one = 1;

    /* eventfd writes are atomic and async-signal-safe; nothing to lock. */
    if (write(c->cancel_fd, &one, sizeof(one)) < 0) {
        /* Only EAGAIN at counter overflow: it is signalled already. */
    }
}

static bool fd_plain_close(MigChannel *ch, Error **errp)
{
    FdChannel *c = container_of(ch, FdChannel, parent);
    bool ok = true;

    /* A regular file is a snapshot: make it durable before success. */
    struct stat st;
    if (fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (fcntl(c->fd, F_GETFL) & O_ACCMODE) != O_RDONLY &&
        (fault_inject(FAULT_CHANNEL_FSYNC) || fsync(c->fd) < 0)) {
        error_setg_errno(errp, errno, "%s: fsync failed", ch->description);
        ok = false;
    }
    if (close(c->fd) < 0 && ok) {
        error_setg_errno(errp, errno, "%s: close failed", ch->description);
        ok = false;
    }
    c->fd = -1;
    fd_channel_cleanup(c);
    g_free(c);
    return ok;
}

static void fd_plain_abort(MigChannel *ch)
{
    FdChannel *c = container_of(ch, FdChannel, parent);

    fd_channel_cleanup(c);
    g_free(c);
}

static const MigChannelOps fd_plain_ops = {
    .writev_all = fd_channel_writev_all,
    .read = fd_channel_read,
    .close = fd_plain_close,
    .abort = fd_plain_abort,
    .cancel = fd_channel_cancel,
};

MigChannel *mig_channel_new_fd(int fd, const char *description, Error **errp)
{
    FdChannel *c = g_new0(FdChannel, 1);

    if (!fd_channel_init(c, &fd_plain_ops, fd, description, errp)) {
        g_free(c);
        return NULL;
    }
    return &c->parent;
}
