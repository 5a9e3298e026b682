/*
 * The machine's commands, and their QMP shells (see qapi/machine.json for the
 * schema of each).
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "monitor/monitor.h"
#include "sysemu/cpus.h"
#include "sysemu/machine-cmds.h"

#define PMEMSAVE_CHUNK (1 * MiB)

void qmp_query_version(VersionInfo *info)
{
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(SNAPVM_VERSION, "%u.%u.%u", &major, &minor, &micro);
    info->major = major;
    info->minor = minor;
    info->micro = micro;
    info->package = "snapvm " SNAPVM_VERSION;
}

bool qmp_stop(MachineState *ms, Error **errp)
{
    /* From prelaunch too, as QEMU does: the guest then starts on cont. */
    vm_stop(ms, RUN_STATE_PAUSED);
    return true;
}

bool qmp_cont(MachineState *ms, Error **errp)
{
    switch (runstate_get(ms)) {
    case RUN_STATE_SHUTDOWN:
    case RUN_STATE_INTERNAL_ERROR:
        error_setg(errp, "Resetting the Virtual Machine is required");
        return false;
    case RUN_STATE_INMIGRATE:
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    case RUN_STATE_FINISH_MIGRATE:
    case RUN_STATE_SAVE_VM:
    case RUN_STATE_RESTORE_VM:
        error_setg(errp, "The guest is being migrated; try again when it "
                   "is done");
        return false;
    default:
        vm_start(ms);
        return true;
    }
}

void qmp_quit(MachineState *ms)
{
    qemu_system_shutdown_request_cause(ms, 0, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

bool qmp_pmemsave(MachineState *ms, uint64_t addr, uint64_t size,
                  const char *filename, Error **errp)
{
    if (addr > machine_ram_size(ms) || machine_ram_size(ms) - addr < size) {
        error_setg(errp, "Invalid parameter 'val': 0x%" PRIx64 "+0x%" PRIx64
                   " is outside guest RAM (0x%" PRIx64 " bytes)",
                   addr, size, machine_ram_size(ms));
        return false;
    }
    int fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", filename);
        return false;
    }
    g_autofree uint8_t *buf = g_malloc(MIN(size, PMEMSAVE_CHUNK) + 1);
    while (size) {
        uint64_t chunk = MIN(size, PMEMSAVE_CHUNK);
        if (!machine_memory_read(ms, addr, buf, chunk, errp)) {
            close(fd);
            return false;
        }
        for (uint64_t done = 0; done < chunk;) {
            ssize_t n = write(fd, buf + done, chunk - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                error_setg_errno(errp, errno, "writing '%s'", filename);
                close(fd);
                return false;
            }
            done += n;
        }
        addr += chunk;
        size -= chunk;
    }
    if (close(fd) < 0) {
        error_setg_errno(errp, errno, "writing '%s'", filename);
        return false;
    }
    return true;
}

/* ---- QMP shells ---- */

static JsonNode *qmp_cmd_query_status(JsonObject *args, void *opaque,
                                      Error **errp)
{
    MachineState *ms = opaque;
    RunState state = runstate_get(ms);
    JsonObject *ret = json_object_new();

    json_object_set_string_member(ret, "status", runstate_name(state));
    json_object_set_boolean_member(ret, "running",
                                   state == RUN_STATE_RUNNING);
    json_object_set_boolean_member(ret, "singlestep", false);
    return json_node_from_object(ret);
}

static JsonNode *qmp_cmd_stop(JsonObject *args, void *opaque, Error **errp)
{
    qmp_stop(opaque, errp);
    return NULL;
}

static JsonNode *qmp_cmd_cont(JsonObject *args, void *opaque, Error **errp)
{
    qmp_cont(opaque, errp);
    return NULL;
}

static JsonNode *qmp_cmd_quit(JsonObject *args, void *opaque, Error **errp)
{
    qmp_quit(opaque);
    return NULL;
}

static JsonNode *qmp_cmd_query_version(JsonObject *args, void *opaque,
                                       Error **errp)
{
    VersionInfo info;
    JsonObject *qemu = json_object_new();
    JsonObject *ret = json_object_new();

    qmp_query_version(&info);
    json_object_set_int_member(qemu, "major", info.major);
    json_object_set_int_member(qemu, "minor", info.minor);
    json_object_set_int_member(qemu, "micro", info.micro);
    json_object_set_object_member(ret, "qemu", qemu);
    json_object_set_string_member(ret, "package", info.package);
    return json_node_from_object(ret);
}

static JsonNode *qmp_cmd_query_name(JsonObject *args, void *opaque,
                                    Error **errp)
{
    const char *name = machine_name(opaque);
    JsonObject *ret = json_object_new();

    if (name) {
        json_object_set_string_member(ret, "name", name);
    }
    return json_node_from_object(ret);
}

static JsonNode *qmp_cmd_query_cpus_fast(JsonObject *args, void *opaque,
                                         Error **errp)
{
    MachineState *ms = opaque;
    JsonArray *cpus = json_array_new();

    for (unsigned i = 0; i < machine_cpu_count(ms); i++) {
        CPUState *cpu = machine_cpu(ms, i);
        JsonObject *info = json_object_new();
        JsonObject *props = json_object_new();
        g_autofree char *qom_path =
            g_strdup_printf("/machine/unattached/device[%u]", i);

        /* One socket per vCPU, as QEMU's default -smp N topology. */
        json_object_set_int_member(props, "core-id", 0);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", i);
        json_object_set_int_member(info, "cpu-index", cpu_index(cpu));
        json_object_set_string_member(info, "qom-path", qom_path);
        json_object_set_int_member(info, "thread-id", cpu_thread_id(cpu));
        json_object_set_object_member(info, "props", props);
        json_object_set_string_member(info, "target", "x86_64");
        json_array_add_object_element(cpus, info);
    }
    return json_node_from_array(cpus);
}

static JsonNode *qmp_cmd_pmemsave(JsonObject *args, void *opaque,
                                  Error **errp)
{
    int64_t val = json_object_get_int_member(args, "val");
    int64_t size = json_object_get_int_member(args, "size");

    if (val < 0 || size < 0) {
        error_setg(errp, "Invalid parameter: 'val' and 'size' must not be "
                   "negative");
        return NULL;
    }
    qmp_pmemsave(opaque, val, size,
                 json_object_get_string_member(args, "filename"), errp);
    return NULL;
}

static const QmpArgSpec pmemsave_args[] = {
    { "val", QMP_ARG_INT },
    { "size", QMP_ARG_INT },
    { "filename", QMP_ARG_STR },
    QMP_ARGS_END
};

void machine_register_qmp_commands(MachineState *ms)
{
    qmp_register_command("query-status", NULL, qmp_cmd_query_status, ms,
                         QMP_CMD_NONE);
    qmp_register_command("stop", NULL, qmp_cmd_stop, ms, QMP_CMD_NONE);
    qmp_register_command("cont", NULL, qmp_cmd_cont, ms, QMP_CMD_NONE);
    qmp_register_command("quit", NULL, qmp_cmd_quit, ms, QMP_CMD_NONE);
    qmp_register_command("query-version", NULL, qmp_cmd_query_version, ms,
                         QMP_CMD_NONE);
    qmp_register_command("query-name", NULL, qmp_cmd_query_name, ms,
                         QMP_CMD_NONE);
    qmp_register_command("query-cpus-fast", NULL, qmp_cmd_query_cpus_fast,
                         ms, QMP_CMD_NONE);
    qmp_register_command("pmemsave", pmemsave_args, qmp_cmd_pmemsave, ms,
                         QMP_CMD_NONE);
}
