/*
 * The vCPU object, shared by the files of accel/tcg/ only.
 */
#ifndef ACCEL_TCG_CPU_INTERNAL_H
#define ACCEL_TCG_CPU_INTERNAL_H

#include "qemu/osdep.h"
#include "hw/core/cpu.h"
#include <unicorn/unicorn.h>

struct CPUState {
    /*
     * First, so that vmstate_cpu's field offsets (offsets into
     * X86CPURegs) are offsets into CPUState: the registers are copied here
     * by pre_save and written back to the engine by post_load.
     */
    X86CPURegs vmstate_regs;

    MachineState *machine;
    int index;
    uc_engine *uc;
    uc_hook hook_in, hook_out, hook_block;
    GThread *thread;
    int thread_id;

    /*
     * Set by a pauser, read by the block hook at the start of every
     * translation block, which then stops the engine from inside (see
     * cpu_block_hook() for why a stop from another thread is not exact).
     */
    int pause_requested;

    /*
     * Protocol with the machine (see docs/devel/machine.md), all under
     * @lock.  The vCPU thread enters the engine only when @should_run and
     * neither @halted nor @failed, and sets @in_engine for as long as it
     * may be inside uc_emu_start(); a pauser clears @should_run, sets
     * @pause_requested and waits for @in_engine to drop.
     */
    GMutex lock;
    GCond cond;
    bool should_run;
    bool in_engine;
    bool halted;        /* hlt, debug-exit, or no guest loaded */
    bool failed;        /* the engine reported an error */
    bool quit;          /* cpu_destroy(): leave the thread */
    bool has_run;       /* the engine has translated guest code */
};

#endif
