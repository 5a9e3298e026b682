/*
 * QEMUFile: buffered stream over a MigChannel (see migration/qemu-file.h).
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/crc32c.h"
#include "migration/qemu-file.h"

/*
 * 64 KiB of small puts, and up to 1024 iovecs per writev (the kernel's
 * IOV_MAX): with one 8-byte header and one 4 KiB page per page, that is
 * 512 pages, 2 MiB, per syscall.
 */
#define QEMU_FILE_BUF_SIZE (64 * 1024)
#define QEMU_FILE_MAX_IOV  1024

struct QEMUFile {
    MigChannel *ch;
    bool writable;
    uint64_t pos;               /* see qemu_file_transferred() */
    Error *err;                 /* sticky; only the I/O thread uses it */

    uint8_t *buf;
    /*
     * Writing: bytes of buf in use.  Reading: next byte to hand out, of
     * buf_len valid ones.
     */
    size_t buf_index;
    size_t buf_len;
    bool eof;

    struct iovec iov[QEMU_FILE_MAX_IOV];
    int iovcnt;

    QEMUFileWriteHook write_hook;
    void *write_hook_opaque;

    /*
     * See qemu_file_digest_start().  The bytes of buf from digest_from to
     * buf_index have been put (or handed out) but not yet digested: they
     * are, in one CRC call, before buf is flushed, refilled or seeked,
     * before a payload, and at a take.  One call per few bytes put would
     * cost more than the CRC itself.
     */
    bool digesting;
    uint32_t digest;
    size_t digest_from;
};

static QEMUFile *qemu_file_new(MigChannel *ch, bool writable)
{
    QEMUFile *f = g_new0(QEMUFile, 1);
    f->ch = ch;
    f->writable = writable;
    f->buf = g_malloc(QEMU_FILE_BUF_SIZE);
    return f;
}

QEMUFile *qemu_file_new_output(MigChannel *ch)
{
    return qemu_file_new(ch, true);
}

QEMUFile *qemu_file_new_input(MigChannel *ch)
{
    return qemu_file_new(ch, false);
}

static void qemu_file_free(QEMUFile *f)
{
    error_free(f->err);
    g_free(f->buf);
    g_free(f);
}

bool qemu_fclose(QEMUFile *f, Error **errp)
{
    bool ok;

    if (f->writable) {
        qemu_fflush(f);
    }
    if (f->err) {
        error_propagate(errp, error_copy(f->err));
        mig_channel_abort(f->ch);
        ok = false;
    } else {
        ok = mig_channel_close(f->ch, errp);
    }
    qemu_file_free(f);
    return ok;
}

void qemu_file_abort(QEMUFile *f)
{
    mig_channel_abort(f->ch);
    qemu_file_free(f);
}

void qemu_file_cancel(QEMUFile *f)
{
    mig_channel_cancel(f->ch);
}

MigChannel *qemu_file_get_channel(QEMUFile *f)
{
    return f->ch;
}

int qemu_file_get_error(QEMUFile *f)
{
    return f->err ? -EIO : 0;
}

int qemu_file_get_error_obj(QEMUFile *f, Error **errp)
{
    if (!f->err) {
        return 0;
    }
    error_propagate(errp, error_copy(f->err));
    return -EIO;
}

void qemu_file_set_error(QEMUFile *f, Error *err)
{
    if (f->err) {
        error_free(err);
        return;
    }
    f->err = err;
}

uint64_t qemu_file_transferred(QEMUFile *f)
{
    return qatomic_read(&f->pos);
}

static void qemu_file_advance(QEMUFile *f, size_t n)
{
    /* Only this thread writes pos; others read it. */
    qatomic_set(&f->pos, f->pos + n);
}

static void qemu_file_digest(QEMUFile *f, const void *buf, size_t len)
{
    if (f->digesting && len) {
        f->digest = crc32c_extend(f->digest, buf, len);
    }
}

/* Digest what of buf went by since the last time. */
static void qemu_file_digest_pending(QEMUFile *f)
{
    if (f->buf_index > f->digest_from) {
        qemu_file_digest(f, f->buf + f->digest_from,
                         f->buf_index - f->digest_from);
    }
    f->digest_from = f->buf_index;
}

void qemu_file_digest_start(QEMUFile *f)
{
    f->digesting = true;
    f->digest = 0;
    f->digest_from = f->buf_index;
}

uint32_t qemu_file_digest_take(QEMUFile *f)
{
    uint32_t crc;

    qemu_file_digest_pending(f);
    crc = f->digest;
    f->digest = 0;
    return crc;
}

void qemu_file_set_write_hook(QEMUFile *f, QEMUFileWriteHook hook,
                              void *opaque)
{
    f->write_hook = hook;
    f->write_hook_opaque = opaque;
}

bool qemu_file_seek(QEMUFile *f, uint64_t offset, Error **errp)
{
    Error *err = NULL;

    if (f->writable && !qemu_fflush(f)) {
        return qemu_file_get_error_obj(f, errp) == 0;
    }
    if (f->err) {
        qemu_file_get_error_obj(f, errp);
        return false;
    }
    if (!mig_channel_is_seekable(f->ch)) {
        error_setg(&err, "%s cannot seek (offset %" PRIu64 ")",
                   f->ch->description, offset);
    } else {
        f->ch->ops->seek(f->ch, offset, &err);
    }
    if (err) {
        error_propagate(errp, error_copy(err));
        qemu_file_set_error(f, err);
        return false;
    }
    qemu_file_digest_pending(f);
    f->buf_index = 0;
    f->buf_len = 0;
    f->digest_from = 0;
    f->eof = false;
    qatomic_set(&f->pos, offset);
    return true;
}

/* ---- writing ---- */

bool qemu_fflush(QEMUFile *f)
{
    g_assert(f->writable);
    if (f->err) {
        return false;
    }
    if (f->iovcnt) {
        Error *err = NULL;
        uint64_t bytes = 0;

        for (int i = 0; i < f->iovcnt; i++) {
            bytes += f->iov[i].iov_len;
        }
        if (!mig_channel_writev_all(f->ch, f->iov, f->iovcnt, &err)) {
            error_prepend(&err, "write failed at offset %" PRIu64 ": ",
                          f->pos - bytes);
            qemu_file_set_error(f, err);
        } else if (f->write_hook) {
            f->write_hook(f->write_hook_opaque, bytes);
        }
    }
    qemu_file_digest_pending(f);
    f->iovcnt = 0;
    f->buf_index = 0;
    f->digest_from = 0;
    return !f->err;
}

static void qemu_file_queue_iov(QEMUFile *f, const void *base, size_t len)
{
    struct iovec *last = f->iovcnt ? &f->iov[f->iovcnt - 1] : NULL;

    if (last && (const uint8_t *)last->iov_base + last->iov_len == base) {
        last->iov_len += len;
    } else {
        f->iov[f->iovcnt].iov_base = (void *)base;
        f->iov[f->iovcnt].iov_len = len;
        f->iovcnt++;
    }
    qemu_file_advance(f, len);
    if (f->iovcnt == QEMU_FILE_MAX_IOV) {
        qemu_fflush(f);
    }
}

void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    g_assert(f->writable);
    while (len && !f->err) {
        size_t room = QEMU_FILE_BUF_SIZE - f->buf_index;
        size_t n = MIN(room, len);

        if (!room) {
            qemu_fflush(f);
            continue;
        }
        memcpy(f->buf + f->buf_index, p, n);
        /* Index first: queueing may flush, which resets buf_index. */
        f->buf_index += n;
        qemu_file_queue_iov(f, f->buf + f->buf_index - n, n);
        p += n;
        len -= n;
    }
}

void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len)
{
    g_assert(f->writable);
    if (f->err || !len) {
        return;
    }
    qemu_file_queue_iov(f, buf, len);
}

void qemu_put_payload(QEMUFile *f, const void *buf, size_t len,
                      bool in_place)
{
    bool digesting = f->digesting;

    if (in_place) {
        qemu_put_buffer_async(f, buf, len);
        return;
    }
    qemu_file_digest_pending(f);
    f->digesting = false;
    qemu_put_buffer(f, buf, len);
    f->digesting = digesting;
    f->digest_from = f->buf_index;
}

void qemu_put_byte(QEMUFile *f, uint8_t v)
{
    qemu_put_buffer(f, &v, 1);
}

void qemu_put_be16(QEMUFile *f, uint16_t v)
{
    uint16_t be = GUINT16_TO_BE(v);
    qemu_put_buffer(f, &be, sizeof(be));
}

void qemu_put_be32(QEMUFile *f, uint32_t v)
{
    uint32_t be = GUINT32_TO_BE(v);
    qemu_put_buffer(f, &be, sizeof(be));
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    uint64_t be = GUINT64_TO_BE(v);
    qemu_put_buffer(f, &be, sizeof(be));
}

/* ---- reading ---- */

/* Refill the buffer; false at end of stream or on error. */
static bool qemu_file_fill(QEMUFile *f)
{
    Error *err = NULL;
    ssize_t n;

    if (f->err || f->eof) {
        return false;
    }
    if (f->buf_index) {
        qemu_file_digest_pending(f);
        memmove(f->buf, f->buf + f->buf_index, f->buf_len - f->buf_index);
        f->buf_len -= f->buf_index;
        f->buf_index = 0;
        f->digest_from = 0;
    }
    n = mig_channel_read(f->ch, f->buf + f->buf_len,
                         QEMU_FILE_BUF_SIZE - f->buf_len, &err);
    if (n < 0) {
        error_prepend(&err, "read failed at offset %" PRIu64 ": ",
                      f->pos + f->buf_len);
        qemu_file_set_error(f, err);
        return false;
    }
    if (n == 0) {
        f->eof = true;
        return false;
    }
    f->buf_len += n;
    return true;
}

static void qemu_file_set_truncated(QEMUFile *f)
{
    Error *err = NULL;

    error_setg(&err, "unexpected end of stream at offset %" PRIu64, f->pos);
    qemu_file_set_error(f, err);
}

size_t qemu_get_buffer(QEMUFile *f, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;

    g_assert(!f->writable);
    while (done < len && !f->err) {
        size_t avail = f->buf_len - f->buf_index;

        if (avail) {
            size_t n = MIN(avail, len - done);
            memcpy(p + done, f->buf + f->buf_index, n);
            f->buf_index += n;
            qemu_file_advance(f, n);
            done += n;
            continue;
        }
        if (len - done >= QEMU_FILE_BUF_SIZE && !f->eof) {
            /* Big reads skip the buffer: no point copying twice. */
            Error *err = NULL;
            ssize_t n = mig_channel_read(f->ch, p + done, len - done, &err);
            if (n < 0) {
                error_prepend(&err, "read failed at offset %" PRIu64 ": ",
                              f->pos);
                qemu_file_set_error(f, err);
                break;
            }
            if (n == 0) {
                f->eof = true;
                qemu_file_set_truncated(f);
                break;
            }
            /* Not in buf: digested here, after what buf held. */
            qemu_file_digest_pending(f);
            qemu_file_digest(f, p + done, n);
            qemu_file_advance(f, n);
            done += n;
            continue;
        }
        if (!qemu_file_fill(f)) {
            if (!f->err) {
                qemu_file_set_truncated(f);
            }
            break;
        }
    }
    if (done < len) {
        memset(p + done, 0, len - done);
    }
    return done;
}

size_t qemu_get_payload(QEMUFile *f, void *buf, size_t len)
{
    bool digesting = f->digesting;
    size_t done;

    qemu_file_digest_pending(f);
    f->digesting = false;
    done = qemu_get_buffer(f, buf, len);
    f->digesting = digesting;
    f->digest_from = f->buf_index;
    return done;
}

uint8_t qemu_get_byte(QEMUFile *f)
{
    uint8_t v;

    if (f->buf_index < f->buf_len && !f->err) {
        v = f->buf[f->buf_index++];
        qemu_file_advance(f, 1);
        return v;
    }
    qemu_get_buffer(f, &v, 1);
    return v;
}

uint16_t qemu_get_be16(QEMUFile *f)
{
    uint16_t be;

    if (qemu_get_buffer(f, &be, sizeof(be)) < sizeof(be)) {
        return 0;
    }
    return GUINT16_FROM_BE(be);
}

uint32_t qemu_get_be32(QEMUFile *f)
{
    uint32_t be;

    if (qemu_get_buffer(f, &be, sizeof(be)) < sizeof(be)) {
        return 0;
    }
    return GUINT32_FROM_BE(be);
}

uint64_t qemu_get_be64(QEMUFile *f)
{
    uint64_t be;

    if (qemu_get_buffer(f, &be, sizeof(be)) < sizeof(be)) {
        return 0;
    }
    return GUINT64_FROM_BE(be);
}

bool qemu_file_at_eof(QEMUFile *f)
{
    g_assert(!f->writable);
    if (f->err) {
        return false;
    }
    if (f->buf_index < f->buf_len) {
        return false;
    }
    return !qemu_file_fill(f) && !f->err;
}
