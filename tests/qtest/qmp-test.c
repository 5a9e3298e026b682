/*
 * QMP wire protocol: greeting, negotiation, QEMU's errors for every kind
 * of bad input, framing, limits, several clients and events.  After each
 * bad input the VM must still answer.
 */
#include "libqtest.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static QTestState *start_vm(void)
{
    g_autofree char *idle = qtest_guest_path("idle");

    /* -S: the tests drive the run state themselves. */
    if (qtest_guest_exists("idle")) {
        return qtest_initf("-m 32M -S -kernel %s", idle);
    }
    return qtest_init("-m 32M -S");
}

static void assert_still_answers(QTestState *qts)
{
    g_autofree char *status = qtest_query_status(qts);

    g_assert_nonnull(status);
    g_assert_cmpstr(status, !=, "");
}

static void test_greeting_shape(void)
{
    QTestState *qts = start_vm();
    JsonObject *greeting = qtest_greeting(qts);
    JsonObject *qmp = json_object_get_object_member(greeting, "QMP");
    JsonObject *version, *qemu;
    JsonNode *caps;

    g_assert_nonnull(qmp);
    version = json_object_get_object_member(qmp, "version");
    g_assert_nonnull(version);
    qemu = json_object_get_object_member(version, "qemu");
    g_assert_nonnull(qemu);
    for (const char *const *m = (const char *const[]){ "major", "minor",
                                                        "micro", NULL };
         *m; m++) {
        JsonNode *n = json_object_get_member(qemu, *m);
        g_assert_nonnull(n);
        g_assert_true(json_node_get_value_type(n) == G_TYPE_INT64);
    }
    g_assert_true(g_str_has_prefix(
        json_object_get_string_member(version, "package"), "snapvm"));
    caps = json_object_get_member(qmp, "capabilities");
    g_assert_nonnull(caps);
    g_assert_true(JSON_NODE_HOLDS_ARRAY(caps));
    qtest_quit(qts);
}

static void test_negotiation_required(void)
{
    QTestState *qts = start_vm();
    QTestState *late = qtest_client_new(qts, false);
    g_autoptr(JsonObject) r1 = NULL, r2 = NULL, r3 = NULL, r4 = NULL;
    g_autoptr(JsonNode) ok = NULL;

    r1 = qtest_qmp(late, "{\"execute\": \"query-status\"}");
    g_assert_cmpstr(qtest_reply_error_desc(r1, "CommandNotFound"), ==,
                    "Expecting capabilities negotiation with "
                    "'qmp_capabilities'");
    r2 = qtest_qmp(late, "{\"execute\": \"no-such-command\"}");
    g_assert_cmpstr(qtest_reply_error_desc(r2, "CommandNotFound"), ==,
                    "Expecting capabilities negotiation with "
                    "'qmp_capabilities'");
    ok = qtest_qmp_assert_success(late, "{\"execute\": \"qmp_capabilities\"}");
    g_assert_true(JSON_NODE_HOLDS_OBJECT(ok));
    g_assert_cmpuint(json_object_get_size(json_node_get_object(ok)), ==, 0);
    r3 = qtest_qmp(late, "{\"execute\": \"qmp_capabilities\"}");
    g_assert_cmpstr(qtest_reply_error_desc(r3, "CommandNotFound"), ==,
                    "Capabilities negotiation is already complete, command "
                    "ignored");
    assert_still_answers(late);
    r4 = qtest_qmp(qts, "{\"execute\": \"qmp_capabilities\","
                   " \"arguments\": {\"enable\": [\"oob\"]}}");
    qtest_reply_error_desc(r4, "CommandNotFound");
    qtest_quit(late);
    qtest_quit(qts);
}

static void test_id_is_echoed(void)
{
    QTestState *qts = start_vm();
    static const char *const ids[] = {
        "1", "\"abc\"", "{\"a\": [1, 2]}", "null", "-5.5",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autoptr(JsonObject) ok = NULL, err = NULL;
        g_autoptr(JsonParser) p = json_parser_new();
        g_autofree char *want = NULL, *got_ok = NULL, *got_err = NULL;

        g_assert_true(json_parser_load_from_data(p, ids[i], -1, NULL));
        want = json_to_string(json_parser_get_root(p), FALSE);
        ok = qtest_qmp(qts, "{\"execute\": \"query-status\", \"id\": %s}",
                       ids[i]);
        g_assert_true(json_object_has_member(ok, "return"));
        got_ok = json_to_string(json_object_get_member(ok, "id"), FALSE);
        g_assert_cmpstr(got_ok, ==, want);
        err = qtest_qmp(qts, "{\"id\": %s, \"execute\": \"nope\"}", ids[i]);
        qtest_reply_error_desc(err, "CommandNotFound");
        got_err = json_to_string(json_object_get_member(err, "id"), FALSE);
        g_assert_cmpstr(got_err, ==, want);
    }
    qtest_quit(qts);
}

typedef struct BadInput {
    const char *input;
    const char *cls;
    const char *desc;       /* exact, or a prefix when ending in "..." */
} BadInput;

static const BadInput bad_inputs[] = {
    { "{\"execute\": }", "GenericError", "JSON parse error, ..." },
    { "{\"execute\" \"stop\"}", "GenericError", "JSON parse error, ..." },
    { "[1, 2]", "GenericError", "QMP input must be a JSON object" },
    { "3", "GenericError", "QMP input must be a JSON object" },
    { "\"stop\"", "GenericError", "QMP input must be a JSON object" },
    { "{\"arguments\": {}}", "GenericError",
      "QMP input lacks member 'execute'" },
    { "{\"execute\": 1}", "GenericError",
      "QMP input member 'execute' must be a string" },
    { "{\"execute\": \"stop\", \"arguments\": []}", "GenericError",
      "QMP input member 'arguments' must be an object" },
    { "{\"execute\": \"stop\", \"foo\": 1}", "GenericError",
      "QMP input member 'foo' is unexpected" },
    { "{\"execute\": \"foo\"}", "CommandNotFound",
      "The command foo has not been found" },
    { "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 1}}",
      "GenericError", "Parameter 'filename' is missing" },
    { "{\"execute\": \"pmemsave\", \"arguments\":"
      " {\"val\": \"0\", \"size\": 1, \"filename\": \"/dev/null\"}}",
      "GenericError", "Invalid parameter type for 'val', expected: integer" },
    { "{\"execute\": \"pmemsave\", \"arguments\":"
      " {\"val\": 0, \"size\": 1.5, \"filename\": \"/dev/null\"}}",
      "GenericError", "Invalid parameter type for 'size', expected: integer" },
    { "{\"execute\": \"pmemsave\", \"arguments\":"
      " {\"val\": 0, \"size\": 1, \"filename\": [\"x\"]}}",
      "GenericError",
      "Invalid parameter type for 'filename', expected: string" },
    { "{\"execute\": \"pmemsave\", \"arguments\":"
      " {\"val\": 0, \"size\": 1, \"filename\": \"/dev/null\", \"bogus\": 1}}",
      "GenericError", "Parameter 'bogus' is unexpected" },
    { "{\"execute\": \"stop\", \"arguments\": {\"x\": 1}}", "GenericError",
      "Parameter 'x' is unexpected" },
    { "{\"execute\": \"human-monitor-command\", \"arguments\":"
      " {\"command-line\": true}}", "GenericError",
      "Invalid parameter type for 'command-line', expected: string" },
    { "{\"execute\": \"human-monitor-command\", \"arguments\":"
      " {\"command-line\": \"help\", \"cpu-index\": \"0\"}}", "GenericError",
      "Invalid parameter type for 'cpu-index', expected: integer" },
    { "{\"execute\": \"qmp_capabilities\", \"arguments\":"
      " {\"enable\": {}}}", "GenericError",
      "Invalid parameter type for 'enable', expected: array" },
};

static void assert_desc(const char *got, const char *want)
{
    if (g_str_has_suffix(want, "...")) {
        g_autofree char *prefix = g_strndup(want, strlen(want) - 3);
        g_assert_true(g_str_has_prefix(got, prefix));
    } else {
        g_assert_cmpstr(got, ==, want);
    }
}

static void test_bad_input_gets_qemu_errors(void)
{
    QTestState *qts = start_vm();

    for (size_t i = 0; i < G_N_ELEMENTS(bad_inputs); i++) {
        const BadInput *b = &bad_inputs[i];
        g_autoptr(JsonObject) reply = NULL;

        if (g_test_verbose()) {
            g_printerr("# sending %s\n", b->input);
        }
        qtest_qmp_send_raw(qts, b->input, strlen(b->input));
        qtest_qmp_send_raw(qts, "\n", 1);
        reply = qtest_qmp_receive(qts);
        assert_desc(qtest_reply_error_desc(reply, b->cls), b->desc);
        /* No id was given, so none may come back. */
        g_assert_false(json_object_has_member(reply, "id"));
        assert_still_answers(qts);
    }
    qtest_quit(qts);
}

static void test_framing_is_not_by_lines(void)
{
    QTestState *qts = start_vm();
    const char *msg = "{\"execute\": \"query-status\", \"id\": \"split\"}";
    const char *two = "{\"execute\":\"query-status\",\"id\":1}"
                      "{\"execute\":\"query-status\",\"id\":2}";
    g_autoptr(JsonObject) r = NULL, a = NULL, b = NULL;

    /* One message in many writes, no newline at all. */
    for (const char *p = msg; *p; p++) {
        qtest_qmp_send_raw(qts, p, 1);
        if ((p - msg) % 8 == 0) {
            g_usleep(1000);
        }
    }
    r = qtest_qmp_receive(qts);
    g_assert_cmpstr(json_object_get_string_member(r, "id"), ==, "split");

    /* Two messages in one write: two replies, in order. */
    qtest_qmp_send_raw(qts, two, strlen(two));
    a = qtest_qmp_receive(qts);
    b = qtest_qmp_receive(qts);
    g_assert_cmpint(json_object_get_int_member(a, "id"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(b, "id"), ==, 2);
    qtest_quit(qts);
}

static void test_over_long_message_resyncs(void)
{
    QTestState *qts = start_vm();
    g_autoptr(GString) big = g_string_new("{\"execute\": \"query-status\","
                                          " \"arguments\": {\"x\": \"");
    g_autoptr(JsonObject) reply = NULL, after = NULL;

    while (big->len < 2 * 1024 * 1024) {
        g_string_append(big, "0123456789abcdef{}[]");
    }
    g_string_append(big, "\"}}");
    qtest_qmp_send_raw(qts, big->str, big->len);
    reply = qtest_qmp_receive(qts);
    assert_desc(qtest_reply_error_desc(reply, "GenericError"),
                "JSON parse error, message too long...");
    /* Exactly one error: the rest of the big message was skipped. */
    after = qtest_qmp(qts, "{\"execute\": \"query-status\", \"id\": 7}");
    g_assert_true(json_object_has_member(after, "return"));
    g_assert_cmpint(json_object_get_int_member(after, "id"), ==, 7);
    qtest_quit(qts);
}

static void test_too_deep_message_resyncs(void)
{
    QTestState *qts = start_vm();
    g_autoptr(GString) deep = g_string_new("{\"execute\": \"query-status\","
                                           " \"arguments\": {\"x\": ");
    g_autoptr(JsonObject) reply = NULL, after = NULL;

    for (int i = 0; i < 200; i++) {
        g_string_append_c(deep, '[');
    }
    for (int i = 0; i < 200; i++) {
        g_string_append_c(deep, ']');
    }
    g_string_append(deep, "}}");
    qtest_qmp_send_raw(qts, deep->str, deep->len);
    reply = qtest_qmp_receive(qts);
    assert_desc(qtest_reply_error_desc(reply, "GenericError"),
                "JSON parse error, too deeply nested...");
    after = qtest_qmp(qts, "{\"execute\": \"query-status\", \"id\": 8}");
    g_assert_cmpint(json_object_get_int_member(after, "id"), ==, 8);
    qtest_quit(qts);
}

/*
 * Braces and brackets are counted apart, as QEMU does: a closer of the
 * wrong kind is answered with a parse error at once, not with silence.
 */
static void test_mismatched_closer_answers_at_once(void)
{
    QTestState *qts = start_vm();
    static const char bad[] = "{\"execute\": \"query-status\", "
                              "\"arguments\": {]\n";
    g_autoptr(JsonObject) reply = NULL, after = NULL;

    qtest_qmp_send_raw(qts, bad, strlen(bad));
    reply = qtest_qmp_receive_timeout(qts, 5000);
    g_assert_nonnull(reply);
    assert_desc(qtest_reply_error_desc(reply, "GenericError"),
                "JSON parse error, ...");
    after = qtest_qmp(qts, "{\"execute\": \"query-status\", \"id\": 9}");
    g_assert_cmpint(json_object_get_int_member(after, "id"), ==, 9);
    qtest_quit(qts);
}

static int connect_unix(const char *path)
{
    int fd = qtest_connect_unix(path);

    g_assert_cmpint(fd, >=, 0);
    return fd;
}

/* Everything @fd receives until the server closes it (or 5 s pass). */
static char *read_until_closed(int fd)
{
    GString *got = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char buf[512];

    while (g_get_monotonic_time() < deadline && poll(&pfd, 1, 100) >= 0) {
        ssize_t n;

        if (!(pfd.revents & (POLLIN | POLLHUP))) {
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        g_string_append_len(got, buf, n);
    }
    return g_string_free(got, FALSE);
}

/* The client past the limit is told why, then closed; the others go on. */
static void test_client_over_limit_is_told(void)
{
    QTestState *qts = start_vm();
    /* The test's own connection counts: 63 more reach the limit of 64. */
    QTestState *more[63];
    g_autofree char *said = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *err;
    bool served = false;
    int extra;

    for (guint i = 0; i < G_N_ELEMENTS(more); i++) {
        more[i] = qtest_client_new(qts, false);
    }
    extra = connect_unix(qtest_qmp_socket_path(qts));
    said = read_until_closed(extra);
    close(extra);
    g_assert_true(g_str_has_suffix(said, "\r\n"));
    g_assert_true(json_parser_load_from_data(parser, said, -1, NULL));
    err = json_object_get_object_member(
        json_node_get_object(json_parser_get_root(parser)), "error");
    g_assert_cmpstr(json_object_get_string_member(err, "class"), ==,
                    "GenericError");
    g_assert_cmpstr(json_object_get_string_member(err, "desc"), ==,
                    "too many monitor clients (limit 64), connection closed");

    /* A place freed is a place taken (once the server saw the close). */
    qtest_quit(more[0]);
    for (int tries = 0; tries < 50 && !served; tries++) {
        char buf[6] = "";
        struct pollfd pfd;

        g_usleep(20 * 1000);
        extra = connect_unix(qtest_qmp_socket_path(qts));
        pfd = (struct pollfd) { .fd = extra, .events = POLLIN };
        served = poll(&pfd, 1, 5000) == 1 && read(extra, buf, 5) == 5 &&
                 !strcmp(buf, "{\"QMP");
        close(extra);
    }
    g_assert_true(served);
    for (guint i = 1; i < G_N_ELEMENTS(more); i++) {
        qtest_quit(more[i]);
    }
    assert_still_answers(qts);
    qtest_quit(qts);
}

static JsonObject *schema_find(JsonArray *schema, const char *name)
{
    for (guint i = 0; i < json_array_get_length(schema); i++) {
        JsonObject *e = json_array_get_object_element(schema, i);
        if (!strcmp(json_object_get_string_member(e, "name"), name)) {
            return e;
        }
    }
    return NULL;
}

static bool json_array_has_string(JsonArray *array, const char *s)
{
    for (guint i = 0; i < json_array_get_length(array); i++) {
        if (!g_strcmp0(json_array_get_string_element(array, i), s)) {
            return true;
        }
    }
    return false;
}

/*
 * query-qmp-schema, generated from qapi/: every command snapvm runs is in
 * it with its arguments, and the enums hold what the commands take.
 */
static void test_query_qmp_schema(void)
{
    QTestState *qts = start_vm();
    g_autoptr(JsonNode) schema_node = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-qmp-schema\"}");
    g_autoptr(JsonNode) cmds_node = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-commands\"}");
    g_autoptr(JsonNode) caps_node = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-migrate-capabilities\"}");
    JsonArray *schema = json_node_get_array(schema_node);
    JsonArray *cmds = json_node_get_array(cmds_node);
    JsonArray *caps = json_node_get_array(caps_node);

    for (guint i = 0; i < json_array_get_length(cmds); i++) {
        const char *name = json_object_get_string_member(
            json_array_get_object_element(cmds, i), "name");
        JsonObject *e = schema_find(schema, name);

        g_assert_nonnull(e);
        g_assert_cmpstr(json_object_get_string_member(e, "meta-type"), ==,
                        "command");
        g_assert_nonnull(schema_find(
            schema, json_object_get_string_member(e, "arg-type")));
        g_assert_nonnull(schema_find(
            schema, json_object_get_string_member(e, "ret-type")));
    }

    /* migrate: uri (str) required, detach optional. */
    JsonObject *migrate = schema_find(schema, "migrate");
    JsonObject *args = schema_find(
        schema, json_object_get_string_member(migrate, "arg-type"));
    JsonArray *members = json_object_get_array_member(args, "members");
    JsonObject *uri = json_array_get_object_element(members, 0);
    JsonObject *detach = json_array_get_object_element(members, 1);
    g_assert_cmpstr(json_object_get_string_member(uri, "name"), ==, "uri");
    g_assert_cmpstr(json_object_get_string_member(uri, "type"), ==, "str");
    g_assert_false(json_object_has_member(uri, "default"));
    g_assert_cmpstr(json_object_get_string_member(detach, "name"), ==,
                    "detach");
    g_assert_true(json_object_has_member(detach, "default"));
    JsonObject *str = schema_find(schema, "str");
    g_assert_cmpstr(json_object_get_string_member(str, "meta-type"), ==,
                    "builtin");
    g_assert_cmpstr(json_object_get_string_member(str, "json-type"), ==,
                    "string");

    /* The capabilities the command lists are the enum's values. */
    JsonObject *cap_enum = schema_find(schema, "MigrationCapability");
    JsonArray *values = json_object_get_array_member(cap_enum, "values");
    g_assert_cmpuint(json_array_get_length(values), ==,
                     json_array_get_length(caps));
    for (guint i = 0; i < json_array_get_length(caps); i++) {
        g_assert_cmpstr(json_array_get_string_element(values, i), ==,
                        json_object_get_string_member(
                            json_array_get_object_element(caps, i),
                            "capability"));
    }

    /*
     * The x- parameters are enums, as they really are, not plain strings;
     * the values query-migrate-parameters reports are among theirs.
     */
    static const char *const x_params[][2] = {
        { "x-dirty-tracking", "DirtyTrackingMethod" },
        { "x-mapped-ram-restore", "MappedRamRestoreMode" },
        { "x-background-snapshot-method", "BackgroundSnapshotMethod" },
    };
    g_autoptr(JsonNode) params_node = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-migrate-parameters\"}");
    JsonObject *params = json_node_get_object(params_node);
    JsonObject *set_params = schema_find(schema, json_object_get_string_member(
        schema_find(schema, "migrate-set-parameters"), "arg-type"));
    JsonArray *set_members = json_object_get_array_member(set_params,
                                                          "members");

    for (size_t i = 0; i < G_N_ELEMENTS(x_params); i++) {
        JsonObject *type = schema_find(schema, x_params[i][1]);
        const char *now = json_object_get_string_member(params,
                                                        x_params[i][0]);
        bool declared = false;

        g_assert_nonnull(type);
        g_assert_cmpstr(json_object_get_string_member(type, "meta-type"), ==,
                        "enum");
        g_assert_true(json_array_has_string(
            json_object_get_array_member(type, "values"), now));
        for (guint m = 0; m < json_array_get_length(set_members); m++) {
            JsonObject *mem = json_array_get_object_element(set_members, m);
            if (!strcmp(json_object_get_string_member(mem, "name"),
                        x_params[i][0])) {
                g_assert_cmpstr(json_object_get_string_member(mem, "type"),
                                ==, x_params[i][1]);
                declared = true;
            }
        }
        g_assert_true(declared);
    }

    /* Events too. */
    JsonObject *pass = schema_find(schema, "MIGRATION_PASS");
    g_assert_nonnull(pass);
    g_assert_cmpstr(json_object_get_string_member(pass, "meta-type"), ==,
                    "event");
    qtest_quit(qts);
}

static void test_client_closing_mid_message(void)
{
    QTestState *qts = start_vm();
    static const char partial[] = "{\"execute\": \"query-st";

    for (int i = 0; i < 5; i++) {
        QTestState *c = qtest_client_new(qts, i % 2);
        qtest_qmp_send_raw(c, partial, strlen(partial));
        qtest_quit(c);
    }
    /* And one that goes away before reading its greeting. */
    {
        QTestState *c = qtest_client_new(qts, false);
        qtest_quit(c);
    }
    assert_still_answers(qts);
    qtest_quit(qts);
}

static void test_events_reach_every_client(void)
{
    QTestState *qts = start_vm();
    QTestState *second = qtest_client_new(qts, true);
    QTestState *unnegotiated = qtest_client_new(qts, false);
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL;

    /* Commands on either client; events on both. */
    r1 = qtest_qmp_assert_success(second, "{\"execute\": \"cont\"}");
    r2 = qtest_qmp_assert_success(qts, "{\"execute\": \"stop\"}");
    for (QTestState *c = qts; c; c = c == qts ? second : NULL) {
        g_autoptr(JsonObject) resume = qtest_qmp_eventwait(c, "RESUME",
                                                           10000);
        g_autoptr(JsonObject) stop = qtest_qmp_eventwait(c, "STOP", 10000);
        JsonObject *ts;

        g_assert_nonnull(resume);
        g_assert_nonnull(stop);
        ts = json_object_get_object_member(stop, "timestamp");
        g_assert_nonnull(ts);
        g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >,
                        1600000000);
        g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <,
                        1000000);
    }
    /* Before negotiation a client gets no events. */
    g_assert_null(qtest_qmp_receive_timeout(unnegotiated, 300));
    g_assert_null(qtest_qmp_eventwait(unnegotiated, "STOP", 100));
    qtest_quit(unnegotiated);
    qtest_quit(second);
    qtest_quit(qts);
}

static void test_socket_is_private(void)
{
    QTestState *qts = start_vm();
    struct stat st;

    g_assert_cmpint(stat(qtest_qmp_socket_path(qts), &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    qtest_quit(qts);
}

static void test_query_commands_lists_monitor_commands(void)
{
    QTestState *qts = start_vm();
    g_autoptr(JsonNode) ret =
        qtest_qmp_assert_success(qts, "{\"execute\": \"query-commands\"}");
    JsonArray *list = json_node_get_array(ret);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *info = json_array_get_object_element(list, i);
        g_hash_table_add(names,
                         (char *)json_object_get_string_member(info, "name"));
    }
    g_assert_true(g_hash_table_contains(names, "qmp_capabilities"));
    g_assert_true(g_hash_table_contains(names, "query-commands"));
    g_assert_true(g_hash_table_contains(names, "human-monitor-command"));
    g_assert_true(g_hash_table_contains(names, "query-status"));
    qtest_quit(qts);
}

/*
 * A client that sends but never reads must be dropped once its unsent
 * replies pass the monitor's bound, and must not slow the others down.
 */
static void test_stuck_client_is_dropped(void)
{
    QTestState *qts = start_vm();
    QTestState *stuck = qtest_client_new(qts, true);
    static const char cmd[] = "{\"execute\": \"human-monitor-command\","
                              " \"arguments\": {\"command-line\": \"help\"}}";
    g_autoptr(GString) batch = g_string_new(NULL);
    gint64 deadline;

    for (int i = 0; i < 1000; i++) {
        g_string_append(batch, cmd);
    }
    /*
     * Every batch adds a few hundred KiB of replies at least; keep sending
     * until the server hangs up, which it must do well before the end.
     */
    for (int i = 0; i < 500 && !qtest_connection_closed(stuck); i++) {
        qtest_qmp_send_raw(stuck, batch->str, batch->len);
        if (i % 16 == 0) {
            assert_still_answers(qts);
        }
    }
    /* Draining what the kernel held shows the server closed it. */
    deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (!qtest_connection_closed(stuck) &&
           g_get_monotonic_time() < deadline) {
        g_autoptr(JsonObject) r = qtest_qmp_receive_timeout(stuck, 1000);
    }
    g_assert_true(qtest_connection_closed(stuck));
    qtest_quit(stuck);
    assert_still_answers(qts);
    qtest_quit(qts);
}

static void test_qmp_on_stdio(void)
{
    g_autofree char *out = NULL, *err = NULL;
    int code = qtest_run_with_input(
        "-m 32M -S -serial none -qmp stdio",
        "{\"execute\": \"query-status\", \"id\": 0}"
        "{\"execute\": \"qmp_capabilities\"}\n"
        "{\"execute\": \"query-status\", \"id\": 1}"
        "{\"execute\": \"quit\", \"id\": 2}",
        30000, &out, &err);
    g_auto(GStrv) lines = g_strsplit(out, "\r\n", -1);

    g_assert_cmpint(code, ==, 0);
    g_assert_cmpuint(g_strv_length(lines), >=, 5);
    g_assert_true(g_str_has_prefix(lines[0], "{\"QMP\":"));
    g_assert_nonnull(strstr(lines[1], "Expecting capabilities negotiation"));
    g_assert_cmpstr(lines[2], ==, "{\"return\":{}}");
    g_assert_nonnull(strstr(lines[3], "\"status\":\"prelaunch\""));
    g_assert_nonnull(strstr(out, "{\"return\":{},\"id\":2}\r\n"));
}

static void test_bad_monitor_options(void)
{
    static const char *const specs[] = {
        "-qmp tcp:127.0.0.1:4444",
        "-qmp unix:/nonexistent-dir/qmp.sock,server=on,wait=off",
        "-qmp unix:/tmp/x.sock,wait=off",
        "-qmp unix:/tmp/x.sock,server=maybe",
        "-monitor unix:,server=on",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++) {
        g_autofree char *args = g_strdup_printf("-m 32M -S %s", specs[i]);
        g_autofree char *err = NULL;
        int code = qtest_run(args, 30000, NULL, &err);

        g_assert_cmpint(code, ==, 1);
        /* One line, naming the option. */
        g_assert_nonnull(strstr(err, specs[i][1] == 'q' ? "-qmp"
                                                        : "-monitor"));
        g_assert_cmpint(strchr(err, '\n') - err, ==, (int)strlen(err) - 1);
    }
}

/* ---- getfd / closefd: descriptors passed with SCM_RIGHTS ---- */

#define GETFD(name) \
    "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"" name "\"}}"
#define CLOSEFD(name) \
    "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"" name "\"}}"

typedef struct TestPipe {
    int rd, wr;
} TestPipe;

static TestPipe test_pipe_new(void)
{
    int p[2];

    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    return (TestPipe){ .rd = p[0], .wr = p[1] };
}

/*
 * Whether every write end is closed.  The tests send a pipe's write end
 * and close their own copy, so this turns true exactly when snapvm has
 * closed the one it received.
 */
static bool pipe_writers_gone(int rd)
{
    struct pollfd pfd = { .fd = rd, .events = POLLIN };

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

static JsonObject *qmp_with_fd_then_close(QTestState *qts, int fd,
                                          const char *cmd)
{
    JsonObject *reply = qtest_qmp_fds(qts, &fd, 1, "%s", cmd);

    close(fd);
    return reply;
}

/*
 * snapvm's descriptor for the pipe of our @fd, or -1.  Both ends of a pipe
 * read back as the same "pipe:[inode]" in /proc.
 */
static int snapvm_fd_for(QTestState *qts, int fd)
{
    g_autofree char *self = g_strdup_printf("/proc/self/fd/%d", fd);
    g_autofree char *want = g_file_read_link(self, NULL);
    g_autofree char *dir_path = g_strdup_printf("/proc/%d/fd",
                                                (int)qtest_pid(qts));
    GDir *dir = g_dir_open(dir_path, 0, NULL);
    const char *name;
    int found = -1;

    g_assert_nonnull(want);
    g_assert_nonnull(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(dir_path, name, NULL);
        g_autofree char *target = g_file_read_link(path, NULL);
        if (target && !strcmp(target, want)) {
            found = atoi(name);
        }
    }
    g_dir_close(dir);
    return found;
}

static bool snapvm_fd_is_cloexec(QTestState *qts, int fd)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/fdinfo/%d",
                                            (int)qtest_pid(qts), fd);
    g_autofree char *info = NULL;
    const char *flags;

    g_assert_true(g_file_get_contents(path, &info, NULL, NULL));
    flags = strstr(info, "flags:");
    g_assert_nonnull(flags);
    return g_ascii_strtoull(flags + strlen("flags:"), NULL, 8) & O_CLOEXEC;
}

/* Taken after a reply, so that nothing is half opened. */
static int settled_fd_count(QTestState *qts)
{
    assert_still_answers(qts);
    return qtest_open_fd_count(qts);
}

static void test_getfd_without_descriptor(void)
{
    QTestState *qts = start_vm();
    g_autoptr(JsonObject) r1 = qtest_qmp(qts, GETFD("a"));
    g_autoptr(JsonObject) r2 = qtest_qmp(qts, CLOSEFD("a"));

    g_assert_cmpstr(qtest_reply_error_desc(r1, "GenericError"), ==,
                    "No file descriptor supplied via SCM_RIGHTS");
    /* Nothing was stored under the name. */
    g_assert_nonnull(strstr(qtest_reply_error_desc(r2, "GenericError"),
                            "'a' not found"));
    qtest_quit(qts);
}

static void test_getfd_then_closefd(void)
{
    QTestState *qts = start_vm();
    int base = settled_fd_count(qts);
    TestPipe p = test_pipe_new();
    g_autoptr(JsonObject) r1 = qmp_with_fd_then_close(qts, p.wr, GETFD("a"));
    int held = snapvm_fd_for(qts, p.rd);

    g_assert_true(json_object_has_member(r1, "return"));
    g_assert_cmpint(held, >=, 0);
    g_assert_false(pipe_writers_gone(p.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base + 1);
    /* Its copy must not leak into what it spawns (exec:). */
    g_assert_true(snapvm_fd_is_cloexec(qts, held));

    json_node_unref(qtest_qmp_assert_success(qts, CLOSEFD("a")));
    g_assert_true(pipe_writers_gone(p.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);
    /* Once closed, the name is gone. */
    g_autoptr(JsonObject) r2 = qtest_qmp(qts, CLOSEFD("a"));
    qtest_reply_error_desc(r2, "GenericError");
    close(p.rd);
    qtest_quit(qts);
}

/* As in QEMU, getfd of a name in use closes the descriptor it held. */
static void test_getfd_same_name_replaces(void)
{
    QTestState *qts = start_vm();
    int base = settled_fd_count(qts);
    TestPipe p1 = test_pipe_new(), p2 = test_pipe_new();
    g_autoptr(JsonObject) r1 = qmp_with_fd_then_close(qts, p1.wr, GETFD("a"));
    g_autoptr(JsonObject) r2 = qmp_with_fd_then_close(qts, p2.wr, GETFD("a"));

    g_assert_true(json_object_has_member(r1, "return"));
    g_assert_true(json_object_has_member(r2, "return"));
    g_assert_true(pipe_writers_gone(p1.rd));
    g_assert_false(pipe_writers_gone(p2.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base + 1);
    json_node_unref(qtest_qmp_assert_success(qts, CLOSEFD("a")));
    g_assert_true(pipe_writers_gone(p2.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);
    close(p1.rd);
    close(p2.rd);
    qtest_quit(qts);
}

/*
 * A descriptor sent with a command that does not want it is closed once
 * the next command goes past it; one sent ahead of getfd on its own (with
 * a single space, as qemu.qmp does) or with the first half of a getfd
 * split over two writes is still there for it.
 */
static void test_getfd_unclaimed_and_early_descriptors(void)
{
    QTestState *qts = start_vm();
    int base = settled_fd_count(qts);
    TestPipe p1 = test_pipe_new(), p2 = test_pipe_new();
    TestPipe p3 = test_pipe_new();
    const char *cut = strstr(GETFD("c"), "\"arguments\"");
    g_autoptr(JsonObject) r1 = qmp_with_fd_then_close(
        qts, p1.wr, "{\"execute\": \"query-status\"}");

    g_assert_true(json_object_has_member(r1, "return"));
    assert_still_answers(qts);
    /* This reply proves that the read which went past p1 is finished. */
    assert_still_answers(qts);
    g_assert_true(pipe_writers_gone(p1.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);

    qtest_qmp_send_raw_fds(qts, &p2.wr, 1, " ", 1);
    close(p2.wr);
    json_node_unref(qtest_qmp_assert_success(qts, GETFD("b")));

    qtest_qmp_send_raw_fds(qts, &p3.wr, 1, GETFD("c"), cut - GETFD("c"));
    close(p3.wr);
    qtest_qmp_send_raw(qts, cut, strlen(cut));
    g_autoptr(JsonObject) r3 = qtest_qmp_receive(qts);
    g_assert_true(json_object_has_member(r3, "return"));

    assert_still_answers(qts);
    g_assert_false(pipe_writers_gone(p2.rd));
    g_assert_false(pipe_writers_gone(p3.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base + 2);
    json_node_unref(qtest_qmp_assert_success(qts, CLOSEFD("b")));
    json_node_unref(qtest_qmp_assert_success(qts, CLOSEFD("c")));
    g_assert_true(pipe_writers_gone(p2.rd));
    g_assert_true(pipe_writers_gone(p3.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);
    close(p1.rd);
    close(p2.rd);
    close(p3.rd);
    qtest_quit(qts);
}

/*
 * More descriptors in one message than the session keeps, and a client
 * that leaves with descriptors unclaimed: none of them stays open.
 */
static void test_getfd_flood_and_disconnect_leak_nothing(void)
{
    QTestState *qts = start_vm();
    int base = settled_fd_count(qts);
    TestPipe p = test_pipe_new();
    int many[QTEST_MAX_FDS];
    QTestState *c;

    for (int i = 0; i < QTEST_MAX_FDS; i++) {
        many[i] = p.wr;
    }
    g_autoptr(JsonObject) r1 = qtest_qmp_fds(qts, many, QTEST_MAX_FDS,
                                             GETFD("a"));
    g_assert_true(json_object_has_member(r1, "return"));
    assert_still_answers(qts);
    assert_still_answers(qts);
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base + 1);
    json_node_unref(qtest_qmp_assert_success(qts, CLOSEFD("a")));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);

    c = qtest_client_new(qts, true);
    qtest_qmp_send_raw_fds(c, many, 4, " ", 1);
    close(p.wr);
    /* Wait until snapvm holds them: its session, not the kernel, has them. */
    for (int i = 0; i < 2000 && qtest_open_fd_count(qts) != base + 5; i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base + 5);
    qtest_quit(c);
    /*
     * The session is freed from an idle callback after the hang-up is
     * seen; a generous bound only keeps a bug from hanging the test.
     */
    for (int i = 0; i < 2000 && !pipe_writers_gone(p.rd); i++) {
        assert_still_answers(qts);
        g_usleep(10 * 1000);
    }
    g_assert_true(pipe_writers_gone(p.rd));
    g_assert_cmpint(qtest_open_fd_count(qts), ==, base);
    close(p.rd);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/greeting/shape", test_greeting_shape);
    g_test_add_func("/qmp/negotiation/required-first",
                    test_negotiation_required);
    g_test_add_func("/qmp/id/echoed-in-return-and-error", test_id_is_echoed);
    g_test_add_func("/qmp/bad-input/qemu-errors-then-still-answers",
                    test_bad_input_gets_qemu_errors);
    g_test_add_func("/qmp/framing/not-by-lines", test_framing_is_not_by_lines);
    g_test_add_func("/qmp/limits/over-long-message-resyncs",
                    test_over_long_message_resyncs);
    g_test_add_func("/qmp/limits/too-deep-message-resyncs",
                    test_too_deep_message_resyncs);
    g_test_add_func("/qmp/framing/mismatched-closer-answers-at-once",
                    test_mismatched_closer_answers_at_once);
    g_test_add_func("/qmp/clients/over-limit-is-told",
                    test_client_over_limit_is_told);
    g_test_add_func("/qmp/query-qmp-schema/every-command-and-enum",
                    test_query_qmp_schema);
    g_test_add_func("/qmp/clients/close-mid-message",
                    test_client_closing_mid_message);
    g_test_add_func("/qmp/clients/events-reach-every-client",
                    test_events_reach_every_client);
    g_test_add_func("/qmp/clients/stuck-client-is-dropped",
                    test_stuck_client_is_dropped);
    g_test_add_func("/qmp/socket/mode-0600", test_socket_is_private);
    g_test_add_func("/qmp/transport/stdio", test_qmp_on_stdio);
    g_test_add_func("/qmp/transport/bad-options-exit-1",
                    test_bad_monitor_options);
    g_test_add_func("/qmp/query-commands/lists-monitor-commands",
                    test_query_commands_lists_monitor_commands);
    g_test_add_func("/qmp/getfd/without-descriptor-fails",
                    test_getfd_without_descriptor);
    g_test_add_func("/qmp/getfd/closefd-releases", test_getfd_then_closefd);
    g_test_add_func("/qmp/getfd/same-name-replaces",
                    test_getfd_same_name_replaces);
    g_test_add_func("/qmp/getfd/unclaimed-and-early-descriptors",
                    test_getfd_unclaimed_and_early_descriptors);
    g_test_add_func("/qmp/getfd/flood-and-disconnect-leak-nothing",
                    test_getfd_flood_and_disconnect_leak_nothing);
    return g_test_run();
}
