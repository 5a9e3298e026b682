/*
 * One guest vCPU: an x86-64 Unicorn engine run by its own thread on the
 * machine's shared guest RAM (see accel/tcg/).
 */
#ifndef HW_CORE_CPU_H
#define HW_CORE_CPU_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct CPUState CPUState;
typedef struct MachineState MachineState;

/* General purpose registers, indexed in x86 encoding order. */
enum {
    R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI,
    R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15,
    CPU_NB_REGS
};

/*
 * The architectural state that a snapshot carries for one vCPU.  It is
 * exact only while the vCPU is paused (see vm_stop()).
 */
typedef struct X86CPURegs {
    uint64_t regs[CPU_NB_REGS];
    uint64_t rip;
    uint64_t rflags;
    uint32_t cs, ds, es, fs, gs, ss;    /* selectors */
    uint64_t fs_base, gs_base;
    uint64_t cr0, cr2, cr3, cr4, efer;
    uint32_t mxcsr;
    uint8_t xmm[16][16];
} X86CPURegs;

int cpu_index(const CPUState *cpu);

/* Both require the vCPU to be paused. */
void cpu_get_regs(CPUState *cpu, X86CPURegs *regs);
bool cpu_set_regs(CPUState *cpu, const X86CPURegs *regs, Error **errp);

#endif
