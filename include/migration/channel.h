/*
 * A migration channel: where a stream's bytes go to or come from.  Each
 * transport (exec:, file:, unix:, tcp:, fd:, and an in-memory buffer for
 * tests) implements these ops; the stream code (QEMUFile) never knows which.
 *
 * All I/O is blocking and done by one thread at a time, except
 * mig_channel_cancel(), which any thread may call to make pending and
 * later I/O fail at once.
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include <sys/uio.h>

typedef struct MigChannel MigChannel;

typedef struct MigChannelOps {
    /* Write all of @iov, or fail.  Returns false with @errp set. */
    bool (*writev_all)(MigChannel *ch, const struct iovec *iov, int iovcnt,
                       Error **errp);
    /* Read up to @len bytes; 0 at end of stream; -1 with @errp set. */
    ssize_t (*read)(MigChannel *ch, void *buf, size_t len, Error **errp);
    /*
     * Finish a successful stream: flush, fsync and rename a file, wait
     * for an exec: command and check its exit status.  Frees @ch.
     */
    bool (*close)(MigChannel *ch, Error **errp);
    /*
     * Give up on a stream: a file: target is removed (a snapshot to
     * file: is complete or absent), an exec: command is killed and
     * reaped.  Frees @ch.
     */
    void (*abort)(MigChannel *ch);
    /* Thread safe; see above.  May be NULL if I/O cannot block. */
    void (*cancel)(MigChannel *ch);

    /*
     * Positional I/O, for the mapped-ram layout (migration/mapped-ram.h).
     * Only file: has it; NULL elsewhere (mig_channel_is_seekable()).
     * pwritev_all and pread_all may be called from several threads at
     * once, alongside the stream I/O of the thread that owns the channel.
     */
    /* Write all of @iov at @offset.  @direct: through the O_DIRECT
     * descriptor (enable_direct_io); buffers, lengths and @offset are
     * then page aligned. */
    bool (*pwritev_all)(MigChannel *ch, const struct iovec *iov, int iovcnt,
                        uint64_t offset, bool direct, Error **errp);
    /* Read exactly @len bytes at @offset; a short file is an error that
     * names the offset. */
    bool (*pread_all)(MigChannel *ch, void *buf, size_t len, uint64_t offset,
                      Error **errp);
    /* Make [@offset, +@len) a hole: it reads as zeros, takes no disk. */
    bool (*discard)(MigChannel *ch, uint64_t offset, uint64_t len,
                    Error **errp);
    /* Later stream writes/reads continue at @offset. */
    bool (*seek)(MigChannel *ch, uint64_t offset, Error **errp);
    bool (*get_size)(MigChannel *ch, uint64_t *size, Error **errp);
    /*
     * The start of the first hole at or after @offset (SEEK_HOLE): the
     * file size if there is none (always, on a filesystem that keeps no
     * holes).  Never inside data that was written: a mapped-ram loader
     * uses it to find pages its bitmap marks present that are not there.
     */
    bool (*next_hole)(MigChannel *ch, uint64_t offset, uint64_t *hole,
                      Error **errp);
    /* Set the file's size (the end of the mapped-ram layout). */
    bool (*truncate)(MigChannel *ch, uint64_t size, Error **errp);
    /* Open the O_DIRECT descriptor; fails where the filesystem refuses. */
    bool (*enable_direct_io)(MigChannel *ch, Error **errp);
    /*
     * A new read-only descriptor of the file, which outlives the channel:
     * a lazy restore reads pages through it after the load has ended.
     * Returns -1 with @errp set on failure.
     */
    int (*dup_fd)(MigChannel *ch, Error **errp);
} MigChannelOps;

struct MigChannel {
    const MigChannelOps *ops;
    char *description;      /* the URI, for messages */
};

static inline bool mig_channel_writev_all(MigChannel *ch,
                                          const struct iovec *iov,
                                          int iovcnt, Error **errp)
{
    return ch->ops->writev_all(ch, iov, iovcnt, errp);
}

static inline ssize_t mig_channel_read(MigChannel *ch, void *buf, size_t len,
                                       Error **errp)
{
    return ch->ops->read(ch, buf, len, errp);
}

static inline bool mig_channel_close(MigChannel *ch, Error **errp)
{
    return ch->ops->close(ch, errp);
}

static inline void mig_channel_abort(MigChannel *ch)
{
    ch->ops->abort(ch);
}

static inline void mig_channel_cancel(MigChannel *ch)
{
    if (ch->ops->cancel) {
        ch->ops->cancel(ch);
    }
}

/* Does @ch have positional I/O (mapped-ram)? */
static inline bool mig_channel_is_seekable(MigChannel *ch)
{
    return ch->ops->pwritev_all && ch->ops->pread_all && ch->ops->seek;
}

static inline bool mig_channel_pwritev_all(MigChannel *ch,
                                           const struct iovec *iov,
                                           int iovcnt, uint64_t offset,
                                           bool direct, Error **errp)
{
    return ch->ops->pwritev_all(ch, iov, iovcnt, offset, direct, errp);
}

static inline bool mig_channel_pread_all(MigChannel *ch, void *buf,
                                         size_t len, uint64_t offset,
                                         Error **errp)
{
    return ch->ops->pread_all(ch, buf, len, offset, errp);
}

/*
 * In-memory channel (tests, and device state buffered during a background
 * snapshot): writes append to @buf, reads consume it from the start.  The
 * channel does not own @buf.
 */
MigChannel *mig_channel_new_buffer(GByteArray *buf);

/* Transports, from URIs (migration/channel-*.c). */
typedef struct MigFdStore MigFdStore;   /* getfd/closefd names */
MigChannel *mig_channel_open_outgoing(const char *uri, MigFdStore *fds,
                                      Error **errp);
MigChannel *mig_channel_open_incoming(const char *uri, MigFdStore *fds,
                                      Error **errp);
/*
 * @path itself as an incoming file: channel, without reading it as URI
 * text (for tools given a file name, in which a comma is just a comma).
 */
MigChannel *mig_channel_open_file(const char *path, Error **errp);
/* The PATH and offset of "file:" URI text @spec (what follows "file:"). */
bool mig_uri_parse_file(const char *spec, char **path, uint64_t *offset,
                        Error **errp);

#endif
