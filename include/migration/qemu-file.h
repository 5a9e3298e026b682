/*
 * QEMUFile: a buffered byte stream over a MigChannel, in one direction.
 *
 * Writing: small puts are gathered in a buffer; large ones are queued as
 * iovecs, so a run of guest pages goes out in one writev() of many pages
 * rather than one syscall per page.  qemu_put_buffer_async() queues a
 * pointer without copying: the caller keeps the memory valid and unchanged
 * until the next qemu_fflush() (explicit, or implied by a full queue) has
 * returned.
 *
 * Errors are sticky: the first failure is remembered with its Error, every
 * later operation is a no-op (reads return zeros), and the caller checks
 * once with qemu_file_get_error_obj().  Offsets in messages are counted in
 * bytes from the start of the stream, the same count that
 * qemu_file_transferred() returns.
 *
 * One thread does the I/O; qemu_file_transferred() and qemu_file_cancel()
 * may be called from any thread.
 */
#ifndef MIGRATION_QEMU_FILE_H
#define MIGRATION_QEMU_FILE_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/channel.h"

typedef struct QEMUFile QEMUFile;

/* The file takes ownership of @ch: qemu_fclose()/qemu_file_abort() end it. */
QEMUFile *qemu_file_new_output(MigChannel *ch);
QEMUFile *qemu_file_new_input(MigChannel *ch);

/*
 * Flush, then finish the channel (mig_channel_close()) if no error was
 * recorded, or give it up (mig_channel_abort()) if one was.  Frees @f.
 * Returns false with @errp set if the stream or the close failed.
 */
bool qemu_fclose(QEMUFile *f, Error **errp);
/* Give up on the stream without flushing; frees @f. */
void qemu_file_abort(QEMUFile *f);
/* Make blocked and later I/O fail at once (thread safe). */
void qemu_file_cancel(QEMUFile *f);
MigChannel *qemu_file_get_channel(QEMUFile *f);

/*
 * Continue the stream at byte @offset of a seekable channel (file:, see
 * mig_channel_is_seekable()), for the mapped-ram layout, which skips over
 * the page areas it fills with positional writes.  Writing: flushes
 * first.  Reading: drops what was buffered.  qemu_file_transferred()
 * then returns @offset.  Returns false (and records the error) on
 * failure.
 */
bool qemu_file_seek(QEMUFile *f, uint64_t offset, Error **errp);

/* ---- errors ---- */

/* 0 if no error was recorded, else a negative errno value (-EIO). */
int qemu_file_get_error(QEMUFile *f);
/* Same, and a copy of the recorded Error in @errp. */
int qemu_file_get_error_obj(QEMUFile *f, Error **errp);
/* Record @err (taking ownership) unless an error is already recorded. */
void qemu_file_set_error(QEMUFile *f, Error *err);

/* ---- counters ---- */

/*
 * Bytes put into (or consumed from) the stream so far, flushed or not:
 * the offset of the next byte.  Thread safe.
 */
uint64_t qemu_file_transferred(QEMUFile *f);

/*
 * Called after every successful write to the channel with the number of
 * bytes it carried, e.g. to enforce a bandwidth limit by sleeping.
 */
typedef void (*QEMUFileWriteHook)(void *opaque, uint64_t bytes);
void qemu_file_set_write_hook(QEMUFile *f, QEMUFileWriteHook hook,
                              void *opaque);

/*
 * The stream's checksum (docs/interop/snapshot-format.md, "Checksums"): a
 * running CRC32C of the bytes put or got since qemu_file_digest_start(),
 * page payloads aside.  A payload, put or got with the _payload functions,
 * is covered by a checksum of its own (its region's), and leaving it out
 * keeps each guest page to one CRC pass.  Save and load take the digest at
 * the same places in the stream, so the values match when the bytes do.
 */
void qemu_file_digest_start(QEMUFile *f);
/* The CRC32C of what went by since the last start or take; restarts it. */
uint32_t qemu_file_digest_take(QEMUFile *f);

/* ---- writing ---- */

void qemu_put_byte(QEMUFile *f, uint8_t v);
void qemu_put_be16(QEMUFile *f, uint16_t v);
void qemu_put_be32(QEMUFile *f, uint32_t v);
void qemu_put_be64(QEMUFile *f, uint64_t v);
/* Copies @buf: the caller may reuse it at once. */
void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len);
/* Queues @buf without copying; see above for how long it must stay valid. */
void qemu_put_buffer_async(QEMUFile *f, const void *buf, size_t len);
/* A page's bytes, left out of the digest; @in_place: as _async. */
void qemu_put_payload(QEMUFile *f, const void *buf, size_t len,
                      bool in_place);
/* Write out everything buffered and queued.  Returns false on error. */
bool qemu_fflush(QEMUFile *f);

/* ---- reading ---- */

/*
 * Each returns 0 (and records "unexpected end of stream at offset N") if
 * the stream ends early, or 0 after any earlier error.
 */
uint8_t qemu_get_byte(QEMUFile *f);
uint16_t qemu_get_be16(QEMUFile *f);
uint32_t qemu_get_be32(QEMUFile *f);
uint64_t qemu_get_be64(QEMUFile *f);
/* Reads exactly @len bytes or records an error; returns bytes read. */
size_t qemu_get_buffer(QEMUFile *f, void *buf, size_t len);
/* qemu_get_buffer() of a page's bytes, left out of the digest. */
size_t qemu_get_payload(QEMUFile *f, void *buf, size_t len);
/*
 * True if the stream has no more bytes (a clean end).  Does not consume
 * anything; false on error too (check the error).
 */
bool qemu_file_at_eof(QEMUFile *f);

#endif
