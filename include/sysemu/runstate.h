/*
 * Run state of the machine, with QEMU's names (query-status "status").
 *
 * vm_stop() and vm_start() may be called from any thread (the monitor in
 * the main loop, the migration thread); they serialise on the machine's
 * run-state lock and return only once every vCPU has reached the new state,
 * so device state read after vm_stop() is exact.
 */
#ifndef SYSEMU_RUNSTATE_H
#define SYSEMU_RUNSTATE_H

#include "qemu/osdep.h"
#include "qemu/cutils.h"

typedef struct MachineState MachineState;

typedef enum RunState {
    RUN_STATE_PRELAUNCH,      /* -S, or before the first cont */
    RUN_STATE_INMIGRATE,      /* waiting for / loading an incoming stream */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,         /* stop */
    RUN_STATE_FINISH_MIGRATE, /* paused for the final pass of a save */
    RUN_STATE_POSTMIGRATE,    /* paused after a completed outgoing migration */
    RUN_STATE_SAVE_VM,
    RUN_STATE_RESTORE_VM,
    RUN_STATE_SHUTDOWN,       /* the guest has ended (debug-exit, quit) */
    RUN_STATE_INTERNAL_ERROR, /* the CPU engine failed */
    RUN_STATE__MAX
} RunState;

/* The names, as qapi/run-state.json's RunState and ShutdownCause. */
extern const QEnumLookup RunState_lookup;
extern const QEnumLookup ShutdownCause_lookup;
const char *runstate_name(RunState state);
RunState runstate_get(MachineState *ms);
bool runstate_is_running(MachineState *ms);

/*
 * Pause every vCPU at an instruction boundary and enter @state (one of the
 * paused states).  Emits STOP if the machine was running.  Idempotent.
 */
void vm_stop(MachineState *ms, RunState state);

/* Change state without touching vCPUs (e.g. paused -> postmigrate). */
void runstate_set(MachineState *ms, RunState state);

/* Resume every vCPU; emits RESUME.  No-op if already running. */
void vm_start(MachineState *ms);

/*
 * Ask the main loop to end snapvm with @status (thread safe, returns at
 * once).  debug-exit uses (V << 1) | 1, quit uses 0.
 */
void qemu_system_shutdown_request(MachineState *ms, int status);

/* Why the machine shuts down: the SHUTDOWN event's "guest" and "reason". */
typedef enum ShutdownCause {
    SHUTDOWN_CAUSE_HOST_QMP_QUIT,   /* quit (QMP or HMP); the default */
    SHUTDOWN_CAUSE_HOST_SIGNAL,     /* SIGINT, SIGTERM, SIGHUP */
    SHUTDOWN_CAUSE_GUEST_SHUTDOWN,  /* the guest wrote to debug-exit */
} ShutdownCause;

/* qemu_system_shutdown_request() with the cause spelled out. */
void qemu_system_shutdown_request_cause(MachineState *ms, int status,
                                        ShutdownCause cause);

#endif
