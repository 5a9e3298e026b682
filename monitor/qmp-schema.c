/*
 * The QAPI schema at run time: query-qmp-schema's answer, generated from
 * the qapi/ schema at build time (scripts/qapi-introspect.py), and the check
 * that the hand-written command argument tables and name tables say what
 * the schema says.  The schema is the contract; the check runs as part of
 * the build (qapi-schema-check, system/qapi-schema-check.c), so a table
 * that disagrees fails the build with the difference.
 */
#include "qemu/osdep.h"
#include "monitor/qmp-schema.h"

extern const char qmp_schema_json[];

static JsonNode *schema_root;
static GHashTable *schema_by_name;  /* name -> JsonObject (SchemaInfo) */

static void schema_load(void)
{
    g_autoptr(JsonParser) parser = NULL;
    g_autoptr(GError) gerr = NULL;
    JsonArray *list;

    if (schema_root) {
        return;
    }
    parser = json_parser_new();
    if (!json_parser_load_from_data(parser, qmp_schema_json, -1, &gerr)) {
        g_error("generated QMP schema does not parse: %s", gerr->message);
    }
    schema_root = json_node_copy(json_parser_get_root(parser));
    schema_by_name = g_hash_table_new(g_str_hash, g_str_equal);
    list = json_node_get_array(schema_root);
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *info = json_array_get_object_element(list, i);
        g_hash_table_insert(schema_by_name,
                            (gpointer)json_object_get_string_member(info,
                                                                    "name"),
                            info);
    }
}

JsonNode *qmp_schema_to_node(void)
{
    schema_load();
    return json_node_copy(schema_root);
}

static JsonObject *schema_lookup(const char *name, const char *meta)
{
    JsonObject *info;

    schema_load();
    info = g_hash_table_lookup(schema_by_name, name);
    if (info && meta &&
        strcmp(json_object_get_string_member(info, "meta-type"), meta)) {
        return NULL;
    }
    return info;
}

GStrv qmp_schema_enum_values(const char *name)
{
    JsonObject *info = schema_lookup(name, "enum");
    GStrvBuilder *b = g_strv_builder_new();

    if (info) {
        JsonArray *v = json_object_get_array_member(info, "values");
        for (guint i = 0; i < json_array_get_length(v); i++) {
            g_strv_builder_add(b, json_array_get_string_element(v, i));
        }
    }
    GStrv out = g_strv_builder_end(b);
    g_strv_builder_unref(b);
    return info ? out : (g_strfreev(out), NULL);
}

/* What the dispatcher checks for a member of schema type @type. */
static bool schema_arg_type(const char *type, QmpArgType *out)
{
    JsonObject *info = schema_lookup(type, NULL);
    const char *meta = info ? json_object_get_string_member(info,
                                                            "meta-type")
                            : "";

    if (!strcmp(meta, "builtin")) {
        const char *json = json_object_get_string_member(info, "json-type");
        static const struct { const char *json; QmpArgType t; } map[] = {
            { "string", QMP_ARG_STR }, { "int", QMP_ARG_INT },
            { "boolean", QMP_ARG_BOOL }, { "number", QMP_ARG_NUMBER },
            { "value", QMP_ARG_ANY },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(map); i++) {
            if (!strcmp(map[i].json, json)) {
                *out = map[i].t;
                return true;
            }
        }
        return false;
    }
    if (!strcmp(meta, "enum")) {
        *out = QMP_ARG_STR;
    } else if (!strcmp(meta, "array")) {
        *out = QMP_ARG_ARRAY;
    } else if (!strcmp(meta, "object")) {
        *out = QMP_ARG_OBJECT;
    } else {
        return false;
    }
    return true;
}

bool qmp_schema_check_args(const char *command, const QmpArgSpec *args,
                           Error **errp)
{
    JsonObject *cmd = schema_lookup(command, "command");
    JsonObject *arg_type;
    JsonArray *members;
    guint nargs = 0;

    if (!cmd) {
        error_setg(errp, "QMP command '%s' is not in qapi/*.json", command);
        return false;
    }
    arg_type = schema_lookup(json_object_get_string_member(cmd, "arg-type"),
                             "object");
    members = json_object_get_array_member(arg_type, "members");
    for (const QmpArgSpec *a = args; a && a->name; a++) {
        nargs++;
    }
    if (nargs != json_array_get_length(members)) {
        error_setg(errp, "QMP command '%s' takes %u arguments, qapi/*.json "
                   "declares %u", command, nargs,
                   json_array_get_length(members));
        return false;
    }
    for (guint i = 0; i < nargs; i++) {
        JsonObject *m = json_array_get_object_element(members, i);
        const char *name = json_object_get_string_member(m, "name");
        bool optional = json_object_has_member(m, "default");
        QmpArgType type;

        if (strcmp(args[i].name, name)) {
            error_setg(errp, "QMP command '%s': argument %u is '%s', "
                       "qapi/*.json declares '%s'", command, i + 1,
                       args[i].name, name);
            return false;
        }
        if (!schema_arg_type(json_object_get_string_member(m, "type"),
                             &type) || type != args[i].type ||
            optional != args[i].optional) {
            error_setg(errp, "QMP command '%s': argument '%s' differs from "
                       "qapi/*.json in type or optionality", command, name);
            return false;
        }
    }
    return true;
}

bool qmp_schema_check_enum(const QEnumLookup *lookup, Error **errp)
{
    g_auto(GStrv) values = qmp_schema_enum_values(lookup->name);

    if (!values) {
        error_setg(errp, "enum '%s' is not in qapi/*.json", lookup->name);
        return false;
    }
    if (g_strv_length(values) != (guint)lookup->size) {
        error_setg(errp, "enum '%s' has %d names, qapi/*.json declares %u",
                   lookup->name, lookup->size, g_strv_length(values));
        return false;
    }
    /* The C enum's order is the code's own business; the names are not. */
    for (int i = 0; i < lookup->size; i++) {
        if (!lookup->array[i] ||
            !g_strv_contains((const char *const *)values, lookup->array[i])) {
            error_setg(errp, "enum '%s': '%s' is not among its values in "
                       "qapi/*.json", lookup->name,
                       lookup->array[i] ? lookup->array[i] : "(none)");
            return false;
        }
    }
    return true;
}
