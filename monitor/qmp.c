/*
 * QMP: the command table, and sessions that speak QEMU's wire protocol
 * (greeting, capabilities negotiation, execute/arguments/id, return or
 * error, one message per "\r\n"-terminated line of output).
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "monitor/qmp-schema.h"

typedef struct QmpCommand {
    char *name;
    const QmpArgSpec *args;
    QmpCommandFunc fn;
    void *opaque;
    QmpCommandFlags flags;
} QmpCommand;

/* The process-wide command table, in registration order. */
static GPtrArray *qmp_commands;

static QmpCommand *qmp_find_command(const char *name)
{
    for (guint i = 0; qmp_commands && i < qmp_commands->len; i++) {
        QmpCommand *cmd = g_ptr_array_index(qmp_commands, i);
        if (!strcmp(cmd->name, name)) {
            return cmd;
        }
    }
    return NULL;
}

void qmp_register_command(const char *name, const QmpArgSpec *args,
                          QmpCommandFunc fn, void *opaque,
                          QmpCommandFlags flags)
{
    QmpCommand *cmd;

    if (!qmp_commands) {
        qmp_commands = g_ptr_array_new();
    }
    /* Two subsystems claiming one name is a programming error. */
    g_assert(!qmp_find_command(name));
    cmd = g_new0(QmpCommand, 1);
    cmd->name = g_strdup(name);
    cmd->args = args;
    cmd->fn = fn;
    cmd->opaque = opaque;
    cmd->flags = flags;
    g_ptr_array_add(qmp_commands, cmd);
}

bool qmp_commands_check_schema(Error **errp)
{
    for (guint i = 0; qmp_commands && i < qmp_commands->len; i++) {
        QmpCommand *cmd = g_ptr_array_index(qmp_commands, i);

        if (!qmp_schema_check_args(cmd->name, cmd->args, errp)) {
            return false;
        }
    }
    return true;
}

GPtrArray *qmp_command_names(void)
{
    GPtrArray *names = g_ptr_array_new();

    for (guint i = 0; qmp_commands && i < qmp_commands->len; i++) {
        QmpCommand *cmd = g_ptr_array_index(qmp_commands, i);
        g_ptr_array_add(names, cmd->name);
    }
    return names;
}

JsonNode *json_node_from_object(JsonObject *obj)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, obj);
    return node;
}

JsonNode *json_node_from_array(JsonArray *arr)
{
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);

    json_node_take_array(node, arr);
    return node;
}

/* ---- output ---- */

void qmp_send_node(Monitor *mon, JsonNode *node)
{
    g_autofree char *json = json_to_string(node, FALSE);
    g_autofree char *text = g_strconcat(json, "\r\n", NULL);

    monitor_write(mon, text, strlen(text));
}

static void qmp_send_object(Monitor *mon, JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);

    qmp_send_node(mon, node);
}

static void qmp_send_error(Monitor *mon, JsonNode *id, const Error *err)
{
    g_autoptr(JsonObject) reply = json_object_new();
    JsonObject *error = json_object_new();

    json_object_set_string_member(error, "class",
                                  error_class_name(error_get_class(err)));
    json_object_set_string_member(error, "desc", error_get_pretty(err));
    json_object_set_object_member(reply, "error", error);
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    qmp_send_object(mon, reply);
}

static void qmp_send_return(Monitor *mon, JsonNode *id, JsonNode *ret)
{
    g_autoptr(JsonObject) reply = json_object_new();

    json_object_set_member(reply, "return", ret);
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    qmp_send_object(mon, reply);
}

/* ---- argument checking ---- */

static const char *qmp_arg_type_name(QmpArgType type)
{
    switch (type) {
    case QMP_ARG_STR:
        return "string";
    case QMP_ARG_INT:
        return "integer";
    case QMP_ARG_BOOL:
        return "boolean";
    case QMP_ARG_NUMBER:
        return "number";
    case QMP_ARG_ARRAY:
        return "array";
    case QMP_ARG_OBJECT:
        return "object";
    case QMP_ARG_ANY:
    default:
        return "any";
    }
}

static bool qmp_arg_type_matches(JsonNode *node, QmpArgType type)
{
    GType vt = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node)
                                           : G_TYPE_INVALID;

    switch (type) {
    case QMP_ARG_STR:
        return vt == G_TYPE_STRING;
    case QMP_ARG_INT:
        return vt == G_TYPE_INT64;
    case QMP_ARG_BOOL:
        return vt == G_TYPE_BOOLEAN;
    case QMP_ARG_NUMBER:
        return vt == G_TYPE_INT64 || vt == G_TYPE_DOUBLE;
    case QMP_ARG_ARRAY:
        return JSON_NODE_HOLDS_ARRAY(node);
    case QMP_ARG_OBJECT:
        return JSON_NODE_HOLDS_OBJECT(node);
    case QMP_ARG_ANY:
    default:
        return true;
    }
}

/*
 * The same checks and messages as QEMU's input visitor: declared members
 * in declaration order (missing, then wrong type), then anything left.
 */
static bool qmp_check_args(const QmpCommand *cmd, JsonObject *args,
                           Error **errp)
{
    g_autoptr(GList) members = json_object_get_members(args);

    for (const QmpArgSpec *spec = cmd->args; spec && spec->name; spec++) {
        JsonNode *node = json_object_get_member(args, spec->name);

        if (!node) {
            if (!spec->optional) {
                error_setg(errp, "Parameter '%s' is missing", spec->name);
                return false;
            }
            continue;
        }
        if (!qmp_arg_type_matches(node, spec->type)) {
            error_setg(errp, "Invalid parameter type for '%s', expected: %s",
                       spec->name, qmp_arg_type_name(spec->type));
            return false;
        }
    }
    for (GList *l = members; l; l = l->next) {
        const char *name = l->data;
        bool declared = false;

        for (const QmpArgSpec *spec = cmd->args; spec && spec->name; spec++) {
            declared |= !strcmp(spec->name, name);
        }
        if (!declared) {
            error_setg(errp, "Parameter '%s' is unexpected", name);
            return false;
        }
    }
    return true;
}

/* ---- dispatch ---- */

/* Check the request's own members; returns the command name. */
static const char *qmp_check_request(JsonObject *req, Error **errp)
{
    g_autoptr(GList) members = json_object_get_members(req);
    const char *command = NULL;

    for (GList *l = members; l; l = l->next) {
        const char *name = l->data;
        JsonNode *node = json_object_get_member(req, name);

        if (!strcmp(name, "execute")) {
            if (!JSON_NODE_HOLDS_VALUE(node) ||
                json_node_get_value_type(node) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member 'execute' must be a string");
                return NULL;
            }
            command = json_node_get_string(node);
        } else if (!strcmp(name, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(node)) {
                error_setg(errp,
                           "QMP input member 'arguments' must be an object");
                return NULL;
            }
        } else if (strcmp(name, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", name);
            return NULL;
        }
    }
    if (!command) {
        error_setg(errp, "QMP input lacks member 'execute'");
    }
    return command;
}

static JsonNode *qmp_dispatch(Monitor *mon, JsonObject *req, Error **errp)
{
    const char *name = qmp_check_request(req, errp);
    g_autoptr(JsonObject) no_args = NULL;
    JsonObject *args;
    QmpCommand *cmd;
    Error *err = NULL;
    JsonNode *ret;

    if (!name) {
        return NULL;
    }
    cmd = qmp_find_command(name);
    if (!mon->negotiated &&
        (!cmd || !(cmd->flags & QMP_CMD_ALLOW_PRECONFIG))) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with 'qmp_capabilities'");
        return NULL;
    }
    if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return NULL;
    }
    if (json_object_has_member(req, "arguments")) {
        args = json_object_get_object_member(req, "arguments");
    } else {
        args = no_args = json_object_new();
    }
    if (!qmp_check_args(cmd, args, errp)) {
        return NULL;
    }
    ret = cmd->fn(args, cmd->opaque, &err);
    if (err) {
        if (ret) {
            json_node_unref(ret);
        }
        error_propagate(errp, err);
        return NULL;
    }
    if (!ret) {
        g_autoptr(JsonObject) empty = json_object_new();
        ret = json_node_init_object(json_node_alloc(), empty);
    }
    return ret;
}

static void qmp_handle_message(void *opaque, const char *text, size_t len,
                               Error *stream_err)
{
    Monitor *mon = opaque;
    g_autoptr(Error) err = stream_err;
    g_autoptr(JsonParser) parser = NULL;
    g_autoptr(GError) gerr = NULL;
    JsonNode *root, *id = NULL;
    JsonObject *req;
    JsonNode *ret;

    if (mon->dead) {
        return;
    }
    if (err) {
        qmp_send_error(mon, NULL, err);
        return;
    }
    parser = json_parser_new_immutable();
    if (!json_parser_load_from_data(parser, text, len, &gerr)) {
        error_setg(&err, "JSON parse error, %s", gerr->message);
        qmp_send_error(mon, NULL, err);
        return;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(&err, "QMP input must be a JSON object");
        qmp_send_error(mon, NULL, err);
        return;
    }
    req = json_node_get_object(root);
    id = json_object_get_member(req, "id");
    ret = qmp_dispatch(mon, req, &err);
    if (err) {
        qmp_send_error(mon, id, err);
    } else {
        qmp_send_return(mon, id, ret);
    }
}

/* ---- sessions ---- */

static JsonNode *qmp_greeting(void)
{
    g_auto(GStrv) parts = g_strsplit(SNAPVM_VERSION, ".", 3);
    JsonObject *qemu = json_object_new();
    JsonObject *version = json_object_new();
    JsonObject *qmp = json_object_new();
    JsonObject *greeting = json_object_new();
    const char *package = "snapvm " SNAPVM_VERSION;

    json_object_set_int_member(qemu, "micro",
                               parts[0] && parts[1] && parts[2]
                               ? g_ascii_strtoll(parts[2], NULL, 10) : 0);
    json_object_set_int_member(qemu, "minor", parts[0] && parts[1]
                               ? g_ascii_strtoll(parts[1], NULL, 10) : 0);
    json_object_set_int_member(qemu, "major",
                               g_ascii_strtoll(parts[0] ? parts[0] : "0",
                                               NULL, 10));
    json_object_set_object_member(version, "qemu", qemu);
    json_object_set_string_member(version, "package", package);
    json_object_set_object_member(qmp, "version", version);
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(greeting, "QMP", qmp);
    return json_node_from_object(greeting);
}

void qmp_session_start(Monitor *mon)
{
    g_autoptr(JsonNode) greeting = qmp_greeting();

    mon->stream = json_stream_new(JSON_STREAM_MAX_SIZE, JSON_STREAM_MAX_DEPTH,
                                  qmp_handle_message, mon);
    qmp_send_node(mon, greeting);
}

void qmp_session_input(Monitor *mon, const char *buf, size_t len)
{
    json_stream_feed(mon->stream, buf, len);
}

void qmp_session_end(Monitor *mon)
{
    json_stream_free(mon->stream);
    mon->stream = NULL;
}
