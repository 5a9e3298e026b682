/*
 * The monitor's own QMP commands: qmp_capabilities, query-commands and
 * human-monitor-command (documented in qapi/control.json and
 * qapi/misc.json).
 */
#include "qemu/osdep.h"
#include "monitor-internal.h"
#include "monitor/qmp-schema.h"
#include "hw/boards.h"

static JsonNode *qmp_capabilities(JsonObject *args, void *opaque,
                                  Error **errp)
{
    Monitor *mon = monitor_cur();

    if (!mon || mon->kind != MONITOR_QMP) {
        error_setg(errp, "qmp_capabilities is only valid on a QMP session");
        return NULL;
    }
    if (mon->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command"
                  " ignored");
        return NULL;
    }
    if (json_object_has_member(args, "enable")) {
        JsonArray *enable = json_object_get_array_member(args, "enable");

        if (json_array_get_length(enable)) {
            JsonNode *cap = json_array_get_element(enable, 0);
            const char *name = JSON_NODE_HOLDS_VALUE(cap) &&
                json_node_get_value_type(cap) == G_TYPE_STRING
                ? json_node_get_string(cap) : "?";
            error_setg(errp, "Capability '%s' not available", name);
            return NULL;
        }
    }
    mon->negotiated = true;
    return NULL;
}

static JsonNode *qmp_query_commands(JsonObject *args, void *opaque,
                                    Error **errp)
{
    g_autoptr(GPtrArray) names = qmp_command_names();
    JsonArray *list = json_array_sized_new(names->len);

    for (guint i = 0; i < names->len; i++) {
        JsonObject *info = json_object_new();

        json_object_set_string_member(info, "name",
                                      g_ptr_array_index(names, i));
        json_array_add_object_element(list, info);
    }
    JsonNode *ret = json_node_alloc();

    json_node_take_array(json_node_init(ret, JSON_NODE_ARRAY), list);
    return ret;
}

static JsonNode *qmp_human_monitor_command(JsonObject *args, void *opaque,
                                           Error **errp)
{
    MachineState *ms = opaque;
    const char *line = json_object_get_string_member(args, "command-line");
    int64_t cpu_index = 0;
    Monitor *capture;
    g_autofree char *output = NULL;

    if (json_object_has_member(args, "cpu-index")) {
        cpu_index = json_object_get_int_member(args, "cpu-index");
        if (cpu_index < 0 ||
            (ms && cpu_index >= machine_cpu_count(ms))) {
            error_setg(errp, "Invalid CPU index");
            return NULL;
        }
    }
    capture = monitor_new_capture(ms, cpu_index);
    hmp_run_line(capture, line);
    output = monitor_free_capture(capture);
    return json_node_init_string(json_node_alloc(), output);
}

static JsonNode *qmp_query_qmp_schema(JsonObject *args, void *opaque,
                                      Error **errp)
{
    return qmp_schema_to_node();
}

static const QmpArgSpec qmp_capabilities_args[] = {
    { "enable", QMP_ARG_ARRAY, .optional = true },
    QMP_ARGS_END
};

static const QmpArgSpec human_monitor_command_args[] = {
    { "command-line", QMP_ARG_STR },
    { "cpu-index", QMP_ARG_INT, .optional = true },
    QMP_ARGS_END
};

void monitor_register_commands(MachineState *ms)
{
    qmp_register_command("qmp_capabilities", qmp_capabilities_args,
                         qmp_capabilities, NULL, QMP_CMD_ALLOW_PRECONFIG);
    qmp_register_command("query-commands", NULL, qmp_query_commands, NULL,
                         QMP_CMD_NONE);
    qmp_register_command("human-monitor-command", human_monitor_command_args,
                         qmp_human_monitor_command, ms, QMP_CMD_NONE);
    qmp_register_command("query-qmp-schema", NULL, qmp_query_qmp_schema,
                         NULL, QMP_CMD_NONE);
}
