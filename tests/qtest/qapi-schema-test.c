/*
 * The QAPI schema is the contract: every command the binary registers is
 * declared in the qapi/ schema and vice versa, every event the sources raise is
 * declared, and every definition carries a doc comment that names it and
 * describes its members.
 *
 * The schema is QAPI's JSON dialect: single-quoted strings (json-glib
 * reads them) and '#' comments, with "##" lines around doc comments.
 */
#include "libqtest.h"

#include <string.h>

typedef struct SchemaExpr {
    char *file;
    JsonObject *expr;
    char *doc;          /* the doc block right before it, or NULL */
} SchemaExpr;

typedef struct Schema {
    GPtrArray *exprs;   /* SchemaExpr * */
    GPtrArray *files;   /* included files already read */
} Schema;

static const char *qapi_dir(void)
{
    const char *dir = g_getenv("SNAPVM_QAPI_DIR");

    return dir && *dir ? dir : "../qapi";
}

static void schema_expr_free(gpointer p)
{
    SchemaExpr *e = p;

    g_free(e->file);
    json_object_unref(e->expr);
    g_free(e->doc);
    g_free(e);
}

/* Update @depth and @in_str over @line; returns @line cut at a comment. */
static char *strip_comment_and_count(const char *line, int *depth,
                                     char *in_str)
{
    GString *out = g_string_new(NULL);

    for (const char *p = line; *p; p++) {
        if (*in_str) {
            if (*p == '\\' && p[1]) {
                g_string_append_c(out, *p++);
            } else if (*p == *in_str) {
                *in_str = 0;
            }
        } else if (*p == '#') {
            break;
        } else if (*p == '\'' || *p == '"') {
            *in_str = *p;
        } else if (*p == '{' || *p == '[') {
            (*depth)++;
        } else if (*p == '}' || *p == ']') {
            (*depth)--;
        }
        g_string_append_c(out, *p);
    }
    return g_string_free(out, FALSE);
}

static void schema_read_file(Schema *s, const char *name);

static void schema_add_expr(Schema *s, const char *file, const char *text,
                            char *doc)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    JsonNode *root;
    SchemaExpr *e;

    if (!json_parser_load_from_data(parser, text, -1, &err)) {
        g_error("%s: cannot parse %s: %s", file, text, err->message);
    }
    root = json_parser_get_root(parser);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
    if (json_object_has_member(json_node_get_object(root), "include")) {
        schema_read_file(s, json_object_get_string_member(
                                json_node_get_object(root), "include"));
        g_free(doc);
        return;
    }
    e = g_new0(SchemaExpr, 1);
    e->file = g_strdup(file);
    e->expr = json_object_ref(json_node_get_object(root));
    e->doc = doc;
    g_ptr_array_add(s->exprs, e);
}

static void schema_read_file(Schema *s, const char *name)
{
    g_autofree char *path = g_build_filename(qapi_dir(), name, NULL);
    g_autofree char *contents = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GString) expr = g_string_new(NULL);
    g_autoptr(GString) doc = NULL;
    char *pending_doc = NULL;
    int depth = 0;
    char in_str = 0;

    for (guint i = 0; i < s->files->len; i++) {
        if (!strcmp(g_ptr_array_index(s->files, i), name)) {
            return;
        }
    }
    g_ptr_array_add(s->files, g_strdup(name));
    if (!g_file_get_contents(path, &contents, NULL, &err)) {
        g_error("cannot read schema file %s: %s", path, err->message);
    }
    lines = g_strsplit(contents, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_autofree char *trimmed = g_strstrip(g_strdup(*l));

        if (depth == 0 && trimmed[0] == '#') {
            if (!strcmp(trimmed, "##")) {
                if (doc) {
                    g_free(pending_doc);
                    pending_doc = g_string_free(g_steal_pointer(&doc), FALSE);
                } else {
                    doc = g_string_new(NULL);
                }
            } else if (doc) {
                g_string_append_printf(doc, "%s\n", trimmed);
            }
            continue;
        }
        if (depth == 0 && !*trimmed) {
            continue;
        }
        g_autofree char *code = strip_comment_and_count(*l, &depth, &in_str);
        g_string_append_printf(expr, "%s\n", code);
        if (depth == 0) {
            schema_add_expr(s, name, expr->str, g_steal_pointer(&pending_doc));
            g_string_truncate(expr, 0);
        }
    }
    g_assert_cmpint(depth, ==, 0);
    g_assert_null(doc);
    g_free(pending_doc);
}

static Schema *schema_load(void)
{
    Schema *s = g_new0(Schema, 1);

    s->exprs = g_ptr_array_new_with_free_func(schema_expr_free);
    s->files = g_ptr_array_new_with_free_func(g_free);
    schema_read_file(s, "qapi-schema.json");
    return s;
}

static void schema_free(Schema *s)
{
    g_ptr_array_unref(s->exprs);
    g_ptr_array_unref(s->files);
    g_free(s);
}

static const char *const meta_kinds[] = {
    "command", "event", "struct", "enum", "union", "alternate", NULL
};

static const char *expr_kind(JsonObject *expr, const char **name)
{
    for (const char *const *k = meta_kinds; *k; k++) {
        if (json_object_has_member(expr, *k)) {
            *name = json_object_get_string_member(expr, *k);
            return *k;
        }
    }
    *name = NULL;
    return NULL;
}

static GHashTable *schema_names(Schema *s, const char *kind)
{
    GHashTable *names = g_hash_table_new_full(g_str_hash, g_str_equal,
                                              g_free, NULL);

    for (guint i = 0; i < s->exprs->len; i++) {
        SchemaExpr *e = g_ptr_array_index(s->exprs, i);
        const char *name;

        if (!g_strcmp0(expr_kind(e->expr, &name), kind)) {
            g_hash_table_add(names, g_strdup(name));
        }
    }
    return names;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in @a missing from @b, sorted and comma-separated ("" if none). */
static char *missing_names(GHashTable *a, GHashTable *b)
{
    g_autoptr(GPtrArray) missing = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, a);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_hash_table_contains(b, key)) {
            g_ptr_array_add(missing, key);
        }
    }
    g_ptr_array_sort(missing, compare_names);
    g_ptr_array_add(missing, NULL);
    return g_strjoinv(", ", (char **)missing->pdata);
}

static void test_schema_parses(void)
{
    Schema *s = schema_load();
    g_autoptr(GHashTable) commands = schema_names(s, "command");
    g_autoptr(GHashTable) events = schema_names(s, "event");

    for (guint i = 0; i < s->exprs->len; i++) {
        SchemaExpr *e = g_ptr_array_index(s->exprs, i);
        const char *name;

        if (!expr_kind(e->expr, &name)) {
            g_error("%s: an expression that defines nothing", e->file);
        }
    }
    g_assert_true(g_hash_table_contains(commands, "qmp_capabilities"));
    g_assert_true(g_hash_table_contains(commands, "human-monitor-command"));
    g_assert_true(g_hash_table_contains(events, "STOP"));
    g_assert_cmpuint(s->files->len, >=, 5);
    schema_free(s);
}

/* Member names of 'data' (object form), without the optional '*'. */
static GPtrArray *data_members(JsonObject *expr)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    JsonNode *data = json_object_get_member(expr, "data");

    if (data && JSON_NODE_HOLDS_OBJECT(data)) {
        g_autoptr(GList) members =
            json_object_get_members(json_node_get_object(data));
        for (GList *l = members; l; l = l->next) {
            const char *m = l->data;
            g_ptr_array_add(out, g_strdup(m[0] == '*' ? m + 1 : m));
        }
    } else if (data && JSON_NODE_HOLDS_ARRAY(data)) {
        JsonArray *values = json_node_get_array(data);
        for (guint i = 0; i < json_array_get_length(values); i++) {
            JsonNode *v = json_array_get_element(values, i);
            const char *name = JSON_NODE_HOLDS_OBJECT(v)
                ? json_object_get_string_member(json_node_get_object(v),
                                                "name")
                : json_node_get_string(v);
            g_ptr_array_add(out, g_strdup(name));
        }
    }
    return out;
}

static void test_every_definition_documented(void)
{
    Schema *s = schema_load();
    g_autoptr(GString) problems = g_string_new(NULL);

    for (guint i = 0; i < s->exprs->len; i++) {
        SchemaExpr *e = g_ptr_array_index(s->exprs, i);
        const char *name;
        const char *kind = expr_kind(e->expr, &name);
        g_autofree char *heading = g_strdup_printf("# @%s:\n", name);
        g_autoptr(GPtrArray) members = data_members(e->expr);

        if (!e->doc || !g_str_has_prefix(e->doc, heading)) {
            g_string_append_printf(problems, "%s: %s %s has no doc comment"
                                   " starting with '@%s:'\n", e->file, kind,
                                   name, name);
            continue;
        }
        for (guint m = 0; m < members->len; m++) {
            g_autofree char *line = g_strdup_printf(
                "\n# @%s:", (char *)g_ptr_array_index(members, m));
            if (!strstr(e->doc, line)) {
                g_string_append_printf(problems, "%s: %s %s does not"
                                       " describe member '%s'\n", e->file,
                                       kind, name,
                                       (char *)g_ptr_array_index(members, m));
            }
        }
        if (!strstr(e->doc, "\n# Since: ")) {
            g_string_append_printf(problems, "%s: %s %s lacks 'Since:'\n",
                                   e->file, kind, name);
        }
        if ((!strcmp(kind, "command") || !strcmp(kind, "event")) &&
            !strstr(e->doc, "\n# Example")) {
            g_string_append_printf(problems, "%s: %s %s lacks an example\n",
                                   e->file, kind, name);
        }
        if (!strcmp(kind, "command") &&
            json_object_has_member(e->expr, "returns") &&
            !strstr(e->doc, "\n# Returns: ")) {
            g_string_append_printf(problems, "%s: command %s lacks"
                                   " 'Returns:'\n", e->file, name);
        }
    }
    if (problems->len) {
        g_printerr("%s", problems->str);
    }
    g_assert_cmpstr(problems->str, ==, "");
    schema_free(s);
}

static void test_commands_match_binary(void)
{
    Schema *s = schema_load();
    g_autoptr(GHashTable) declared = schema_names(s, "command");
    g_autoptr(GHashTable) registered = g_hash_table_new_full(g_str_hash,
                                                             g_str_equal,
                                                             g_free, NULL);
    g_autofree char *idle = qtest_guest_path("idle");
    QTestState *qts = qtest_guest_exists("idle")
        ? qtest_initf("-m 32M -S -kernel %s", idle)
        : qtest_init("-m 32M -S");
    g_autoptr(JsonNode) ret =
        qtest_qmp_assert_success(qts, "{\"execute\": \"query-commands\"}");
    JsonArray *list = json_node_get_array(ret);
    g_autofree char *undeclared = NULL;
    g_autofree char *unregistered = NULL;

    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *info = json_array_get_object_element(list, i);
        g_hash_table_add(registered, g_strdup(
                             json_object_get_string_member(info, "name")));
    }
    qtest_quit(qts);

    undeclared = missing_names(registered, declared);
    unregistered = missing_names(declared, registered);
    if (*undeclared || *unregistered) {
        g_printerr("registered but not in the schema: %s\n"
                   "in the schema but not registered: %s\n",
                   undeclared, unregistered);
    }
    g_assert_cmpstr(undeclared, ==, "");
    g_assert_cmpstr(unregistered, ==, "");
    schema_free(s);
}

/* qapi_event_send("NAME" in every .c file under @dir, recursively. */
static void collect_sent_events(const char *dir, GHashTable *events)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *entry;

    if (!d) {
        return;
    }
    while ((entry = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, entry, NULL);
        g_autofree char *text = NULL;

        if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
            collect_sent_events(path, events);
            continue;
        }
        if (!g_str_has_suffix(entry, ".c") ||
            !g_file_get_contents(path, &text, NULL, NULL)) {
            continue;
        }
        for (char *p = strstr(text, "qapi_event_send(\""); p;
             p = strstr(p + 1, "qapi_event_send(\"")) {
            char *start = p + strlen("qapi_event_send(\"");
            char *end = strchr(start, '"');
            if (end) {
                g_hash_table_add(events, g_strndup(start, end - start));
            }
        }
    }
    g_dir_close(d);
}

static void test_events_sent_are_declared(void)
{
    static const char *const src_dirs[] = {
        "system", "hw", "accel", "migration", "monitor", "util", NULL
    };
    Schema *s = schema_load();
    g_autoptr(GHashTable) declared = schema_names(s, "event");
    g_autoptr(GHashTable) sent = g_hash_table_new_full(g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
    g_autofree char *root = g_path_get_dirname(qapi_dir());
    g_autofree char *undeclared = NULL;

    for (const char *const *d = src_dirs; *d; d++) {
        g_autofree char *path = g_build_filename(root, *d, NULL);
        collect_sent_events(path, sent);
    }
    g_assert_true(g_hash_table_contains(sent, "STOP"));
    undeclared = missing_names(sent, declared);
    g_assert_cmpstr(undeclared, ==, "");
    schema_free(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi-schema/parses-with-includes", test_schema_parses);
    g_test_add_func("/qapi-schema/every-definition-documented",
                    test_every_definition_documented);
    g_test_add_func("/qapi-schema/commands-match-binary",
                    test_commands_match_binary);
    g_test_add_func("/qapi-schema/events-sent-are-declared",
                    test_events_sent_are_declared);
    return g_test_run();
}
