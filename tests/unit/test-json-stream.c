/*
 * The QMP message splitter: framing independent of how bytes arrive,
 * strings that contain structure, and the size and nesting limits.
 */
#include "qemu/osdep.h"
#include "monitor/json-stream.h"

typedef struct Collected {
    GPtrArray *texts;       /* char *; "ERROR: msg" for limit errors */
} Collected;

static void collect(void *opaque, const char *text, size_t len, Error *err)
{
    Collected *c = opaque;

    if (err) {
        g_ptr_array_add(c->texts, g_strdup_printf("ERROR: %s",
                                                  error_get_pretty(err)));
        error_free(err);
        return;
    }
    g_assert_cmpuint(strlen(text), ==, len);
    g_ptr_array_add(c->texts, g_strndup(text, len));
}

static GPtrArray *split_with(const char *input, size_t chunk,
                             size_t max_size, unsigned max_depth)
{
    Collected c = { .texts = g_ptr_array_new_with_free_func(g_free) };
    g_autoptr(JsonStream) js = json_stream_new(max_size, max_depth,
                                               collect, &c);
    size_t len = strlen(input);

    for (size_t off = 0; off < len; off += chunk) {
        json_stream_feed(js, input + off, MIN(chunk, len - off));
    }
    return c.texts;
}

static GPtrArray *split(const char *input, size_t chunk)
{
    return split_with(input, chunk, JSON_STREAM_MAX_SIZE,
                      JSON_STREAM_MAX_DEPTH);
}

static void assert_texts(GPtrArray *got, const char *const *want)
{
    guint n = g_strv_length((char **)want);

    for (guint i = 0; i < MIN(n, got->len); i++) {
        g_assert_cmpstr(g_ptr_array_index(got, i), ==, want[i]);
    }
    g_assert_cmpuint(got->len, ==, n);
}

static void test_two_messages_any_chunking(void)
{
    const char *input = "{\"execute\": \"stop\"}\r\n"
                        "  {\"execute\":\"cont\",\"id\":[1,{\"a\":2}]}";
    const char *const want[] = {
        "{\"execute\": \"stop\"}",
        "{\"execute\":\"cont\",\"id\":[1,{\"a\":2}]}",
        NULL
    };

    /* Byte by byte, odd sizes, and all at once frame the same way. */
    for (size_t chunk = 1; chunk <= strlen(input); chunk++) {
        g_autoptr(GPtrArray) got = split(input, chunk);
        assert_texts(got, want);
    }
}

static void test_no_newline_needed(void)
{
    g_autoptr(GPtrArray) got = split("{}{}[]", 100);
    const char *const want[] = { "{}", "{}", "[]", NULL };

    assert_texts(got, want);
}

static void test_strings_hide_structure(void)
{
    const char *input = "{\"a\": \"}{][\\\"}\"} {\"b\": \"\\\\\"}";
    const char *const want[] = {
        "{\"a\": \"}{][\\\"}\"}",
        "{\"b\": \"\\\\\"}",
        NULL
    };

    for (size_t chunk = 1; chunk <= 3; chunk++) {
        g_autoptr(GPtrArray) got = split(input, chunk);
        assert_texts(got, want);
    }
}

static void test_incomplete_is_held(void)
{
    Collected c = { .texts = g_ptr_array_new_with_free_func(g_free) };
    g_autoptr(JsonStream) js = json_stream_new(JSON_STREAM_MAX_SIZE,
                                               JSON_STREAM_MAX_DEPTH,
                                               collect, &c);

    json_stream_feed(js, "{\"execute\": \"st", 15);
    g_assert_cmpuint(c.texts->len, ==, 0);
    g_assert_cmpuint(json_stream_pending(js), ==, 15);
    json_stream_feed(js, "op\"}", 4);
    g_assert_cmpuint(c.texts->len, ==, 1);
    g_assert_cmpstr(g_ptr_array_index(c.texts, 0), ==,
                    "{\"execute\": \"stop\"}");
    g_assert_cmpuint(json_stream_pending(js), ==, 0);
    g_ptr_array_unref(c.texts);
}

static void test_top_level_scalars_and_garbage(void)
{
    g_autoptr(GPtrArray) got = split("3 \"str\" true} garbage{}", 1);
    const char *const want[] = {
        "3", "\"str\"", "true", "}", "garbage", "{}", NULL
    };

    assert_texts(got, want);
}

static void test_over_long_then_resync(void)
{
    g_autoptr(GString) input = g_string_new("{\"x\": \"");

    for (int i = 0; i < 200; i++) {
        g_string_append(input, "{[0123456789]}");
    }
    g_string_append(input, "\"}{\"ok\": 1}");
    g_autoptr(GPtrArray) got = split_with(input->str, 7, 1024, 64);
    const char *const want[] = {
        "ERROR: JSON parse error, message too long (limit 1024 bytes)",
        "{\"ok\": 1}",
        NULL
    };

    assert_texts(got, want);
}

static void test_too_deep_then_resync(void)
{
    g_autoptr(GString) input = g_string_new(NULL);

    for (int i = 0; i < 100; i++) {
        g_string_append(input, i % 2 ? "[" : "{\"a\":");
    }
    for (int i = 99; i >= 0; i--) {
        g_string_append(input, i % 2 ? "]" : "}");
    }
    g_string_append(input, "{\"ok\": 2}");
    g_autoptr(GPtrArray) got = split(input->str, 13);
    const char *const want[] = {
        "ERROR: JSON parse error, too deeply nested (limit 64 levels)",
        "{\"ok\": 2}",
        NULL
    };

    assert_texts(got, want);
}

static void test_depth_at_limit_passes(void)
{
    g_autoptr(GString) input = g_string_new(NULL);

    for (int i = 0; i < 4; i++) {
        g_string_append_c(input, '[');
    }
    for (int i = 0; i < 4; i++) {
        g_string_append_c(input, ']');
    }
    g_autoptr(GPtrArray) got = split_with(input->str, 1, 1024, 4);
    const char *const want[] = { "[[[[]]]]", NULL };

    assert_texts(got, want);
}

/*
 * A closer of the wrong kind ends the message at once, as in QEMU, so the
 * client gets its parse error instead of waiting for ever; the next
 * message is read normally.
 */
static void test_mismatched_closer_ends_message(void)
{
    const char *input = "{\"execute\": \"query-status\", "
                        "\"arguments\": {]\n"
                        "[1, 2}\n"
                        "{\"execute\": \"stop\"}";
    const char *const want[] = {
        "{\"execute\": \"query-status\", \"arguments\": {]",
        "[1, 2}",
        "{\"execute\": \"stop\"}",
        NULL
    };

    for (size_t chunk = 1; chunk <= strlen(input); chunk += 7) {
        g_autoptr(GPtrArray) got = split(input, chunk);
        assert_texts(got, want);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-stream/split/any-chunking",
                    test_two_messages_any_chunking);
    g_test_add_func("/json-stream/split/no-newline-needed",
                    test_no_newline_needed);
    g_test_add_func("/json-stream/split/strings-hide-structure",
                    test_strings_hide_structure);
    g_test_add_func("/json-stream/split/incomplete-is-held",
                    test_incomplete_is_held);
    g_test_add_func("/json-stream/split/top-level-scalars",
                    test_top_level_scalars_and_garbage);
    g_test_add_func("/json-stream/split/mismatched-closer-ends-message",
                    test_mismatched_closer_ends_message);
    g_test_add_func("/json-stream/limit/over-long-resyncs",
                    test_over_long_then_resync);
    g_test_add_func("/json-stream/limit/too-deep-resyncs",
                    test_too_deep_then_resync);
    g_test_add_func("/json-stream/limit/depth-at-limit-passes",
                    test_depth_at_limit_passes);
    return g_test_run();
}
