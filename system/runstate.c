/*
 * Run state, pausing and resuming the vCPUs, and the requests that other
 * threads hand to the main loop (shutdown, internal error).
 */
#include "qemu/osdep.h"
#include "machine-internal.h"
#include "monitor/monitor.h"
#include "sysemu/cpus.h"
#include "qemu/cutils.h"

static const char *const runstate_names[RUN_STATE__MAX] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
};

static const char *const shutdown_cause_names[] = {
    [SHUTDOWN_CAUSE_HOST_QMP_QUIT] = "host-qmp-quit",
    [SHUTDOWN_CAUSE_HOST_SIGNAL] = "host-signal",
    [SHUTDOWN_CAUSE_GUEST_SHUTDOWN] = "guest-shutdown",
};

const QEnumLookup RunState_lookup = {
    "RunState", runstate_names, RUN_STATE__MAX,
};
const QEnumLookup ShutdownCause_lookup = {
    "ShutdownCause", shutdown_cause_names,
    G_N_ELEMENTS(shutdown_cause_names),
};

const char *runstate_name(RunState state)
{
    return qapi_enum_lookup(&RunState_lookup, state);
}

RunState runstate_get(MachineState *ms)
{
    return g_atomic_int_get(&ms->runstate);
}

bool runstate_is_running(MachineState *ms)
{
    return runstate_get(ms) == RUN_STATE_RUNNING;
}

/* Called with run_lock held. */
static void runstate_set_locked(MachineState *ms, RunState state)
{
    RunState old = runstate_get(ms);

    if (old != state) {
        g_info("run state: %s -> %s", runstate_name(old),
               runstate_name(state));
        g_atomic_int_set(&ms->runstate, state);
    }
}

void runstate_set(MachineState *ms, RunState state)
{
    g_mutex_lock(&ms->run_lock);
    runstate_set_locked(ms, state);
    g_mutex_unlock(&ms->run_lock);
}

/* Called with run_lock held; takes only the vCPUs' own locks. */
static void pause_all_vcpus(MachineState *ms)
{
    /* Ask them all first, so that they stop in parallel. */
    for (unsigned i = 0; i < ms->nr_cpus; i++) {
        cpu_pause_request(ms->cpus[i]);
    }
    for (unsigned i = 0; i < ms->nr_cpus; i++) {
        cpu_pause_wait(ms->cpus[i]);
    }
}

static void vm_stop_locked(MachineState *ms, RunState state, bool send_stop)
{
    g_assert(state != RUN_STATE_RUNNING);

    if (runstate_is_running(ms)) {
        pause_all_vcpus(ms);
        runstate_set_locked(ms, state);
        if (send_stop) {
            qapi_event_send("STOP", NULL);
        }
    } else {
        runstate_set_locked(ms, state);
    }
}

void vm_stop(MachineState *ms, RunState state)
{
    g_mutex_lock(&ms->run_lock);
    vm_stop_locked(ms, state, true);
    g_mutex_unlock(&ms->run_lock);
}

void vm_start(MachineState *ms)
{
    g_mutex_lock(&ms->run_lock);
    if (!runstate_is_running(ms)) {
        runstate_set_locked(ms, RUN_STATE_RUNNING);
        for (unsigned i = 0; i < ms->nr_cpus; i++) {
            cpu_resume(ms->cpus[i]);
        }
        qapi_event_send("RESUME", NULL);
    }
    g_mutex_unlock(&ms->run_lock);
}

bool vm_cpu_get_regs(MachineState *ms, unsigned index, X86CPURegs *regs)
{
    if (index >= ms->nr_cpus) {
        return false;
    }
    CPUState *cpu = ms->cpus[index];

    /* Pause this vCPU alone, quietly: no run state change, no event. */
    g_mutex_lock(&ms->run_lock);
    bool running = runstate_is_running(ms);
    if (running) {
        cpu_pause_request(cpu);
        cpu_pause_wait(cpu);
    }
    cpu_get_regs(cpu, regs);
    if (running) {
        cpu_resume(cpu);
    }
    g_mutex_unlock(&ms->run_lock);
    return true;
}

/* ---- requests handed to the main loop ---- */

static gboolean shutdown_in_main_loop(gpointer opaque)
{
    MachineState *ms = opaque;
    MachineShutdownHandler fn, prepare;
    void *fn_opaque, *prepare_opaque;
    int status;
    ShutdownCause cause;

    g_mutex_lock(&ms->request_lock);
    ms->shutdown_source = 0;
    status = ms->shutdown_status;
    cause = ms->shutdown_cause;
    fn = ms->shutdown_fn;
    fn_opaque = ms->shutdown_opaque;
    prepare = ms->shutdown_prepare_fn;
    prepare_opaque = ms->shutdown_prepare_opaque;
    g_mutex_unlock(&ms->request_lock);

    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest",
                                   cause == SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    json_object_set_string_member(data, "reason",
                                  qapi_enum_lookup(&ShutdownCause_lookup,
                                                   cause));
    qapi_event_send("SHUTDOWN", data);

    if (prepare) {
        prepare(ms, status, prepare_opaque);
    }
    /* Like QEMU at exit: the vCPUs stop, without a STOP event. */
    g_mutex_lock(&ms->run_lock);
    vm_stop_locked(ms, RUN_STATE_SHUTDOWN, false);
    g_mutex_unlock(&ms->run_lock);

    if (fn) {
        fn(ms, status, fn_opaque);
    }
    return G_SOURCE_REMOVE;
}

void qemu_system_shutdown_request_cause(MachineState *ms, int status,
                                        ShutdownCause cause)
{
    g_mutex_lock(&ms->request_lock);
    /* The first request decides the exit status. */
    if (!ms->shutdown_requested) {
        ms->shutdown_requested = true;
        ms->shutdown_status = status;
        ms->shutdown_cause = cause;
        ms->shutdown_source = g_idle_add(shutdown_in_main_loop, ms);
    }
    g_mutex_unlock(&ms->request_lock);
}

void qemu_system_shutdown_request(MachineState *ms, int status)
{
    qemu_system_shutdown_request_cause(ms, status,
                                       SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

void machine_set_shutdown_prepare(MachineState *ms, MachineShutdownHandler fn,
                                  void *opaque)
{
    g_mutex_lock(&ms->request_lock);
    ms->shutdown_prepare_fn = fn;
    ms->shutdown_prepare_opaque = opaque;
    g_mutex_unlock(&ms->request_lock);
}

bool machine_shutdown_requested(MachineState *ms, int *status)
{
    g_mutex_lock(&ms->request_lock);
    bool requested = ms->shutdown_requested;
    if (requested && status) {
        *status = ms->shutdown_status;
    }
    g_mutex_unlock(&ms->request_lock);
    return requested;
}

void machine_set_shutdown_handler(MachineState *ms, MachineShutdownHandler fn,
                                  void *opaque)
{
    g_mutex_lock(&ms->request_lock);
    ms->shutdown_fn = fn;
    ms->shutdown_opaque = opaque;
    g_mutex_unlock(&ms->request_lock);
}

static gboolean internal_error_in_main_loop(gpointer opaque)
{
    MachineState *ms = opaque;

    g_mutex_lock(&ms->request_lock);
    ms->internal_error_source = 0;
    g_mutex_unlock(&ms->request_lock);
    vm_stop(ms, RUN_STATE_INTERNAL_ERROR);
    return G_SOURCE_REMOVE;
}

void machine_request_internal_error(MachineState *ms)
{
    g_mutex_lock(&ms->request_lock);
    if (!ms->internal_error_source) {
        ms->internal_error_source = g_idle_add(internal_error_in_main_loop,
                                               ms);
    }
    g_mutex_unlock(&ms->request_lock);
}

void runstate_cancel_requests(MachineState *ms)
{
    g_mutex_lock(&ms->request_lock);
    if (ms->shutdown_source) {
        g_source_remove(ms->shutdown_source);
        ms->shutdown_source = 0;
    }
    if (ms->internal_error_source) {
        g_source_remove(ms->internal_error_source);
        ms->internal_error_source = 0;
    }
    g_mutex_unlock(&ms->request_lock);
}
