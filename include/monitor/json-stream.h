/*
 * Split a byte stream into JSON texts, the way a QMP server reads its
 * socket: messages arrive in arbitrary pieces (several per read, or one
 * spread over many reads) and are found by tracking braces, brackets and
 * strings, not lines.
 *
 * The streamer does not parse; it hands each complete top-level value to
 * its callback, which parses it.  A value that grows past the size or
 * nesting limit is reported once as an error and then skipped up to where
 * its nesting returns to the top level, so the next message is read
 * normally.
 */
#ifndef MONITOR_JSON_STREAM_H
#define MONITOR_JSON_STREAM_H

#include "qemu/osdep.h"
#include "qapi/error.h"

/* QMP's limits (docs/devel/qmp.md). */
#define JSON_STREAM_MAX_SIZE    (1 * MiB)
#define JSON_STREAM_MAX_DEPTH   64

typedef struct JsonStream JsonStream;

/*
 * Called once per top-level value with its text (@len bytes, NUL-terminated
 * at @len), or once per oversized value with @text NULL and @err set (the
 * callee owns @err).
 */
typedef void (*JsonStreamEmitFunc)(void *opaque, const char *text,
                                   size_t len, Error *err);

JsonStream *json_stream_new(size_t max_size, unsigned max_depth,
                            JsonStreamEmitFunc emit, void *opaque);
/* May call @emit any number of times before it returns. */
void json_stream_feed(JsonStream *js, const char *buf, size_t len);
/* Bytes of an incomplete value held back, waiting for more input. */
size_t json_stream_pending(JsonStream *js);
void json_stream_free(JsonStream *js);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(JsonStream, json_stream_free)

#endif
