/*
 * JSON message splitter for QMP (see include/monitor/json-stream.h).
 */
#include "qemu/osdep.h"
#include "monitor/json-stream.h"

struct JsonStream {
    size_t max_size;
    unsigned max_depth;
    JsonStreamEmitFunc emit;
    void *opaque;

    GString *buf;       /* the value being collected */
    /*
     * Open braces and brackets, counted apart as QEMU's streamer does: a
     * closer of the wrong kind drives its own count negative and ends the
     * value at once (the parser then reports it), instead of closing an
     * opener of the other kind and leaving the client waiting for ever.
     */
    int braces;
    int brackets;
    bool in_string;
    bool escaped;       /* the previous byte in a string was a backslash */
    bool in_word;       /* a top-level number, keyword or garbage */
    /*
     * Set after an over-limit error: bytes are followed for structure but
     * not kept, until the value ends.
     */
    bool skipping;
};

JsonStream *json_stream_new(size_t max_size, unsigned max_depth,
                            JsonStreamEmitFunc emit, void *opaque)
{
    JsonStream *js = g_new0(JsonStream, 1);

    js->max_size = max_size;
    js->max_depth = max_depth;
    js->emit = emit;
    js->opaque = opaque;
    js->buf = g_string_new(NULL);
    return js;
}

void json_stream_free(JsonStream *js)
{
    if (js) {
        g_string_free(js->buf, TRUE);
        g_free(js);
    }
}

size_t json_stream_pending(JsonStream *js)
{
    return js->buf->len;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes that end a top-level bare word such as 123 or true. */
static bool ends_word(char c)
{
    return is_json_space(c) || strchr("{}[]\",:", c) != NULL;
}

static bool at_top_level(JsonStream *js)
{
    return js->braces == 0 && js->brackets == 0;
}

static void value_done(JsonStream *js)
{
    bool skipped = js->skipping;

    js->braces = 0;
    js->brackets = 0;
    js->in_word = false;
    js->skipping = false;
    if (!skipped) {
        /*
         * Hand over a copy-free view, then reset: the callback must not
         * keep the pointer (it is documented to get the text for the call).
         */
        js->emit(js->opaque, js->buf->str, js->buf->len, NULL);
    }
    g_string_truncate(js->buf, 0);
}

static void start_skipping(JsonStream *js, Error *err)
{
    js->skipping = true;
    g_string_truncate(js->buf, 0);
    js->emit(js->opaque, NULL, 0, err);
}

/* One byte inside a string, container, or top-level string. */
static void feed_structured(JsonStream *js, char c)
{
    if (js->in_string) {
        if (js->escaped) {
            js->escaped = false;
        } else if (c == '\\') {
            js->escaped = true;
        } else if (c == '"') {
            js->in_string = false;
            if (at_top_level(js)) {
                value_done(js);
            }
        }
        return;
    }
    switch (c) {
    case '"':
        js->in_string = true;
        break;
    case '{':
    case '[':
        *(c == '{' ? &js->braces : &js->brackets) += 1;
        if ((unsigned)(js->braces + js->brackets) > js->max_depth &&
            !js->skipping) {
            Error *err = NULL;
            error_setg(&err, "JSON parse error, too deeply nested"
                       " (limit %u levels)", js->max_depth);
            start_skipping(js, err);
        }
        break;
    case '}':
    case ']': {
        int *count = c == '}' ? &js->braces : &js->brackets;

        *count -= 1;
        if (*count < 0 || at_top_level(js)) {
            value_done(js);
        }
        break;
    }
    }
}

static void feed_byte(JsonStream *js, char c)
{
    if (js->in_word) {
        if (!ends_word(c)) {
            if (!js->skipping) {
                g_string_append_c(js->buf, c);
            }
            goto check_size;
        }
        value_done(js);
        /* @c starts something new: fall through to the top level. */
    }

    if (at_top_level(js) && !js->in_string) {
        if (is_json_space(c)) {
            return;
        }
        g_string_append_c(js->buf, c);
        switch (c) {
        case '{':
        case '[':
        case '"':
            feed_structured(js, c);
            break;
        case '}':
        case ']':
        case ',':
        case ':':
            /* Stray punctuation: a value of its own, which will not parse. */
            value_done(js);
            break;
        default:
            js->in_word = true;
            break;
        }
        goto check_size;
    }

    if (!js->skipping) {
        g_string_append_c(js->buf, c);
    }
    feed_structured(js, c);

check_size:
    if (!js->skipping && js->buf->len > js->max_size) {
        Error *err = NULL;
        error_setg(&err, "JSON parse error, message too long"
                   " (limit %zu bytes)", js->max_size);
        start_skipping(js, err);
    }
}

void json_stream_feed(JsonStream *js, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        feed_byte(js, buf[i]);
    }
}
