/*
 * A vCPU's architectural state: reading and writing it through the
 * engine, the board's entry state, and its migration description.
 */
#include "qemu/osdep.h"
#include "cpu-internal.h"
#include "sysemu/cpus.h"

#define MSR_EFER 0xc0000080

static const int gpr_ids[CPU_NB_REGS] = {
    [R_EAX] = UC_X86_REG_RAX, [R_ECX] = UC_X86_REG_RCX,
    [R_EDX] = UC_X86_REG_RDX, [R_EBX] = UC_X86_REG_RBX,
    [R_ESP] = UC_X86_REG_RSP, [R_EBP] = UC_X86_REG_RBP,
    [R_ESI] = UC_X86_REG_RSI, [R_EDI] = UC_X86_REG_RDI,
    [R_R8] = UC_X86_REG_R8,   [R_R9] = UC_X86_REG_R9,
    [R_R10] = UC_X86_REG_R10, [R_R11] = UC_X86_REG_R11,
    [R_R12] = UC_X86_REG_R12, [R_R13] = UC_X86_REG_R13,
    [R_R14] = UC_X86_REG_R14, [R_R15] = UC_X86_REG_R15,
};

static uint64_t reg_read64(uc_engine *uc, int id)
{
    uint64_t v = 0;
    uc_reg_read(uc, id, &v);
    return v;
}

void cpu_get_regs(CPUState *cpu, X86CPURegs *regs)
{
    uc_engine *uc = cpu->uc;

    memset(regs, 0, sizeof(*regs));
    for (int i = 0; i < CPU_NB_REGS; i++) {
        regs->regs[i] = reg_read64(uc, gpr_ids[i]);
    }
    regs->rip = reg_read64(uc, UC_X86_REG_RIP);
    regs->rflags = reg_read64(uc, UC_X86_REG_RFLAGS);
    regs->cs = reg_read64(uc, UC_X86_REG_CS);
    regs->ds = reg_read64(uc, UC_X86_REG_DS);
    regs->es = reg_read64(uc, UC_X86_REG_ES);
    regs->fs = reg_read64(uc, UC_X86_REG_FS);
    regs->gs = reg_read64(uc, UC_X86_REG_GS);
    regs->ss = reg_read64(uc, UC_X86_REG_SS);
    regs->fs_base = reg_read64(uc, UC_X86_REG_FS_BASE);
    regs->gs_base = reg_read64(uc, UC_X86_REG_GS_BASE);
    regs->cr0 = reg_read64(uc, UC_X86_REG_CR0);
    regs->cr2 = reg_read64(uc, UC_X86_REG_CR2);
    regs->cr3 = reg_read64(uc, UC_X86_REG_CR3);
    regs->cr4 = reg_read64(uc, UC_X86_REG_CR4);
    uc_x86_msr efer = { .rid = MSR_EFER };
    uc_reg_read(uc, UC_X86_REG_MSR, &efer);
    regs->efer = efer.value;
    regs->mxcsr = reg_read64(uc, UC_X86_REG_MXCSR);
    for (int i = 0; i < 16; i++) {
        uc_reg_read(uc, UC_X86_REG_XMM0 + i, regs->xmm[i]);
    }
}

typedef struct RegWriter {
    CPUState *cpu;
    Error **errp;
    bool ok;
} RegWriter;

static void reg_write(RegWriter *w, int id, const void *value,
                      const char *name)
{
    if (!w->ok) {
        return;
    }
    uc_err err = uc_reg_write(w->cpu->uc, id, value);
    if (err != UC_ERR_OK) {
        error_setg(w->errp, "vCPU %d: cannot set %s: %s",
                   w->cpu->index, name, uc_strerror(err));
        w->ok = false;
    }
}

/*
 * Control and segment registers change the engine's mode when written, and
 * loading a selector checks it against a descriptor table that flat mode
 * does not have: write them only when they differ.
 */
static void reg_write_if_changed(RegWriter *w, int id, uint64_t value,
                                 const char *name)
{
    if (reg_read64(w->cpu->uc, id) != value) {
        reg_write(w, id, &value, name);
    }
}

bool cpu_set_regs(CPUState *cpu, const X86CPURegs *regs, Error **errp)
{
    static const char *const gpr_names[CPU_NB_REGS] = {
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    };
    RegWriter w = { .cpu = cpu, .errp = errp, .ok = true };

    uc_x86_msr efer = { .rid = MSR_EFER };
    uc_reg_read(cpu->uc, UC_X86_REG_MSR, &efer);
    if (efer.value != regs->efer) {
        efer.value = regs->efer;
        reg_write(&w, UC_X86_REG_MSR, &efer, "efer");
    }
    reg_write_if_changed(&w, UC_X86_REG_CR0, regs->cr0, "cr0");
    reg_write_if_changed(&w, UC_X86_REG_CR3, regs->cr3, "cr3");
    reg_write_if_changed(&w, UC_X86_REG_CR4, regs->cr4, "cr4");
    reg_write_if_changed(&w, UC_X86_REG_CS, regs->cs, "cs");
    reg_write_if_changed(&w, UC_X86_REG_DS, regs->ds, "ds");
    reg_write_if_changed(&w, UC_X86_REG_ES, regs->es, "es");
    reg_write_if_changed(&w, UC_X86_REG_FS, regs->fs, "fs");
    reg_write_if_changed(&w, UC_X86_REG_GS, regs->gs, "gs");
    reg_write_if_changed(&w, UC_X86_REG_SS, regs->ss, "ss");
    reg_write(&w, UC_X86_REG_CR2, &regs->cr2, "cr2");
    reg_write(&w, UC_X86_REG_FS_BASE, &regs->fs_base, "fs_base");
    reg_write(&w, UC_X86_REG_GS_BASE, &regs->gs_base, "gs_base");
    for (int i = 0; i < CPU_NB_REGS; i++) {
        reg_write(&w, gpr_ids[i], &regs->regs[i], gpr_names[i]);
    }
    reg_write(&w, UC_X86_REG_RFLAGS, &regs->rflags, "rflags");
    reg_write(&w, UC_X86_REG_RIP, &regs->rip, "rip");
    uint64_t mxcsr = regs->mxcsr;
    reg_write(&w, UC_X86_REG_MXCSR, &mxcsr, "mxcsr");
    for (int i = 0; i < 16; i++) {
        reg_write(&w, UC_X86_REG_XMM0 + i, regs->xmm[i], "xmm");
    }
    if (!w.ok) {
        return false;
    }
    /*
     * Guest RAM may have been rewritten under the engine (an incoming
     * stream): drop code translated from what was there before.  Only if
     * the engine ever ran: a flush clears the whole TCG code buffer,
     * which makes all of it resident.
     */
    if (cpu->has_run) {
        uc_ctl_flush_tlb(cpu->uc);
    }
    cpu_set_halted(cpu, false);
    return true;
}

bool cpu_reset_for_entry(CPUState *cpu, uint64_t entry, uint64_t ram_size,
                         unsigned nr_cpus, Error **errp)
{
    X86CPURegs regs;

    cpu_get_regs(cpu, &regs);
    memset(regs.regs, 0, sizeof(regs.regs));
    regs.rip = entry;
    regs.regs[R_EDI] = ram_size;
    regs.regs[R_ESI] = cpu->index;
    regs.regs[R_EDX] = nr_cpus;
    regs.regs[R_ESP] = CPU_ENTRY_STACK_TOP - cpu->index * CPU_ENTRY_STACK_SIZE;
    regs.rflags = 0x2;
    return cpu_set_regs(cpu, &regs, errp);
}

static void cpu_pre_save(void *opaque)
{
    CPUState *cpu = opaque;
    cpu_get_regs(cpu, &cpu->vmstate_regs);
}

static bool cpu_post_load(void *opaque, uint32_t version_id, Error **errp)
{
    CPUState *cpu = opaque;
    return cpu_set_regs(cpu, &cpu->vmstate_regs, errp);
}

#define GPR_FIELD(i, name) VMSTATE_UINT64_ELEM(regs, i, name, X86CPURegs)

static const VMStateField cpu_fields[] = {
    GPR_FIELD(R_EAX, "rax"), GPR_FIELD(R_ECX, "rcx"),
    GPR_FIELD(R_EDX, "rdx"), GPR_FIELD(R_EBX, "rbx"),
    GPR_FIELD(R_ESP, "rsp"), GPR_FIELD(R_EBP, "rbp"),
    GPR_FIELD(R_ESI, "rsi"), GPR_FIELD(R_EDI, "rdi"),
    GPR_FIELD(R_R8, "r8"), GPR_FIELD(R_R9, "r9"),
    GPR_FIELD(R_R10, "r10"), GPR_FIELD(R_R11, "r11"),
    GPR_FIELD(R_R12, "r12"), GPR_FIELD(R_R13, "r13"),
    GPR_FIELD(R_R14, "r14"), GPR_FIELD(R_R15, "r15"),
    VMSTATE_UINT64(rip, X86CPURegs),
    VMSTATE_UINT64(rflags, X86CPURegs),
    VMSTATE_UINT32(cs, X86CPURegs),
    VMSTATE_UINT32(ds, X86CPURegs),
    VMSTATE_UINT32(es, X86CPURegs),
    VMSTATE_UINT32(fs, X86CPURegs),
    VMSTATE_UINT32(gs, X86CPURegs),
    VMSTATE_UINT32(ss, X86CPURegs),
    VMSTATE_UINT64(fs_base, X86CPURegs),
    VMSTATE_UINT64(gs_base, X86CPURegs),
    VMSTATE_UINT64(cr0, X86CPURegs),
    VMSTATE_UINT64(cr2, X86CPURegs),
    VMSTATE_UINT64(cr3, X86CPURegs),
    VMSTATE_UINT64(cr4, X86CPURegs),
    VMSTATE_UINT64(efer, X86CPURegs),
    VMSTATE_UINT32(mxcsr, X86CPURegs),
    VMSTATE_BUFFER(xmm, X86CPURegs),
    VMSTATE_END_OF_LIST()
};

const VMStateDescription vmstate_cpu = {
    .name = "cpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = cpu_pre_save,
    .post_load = cpu_post_load,
    .fields = cpu_fields,
};

void *cpu_vmstate_opaque(CPUState *cpu)
{
    /* vmstate_regs is CPUState's first member: offsets line up. */
    return cpu;
}
