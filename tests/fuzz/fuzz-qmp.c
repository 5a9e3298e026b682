/*
 * Fuzz target: what a QMP client sends, through the same path as a socket
 * session (monitor/json-stream.c splits, json-glib parses, monitor/qmp.c
 * checks the request and the arguments and dispatches).  The commands
 * are stand-ins covering every argument type, so that no machine is
 * needed; the first byte chooses whether the session has negotiated.
 */
#include "qemu/osdep.h"
#include "../../monitor/monitor-internal.h"
#include "fuzz-targets.h"

static JsonNode *fuzz_echo(JsonObject *args, void *opaque, Error **errp)
{
    return json_node_init_object(json_node_alloc(), args);
}

static JsonNode *fuzz_fail(JsonObject *args, void *opaque, Error **errp)
{
    error_setg(errp, "this command always fails");
    return NULL;
}

static const QmpArgSpec fuzz_echo_args[] = {
    { "s", QMP_ARG_STR },
    { "i", QMP_ARG_INT, true },
    { "b", QMP_ARG_BOOL, true },
    { "n", QMP_ARG_NUMBER, true },
    { "a", QMP_ARG_ARRAY, true },
    { "o", QMP_ARG_OBJECT, true },
    { "x", QMP_ARG_ANY, true },
    QMP_ARGS_END
};

static void fuzz_qmp_register(void)
{
    static bool done;

    if (!done) {
        qmp_register_command("fuzz-echo", fuzz_echo_args, fuzz_echo, NULL,
                             QMP_CMD_NONE);
        qmp_register_command("fuzz-fail", NULL, fuzz_fail, NULL,
                             QMP_CMD_NONE);
        qmp_register_command("fuzz-preconfig", NULL, fuzz_echo, NULL,
                             QMP_CMD_ALLOW_PRECONFIG);
        done = true;
    }
}

int fuzz_qmp_one(const uint8_t *data, size_t size)
{
    fuzz_qmp_register();
    Monitor *mon = monitor_new_capture(NULL, 0);

    mon->kind = MONITOR_QMP;
    mon->negotiated = size && (data[0] & 1);
    qmp_session_start(mon);
    qmp_session_input(mon, (const char *)data, size);
    /* Every reply is one line of JSON, so the output ends with one. */
    g_assert(mon->outbuf->len >= 2 &&
             mon->outbuf->data[mon->outbuf->len - 1] == '\n');
    qmp_session_end(mon);
    g_free(monitor_free_capture(mon));
    return 0;
}

#ifdef SNAPVM_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_qmp_one(data, size);
}
#endif
