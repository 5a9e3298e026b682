/*
 * vCPU lifecycle, for the machine (system/): each vCPU is a thread that
 * runs one Unicorn engine on the machine's guest RAM (accel/tcg/).
 *
 * Pausing is two steps so that a machine pauses all its vCPUs in parallel:
 * cpu_pause_request() on each, then cpu_pause_wait() on each.  The caller
 * serialises these calls (the machine's run lock).
 */
#ifndef SYSEMU_CPUS_H
#define SYSEMU_CPUS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/core/cpu.h"
#include "migration/vmstate.h"

/* Created parked; maps every RAMBlock of @ms and starts the thread. */
CPUState *cpu_create(MachineState *ms, int index, Error **errp);
/* Pauses the vCPU, joins its thread and closes its engine. */
void cpu_destroy(CPUState *cpu);

void cpu_pause_request(CPUState *cpu);
/*
 * Returns once the vCPU is out of the engine, at an instruction boundary.
 * Takes no lock but the vCPU's own, so a vCPU blocked in the kernel (on a
 * userfaultfd write-protect fault, say) is simply waited for.
 */
void cpu_pause_wait(CPUState *cpu);
void cpu_resume(CPUState *cpu);

/*
 * The entry state of the board ABI (see docs/devel/machine.md): each vCPU
 * gets a 16 KiB stack below 1 MiB, vCPU 0's at the top.
 */
#define CPU_ENTRY_STACK_TOP  0x100000
#define CPU_ENTRY_STACK_SIZE 0x4000
bool cpu_reset_for_entry(CPUState *cpu, uint64_t entry, uint64_t ram_size,
                         unsigned nr_cpus, Error **errp);
/*
 * A halted vCPU (hlt, or no guest loaded) stays out of the engine while
 * the machine runs; cpu_set_regs() wakes it.
 */
void cpu_set_halted(CPUState *cpu, bool halted);

/*
 * Registers of vCPU @index, whatever the run state: a running vCPU is
 * paused alone for the read (no STOP/RESUME).  False if no such vCPU.
 */
bool vm_cpu_get_regs(MachineState *ms, unsigned index, X86CPURegs *regs);

/* Host thread id of the vCPU thread (query-cpus-fast "thread-id"). */
int cpu_thread_id(CPUState *cpu);

/* A vCPU's migratable state, registered by the machine per vCPU. */
extern const VMStateDescription vmstate_cpu;
void *cpu_vmstate_opaque(CPUState *cpu);

/*
 * From a vCPU thread whose engine failed: have the main loop stop the
 * machine in "internal-error".  Returns at once.
 */
void machine_request_internal_error(MachineState *ms);

#endif
