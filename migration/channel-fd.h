/*
 * The common base of every descriptor-backed transport (fd:, exec:, file:,
 * unix:, tcp:): blocking I/O built on non-blocking descriptors and poll(),
 * with an eventfd that mig_channel_cancel() signals so that a read or write
 * stalled on a peer that stopped taking data returns at once.
 *
 * Private to migration/channel-*.c.
 */
#ifndef MIGRATION_CHANNEL_FD_H
#define MIGRATION_CHANNEL_FD_H

#include "qemu/osdep.h"
#include "migration/channel.h"
#include "migration/fdset.h"

typedef struct FdChannel {
    MigChannel parent;
    int fd;             /* the stream; -1 once closed */
    int cancel_fd;      /* eventfd, readable once cancelled */
} FdChannel;

/* Takes ownership of @fd and makes it non-blocking. */
bool fd_channel_init(FdChannel *c, const MigChannelOps *ops, int fd,
                     const char *description, Error **errp);
/* Closes the descriptors and frees the description (not @c itself). */
void fd_channel_cleanup(FdChannel *c);

bool fd_channel_is_cancelled(FdChannel *c);
/*
 * Wait until @fd is ready for @events (POLLIN/POLLOUT) or the channel is
 * cancelled; false with @errp set on cancel.  @timeout_ms < 0 waits
 * forever; on timeout returns true with *@timed_out set (if non-NULL).
 */
bool fd_channel_wait(FdChannel *c, int fd, short events, int timeout_ms,
                     bool *timed_out, Error **errp);

/* MigChannelOps members shared by the transports. */
bool fd_channel_writev_all(MigChannel *ch, const struct iovec *iov,
                           int iovcnt, Error **errp);
ssize_t fd_channel_read(MigChannel *ch, void *buf, size_t len, Error **errp);
void fd_channel_cancel(MigChannel *ch);

/*
 * Step *@cur and *@iovcnt past @n bytes a writev or pwritev wrote; the
 * iovec the write stopped in is trimmed in place.
 */
void fd_channel_iov_consume(struct iovec **cur, int *iovcnt, size_t n);

/* Plain descriptor (fd: transport). */
MigChannel *mig_channel_new_fd(int fd, const char *description,
                               Error **errp);

/* Transports, each in its channel-*.c; @target is the URI after "xxx:". */
MigChannel *mig_channel_exec_outgoing(const char *command, Error **errp);
MigChannel *mig_channel_exec_incoming(const char *command, Error **errp);
/*
 * file: with @offset > 0 starts the stream that far into the file (the
 * bytes before it are kept on the way out) and has no positional I/O, so
 * mapped-ram is refused there.  A @path "/dev/fdset/N" is a duplicate
 * of a descriptor of add-fd set N from @fdsets (NULL: none).
 */
MigChannel *mig_channel_file_outgoing(const char *path, uint64_t offset,
                                      MigFdSets *fdsets, Error **errp);
MigChannel *mig_channel_file_incoming(const char *path, uint64_t offset,
                                      MigFdSets *fdsets, Error **errp);
MigChannel *mig_channel_unix_outgoing(const char *path, Error **errp);
MigChannel *mig_channel_unix_incoming(const char *path, Error **errp);
MigChannel *mig_channel_tcp_outgoing(const char *hostport, Error **errp);
MigChannel *mig_channel_tcp_incoming(const char *hostport, Error **errp);

#endif
