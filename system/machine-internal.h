/*
 * The machine's own fields, shared by the files of system/ only; everyone
 * else goes through the accessors of hw/boards.h.
 */
#ifndef SYSTEM_MACHINE_INTERNAL_H
#define SYSTEM_MACHINE_INTERNAL_H

#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"

typedef struct BoardState BoardState;

struct MachineState {
    RAMBlock **ram_blocks;          /* in guest physical address order */
    unsigned nr_ram_blocks;
    uint64_t ram_size;

    CPUState **cpus;
    unsigned nr_cpus;

    SerialState *serial;
    BoardState *board;
    char *name;
    VMStateRegistry *vmstate;

    /*
     * Serialises vm_stop(), vm_start() and runstate_set().  Held while
     * waiting for vCPUs to pause, so nothing a vCPU (or a thread that
     * unblocks a vCPU, such as a userfaultfd handler) needs may take it.
     */
    GMutex run_lock;
    int runstate;                   /* RunState; atomic reads without lock */

    /* Requests from other threads, carried out in the main loop. */
    GMutex request_lock;
    bool shutdown_requested;
    int shutdown_status;
    ShutdownCause shutdown_cause;
    guint shutdown_source;
    guint internal_error_source;
    MachineShutdownHandler shutdown_fn;
    void *shutdown_opaque;
    MachineShutdownHandler shutdown_prepare_fn;
    void *shutdown_prepare_opaque;
};

/* runstate.c: forget main-loop requests that have not run yet. */
void runstate_cancel_requests(MachineState *ms);

#endif
