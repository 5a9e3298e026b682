/*
 * The monitor: QMP (JSON, QEMU's wire protocol) and HMP (human commands).
 *
 * Subsystems register their commands once at start-up; QMP and HMP are
 * thin shells that parse input, check arguments against the declared
 * specs and call the same C functions.  Every command registered here is
 * declared and documented in the qapi/ schema (a test checks that they agree).
 *
 * Threads: commands run in the main loop thread.  qapi_event_send() may be
 * called from any thread.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include <json-glib/json-glib.h>

typedef struct Monitor Monitor;
typedef struct MachineState MachineState;

/* ---- QMP commands ---- */

typedef enum QmpArgType {
    QMP_ARG_STR,
    QMP_ARG_INT,
    QMP_ARG_BOOL,
    QMP_ARG_NUMBER,     /* int or float */
    QMP_ARG_ARRAY,
    QMP_ARG_OBJECT,
    QMP_ARG_ANY,
} QmpArgType;

typedef struct QmpArgSpec {
    const char *name;
    QmpArgType type;
    bool optional;
} QmpArgSpec;

#define QMP_ARGS_END { .name = NULL }

/*
 * A command: @args holds only declared members, each of its declared type
 * (the dispatcher has checked).  Returns the "return" value (NULL means
 * {}); on failure sets @errp and returns NULL.
 */
typedef JsonNode *(*QmpCommandFunc)(JsonObject *args, void *opaque,
                                    Error **errp);

typedef enum QmpCommandFlags {
    QMP_CMD_NONE = 0,
    QMP_CMD_ALLOW_PRECONFIG = 1 << 0,   /* allowed before qmp_capabilities */
} QmpCommandFlags;

/*
 * A command's return value made of @obj or @arr, whose reference it takes
 * over (monitor/qmp.c).
 */
JsonNode *json_node_from_object(JsonObject *obj);
JsonNode *json_node_from_array(JsonArray *arr);

/* @args: array ending with QMP_ARGS_END, or NULL for no arguments. */
void qmp_register_command(const char *name, const QmpArgSpec *args,
                          QmpCommandFunc fn, void *opaque,
                          QmpCommandFlags flags);

/*
 * For getfd: take over a descriptor that arrived with SCM_RIGHTS on the
 * QMP unix socket session whose command is being dispatched (the oldest it
 * still holds; usually the one sent with this command's bytes).  The
 * caller owns it (close-on-exec is set).  Returns -1 if none came.  Only
 * meaningful inside a command handler, in the main loop thread.
 */
int monitor_take_passed_fd(void);

/* ---- events ---- */

/*
 * Send @event to every QMP client past capabilities negotiation, with
 * QEMU's {"timestamp": {"seconds", "microseconds"}} taken now.  @data may be
 * NULL; it is consumed.  Thread safe.
 */
void qapi_event_send(const char *event, JsonObject *data);

/* ---- HMP commands ---- */

/*
 * @argv[0] is the command name; the remaining words are split on white
 * space (for "info X", argv[0] is "info" and argv[1] is "X").
 */
typedef void (*HmpCommandFunc)(Monitor *mon, int argc, char **argv,
                               void *opaque);

/* @params is the usage shown by "help", e.g. "[-d] uri". */
void hmp_register_command(const char *name, const char *params,
                          const char *help, HmpCommandFunc fn, void *opaque);
/* "info @name" */
void hmp_register_info(const char *name, const char *help,
                       HmpCommandFunc fn, void *opaque);

/* HMP output; each "\n" goes out as "\r\n", as QEMU's does. */
void monitor_printf(Monitor *mon, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/*
 * The vCPU that commands such as "info registers" look at: 0, or the
 * "cpu-index" given to human-monitor-command.
 */
int monitor_get_cpu_index(Monitor *mon);
/* Prints "Error: <msg>" the way HMP reports failures, and frees @err. */
void hmp_handle_error(Monitor *mon, Error *err);

/* ---- setup, from main() ---- */

/*
 * The monitor's own QMP commands (qmp_capabilities, query-commands,
 * human-monitor-command, query-qmp-schema); once, from start-up
 * (snapvm_register_commands()).
 */
void monitor_register_commands(MachineState *ms);

/* @spec is the option value: "stdio", or "unix:PATH,server=on,wait=off". */
bool monitor_init_qmp(const char *spec, MachineState *ms, Error **errp);
bool monitor_init_hmp(const char *spec, MachineState *ms, Error **errp);
/*
 * A QMP (@qmp) or HMP monitor on @fd, a listening socket snapvm
 * inherited (-chardev socket,fd=N), which it now owns.
 */
bool monitor_init_listen_fd(bool qmp, int fd, bool wait, MachineState *ms,
                            Error **errp);
/* Close every client and listening socket (at exit). */
void monitor_cleanup(void);

#endif
