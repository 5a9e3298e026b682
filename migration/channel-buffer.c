/*
 * In-memory channel: the stream lives in a GByteArray the caller owns.
 * Used by tests and by the background snapshot to hold device state saved
 * at the start until it is appended at the end.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "migration/channel.h"

typedef struct MigChannelBuffer {
    MigChannel parent;
    GByteArray *buf;
    size_t read_pos;        /* reads consume from here, leaving buf intact */
    int cancelled;
} MigChannelBuffer;

static bool buffer_writev_all(MigChannel *ch, const struct iovec *iov,
                              int iovcnt, Error **errp)
{
    MigChannelBuffer *b = container_of(ch, MigChannelBuffer, parent);

    if (qatomic_read(&b->cancelled)) {
        error_setg(errp, "migration to %s was cancelled", ch->description);
        return false;
    }
    for (int i = 0; i < iovcnt; i++) {
        g_byte_array_append(b->buf, iov[i].iov_base, iov[i].iov_len);
    }
    return true;
}

static ssize_t buffer_read(MigChannel *ch, void *buf, size_t len,
                           Error **errp)
{
    MigChannelBuffer *b = container_of(ch, MigChannelBuffer, parent);
    size_t n;

    if (qatomic_read(&b->cancelled)) {
        error_setg(errp, "migration from %s was cancelled", ch->description);
        return -1;
    }
    n = MIN(len, b->buf->len - b->read_pos);
    if (!n) {
        return 0;       /* an empty GByteArray has no data pointer */
    }
    memcpy(buf, b->buf->data + b->read_pos, n);
    b->read_pos += n;
    return n;
}

static void buffer_free(MigChannel *ch)
{
    MigChannelBuffer *b = container_of(ch, MigChannelBuffer, parent);

    g_free(ch->description);
    g_free(b);
}

static bool buffer_close(MigChannel *ch, Error **errp)
{
    buffer_free(ch);
    return true;
}

static void buffer_cancel(MigChannel *ch)
{
    MigChannelBuffer *b = container_of(ch, MigChannelBuffer, parent);

    qatomic_set(&b->cancelled, 1);
}

static const MigChannelOps buffer_ops = {
    .writev_all = buffer_writev_all,
    .read = buffer_read,
    .close = buffer_close,
    .abort = buffer_free,
    .cancel = buffer_cancel,
};

MigChannel *mig_channel_new_buffer(GByteArray *buf)
{
    MigChannelBuffer *b = g_new0(MigChannelBuffer, 1);

    b->parent.ops = &buffer_ops;
    b->parent.description = g_strdup("memory buffer");
    b->buf = buf;
    return &b->parent;
}
