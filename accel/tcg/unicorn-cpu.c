/*
 * A vCPU: one thread running one Unicorn x86-64 engine on the machine's
 * guest RAM, which every engine maps at the same host memory.
 *
 * Only IN and OUT are hooked (UC_HOOK_INSN): a per-instruction or
 * per-block hook would cost the guest most of its speed.
 */
#include "qemu/osdep.h"
#include "cpu-internal.h"
#include "hw/boards.h"
#include "hw/ioport.h"
#include "hw/machine-config.h"
#include "sysemu/cpus.h"

#include <sys/syscall.h>

/* How often a pauser re-checks a vCPU that has not acknowledged. */
#define CPU_PAUSE_POLL_US 200

/* Never a guest RIP: the engine stops only when asked to. */
#define CPU_RUN_FOREVER UINT64_MAX

/*
 * Why pausing goes through a block hook: Unicorn 2.0.1 also checks for an
 * exit request right after guest stores, in the middle of a translation
 * block, and then leaves RIP at the start of the block with the store
 * already done; a uc_emu_stop() from another thread can land there, and
 * the resumed guest repeats the store (a-b-sweep showed pages incremented
 * twice, unicorn-engine/unicorn#1355).  Stopping from a block hook stops
 * before the block's first instruction: RIP and every register and byte
 * of memory agree.  It costs one call per executed block (measured in
 * docs/devel/machine.md).
 */
static void cpu_block_hook(uc_engine *uc, uint64_t address, uint32_t size,
                           void *opaque)
{
    CPUState *cpu = opaque;

    if (g_atomic_int_get(&cpu->pause_requested)) {
        uc_emu_stop(uc);
    }
}

static uint32_t cpu_insn_in(uc_engine *uc, uint32_t port, int size,
                            void *opaque)
{
    CPUState *cpu = opaque;
    return board_ioport_read(cpu->machine, port, size);
}

static void cpu_insn_out(uc_engine *uc, uint32_t port, int size,
                         uint32_t value, void *opaque)
{
    CPUState *cpu = opaque;

    board_ioport_write(cpu->machine, port, size, value);
    if (machine_shutdown_requested(cpu->machine, NULL)) {
        /* debug-exit: this vCPU runs no further guest code. */
        uc_emu_stop(uc);
    }
}

static void cpu_report_engine_error(CPUState *cpu, uc_err err)
{
    uint64_t rip = 0;

    uc_reg_read(cpu->uc, UC_X86_REG_RIP, &rip);
    error_report("vCPU %d: guest stopped by the CPU engine: %s at "
                 "RIP=0x%016" PRIx64, cpu->index, uc_strerror(err), rip);
    g_info("vCPU %d: engine error %d at RIP=0x%" PRIx64,
           cpu->index, err, rip);
}

/*
 * The engine returned without error while nobody was pausing us: the
 * guest executed hlt (Unicorn returns just after it) or wrote to
 * debug-exit.  Anything else would be a spurious return, and the guest
 * just goes on.
 */
static bool cpu_stopped_itself(CPUState *cpu)
{
    uint64_t rip;
    uint8_t prev = 0;

    if (machine_shutdown_requested(cpu->machine, NULL)) {
        return true;
    }
    uc_reg_read(cpu->uc, UC_X86_REG_RIP, &rip);
    return rip > 0 && uc_mem_read(cpu->uc, rip - 1, &prev, 1) == UC_ERR_OK &&
           prev == 0xf4;
}

static gpointer cpu_thread_fn(gpointer opaque)
{
    CPUState *cpu = opaque;

    g_mutex_lock(&cpu->lock);
    cpu->thread_id = syscall(SYS_gettid);
    g_cond_broadcast(&cpu->cond);

    while (!cpu->quit) {
        if (!cpu->should_run || cpu->halted || cpu->failed) {
            g_cond_wait(&cpu->cond, &cpu->lock);
            continue;
        }
        cpu->in_engine = true;
        cpu->has_run = true;
        g_mutex_unlock(&cpu->lock);

        uint64_t rip;
        uc_reg_read(cpu->uc, UC_X86_REG_RIP, &rip);
        uc_err err = uc_emu_start(cpu->uc, rip, CPU_RUN_FOREVER, 0, 0);

        g_mutex_lock(&cpu->lock);
        cpu->in_engine = false;
        if (err != UC_ERR_OK) {
            cpu->failed = true;
            cpu_report_engine_error(cpu, err);
            machine_request_internal_error(cpu->machine);
        } else if (cpu->should_run && !cpu->quit && cpu_stopped_itself(cpu)) {
            /*
             * With no interrupts to wake it, a halted vCPU sleeps until
             * its registers are set again.
             */
            cpu->halted = true;
        }
        g_cond_broadcast(&cpu->cond);
    }
    g_mutex_unlock(&cpu->lock);
    return NULL;
}

CPUState *cpu_create(MachineState *ms, int index, Error **errp)
{
    CPUState *cpu = g_new0(CPUState, 1);
    RAMBlock *rb;
    uc_err err;

    cpu->machine = ms;
    cpu->index = index;
    g_mutex_init(&cpu->lock);
    g_cond_init(&cpu->cond);

    err = uc_open(UC_ARCH_X86, UC_MODE_64, &cpu->uc);
    if (err != UC_ERR_OK) {
        error_setg(errp, "vCPU %d: cannot create the CPU engine: %s",
                   index, uc_strerror(err));
        goto fail;
    }
    /*
     * Unicorn 2.0.1 offers no uc_ctl to size the TCG code buffer (that
     * came in 2.1); its buffer is reserved address space, and only what
     * translation touches becomes resident.
     */
    RAMBLOCK_FOREACH(ms, rb) {
        err = uc_mem_map_ptr(cpu->uc, rb->offset, rb->used_length,
                             UC_PROT_ALL, rb->host);
        if (err != UC_ERR_OK) {
            error_setg(errp, "vCPU %d: cannot map RAM block '%s': %s",
                       index, rb->idstr, uc_strerror(err));
            goto fail;
        }
    }
    err = uc_hook_add(cpu->uc, &cpu->hook_in, UC_HOOK_INSN, cpu_insn_in,
                      cpu, 1, 0, UC_X86_INS_IN);
    if (err == UC_ERR_OK) {
        err = uc_hook_add(cpu->uc, &cpu->hook_out, UC_HOOK_INSN,
                          cpu_insn_out, cpu, 1, 0, UC_X86_INS_OUT);
    }
    if (err == UC_ERR_OK) {
        err = uc_hook_add(cpu->uc, &cpu->hook_block, UC_HOOK_BLOCK,
                          cpu_block_hook, cpu, 1, 0);
    }
    if (err != UC_ERR_OK) {
        error_setg(errp, "vCPU %d: cannot install hooks: %s",
                   index, uc_strerror(err));
        goto fail;
    }

    char *thread_name = g_strdup_printf("CPU %d/TCG", index);
    cpu->thread = g_thread_new(thread_name, cpu_thread_fn, cpu);
    g_free(thread_name);
    g_mutex_lock(&cpu->lock);
    while (!cpu->thread_id) {
        g_cond_wait(&cpu->cond, &cpu->lock);
    }
    g_mutex_unlock(&cpu->lock);
    return cpu;

fail:
    if (cpu->uc) {
        uc_close(cpu->uc);
    }
    g_mutex_clear(&cpu->lock);
    g_cond_clear(&cpu->cond);
    g_free(cpu);
    return NULL;
}

void cpu_pause_request(CPUState *cpu)
{
    g_mutex_lock(&cpu->lock);
    cpu->should_run = false;
    /*
     * A flag, not uc_emu_stop(): it cannot be lost if uc_emu_start() has
     * not begun yet, since the engine's first block sees it.
     */
    g_atomic_int_set(&cpu->pause_requested, 1);
    g_mutex_unlock(&cpu->lock);
}

void cpu_pause_wait(CPUState *cpu)
{
    g_mutex_lock(&cpu->lock);
    g_assert(!cpu->should_run);
    while (cpu->in_engine) {
        /*
         * A vCPU blocked in a page fault (userfaultfd) just takes longer;
         * the wait releases @lock, which it needs to report back.  The
         * timeout only bounds the cost of a missed wake-up.
         */
        gint64 deadline = g_get_monotonic_time() + CPU_PAUSE_POLL_US;
        g_cond_wait_until(&cpu->cond, &cpu->lock, deadline);
    }
    g_mutex_unlock(&cpu->lock);
}

void cpu_resume(CPUState *cpu)
{
    g_mutex_lock(&cpu->lock);
    g_atomic_int_set(&cpu->pause_requested, 0);
    cpu->should_run = true;
    g_cond_broadcast(&cpu->cond);
    g_mutex_unlock(&cpu->lock);
}

void cpu_set_halted(CPUState *cpu, bool halted)
{
    g_mutex_lock(&cpu->lock);
    cpu->halted = halted;
    if (!halted) {
        cpu->failed = false;
    }
    g_cond_broadcast(&cpu->cond);
    g_mutex_unlock(&cpu->lock);
}

void cpu_destroy(CPUState *cpu)
{
    if (!cpu) {
        return;
    }
    cpu_pause_request(cpu);
    cpu_pause_wait(cpu);
    g_mutex_lock(&cpu->lock);
    cpu->quit = true;
    g_cond_broadcast(&cpu->cond);
    g_mutex_unlock(&cpu->lock);
    g_thread_join(cpu->thread);
    uc_close(cpu->uc);
    g_mutex_clear(&cpu->lock);
    g_cond_clear(&cpu->cond);
    g_free(cpu);
}

int cpu_index(const CPUState *cpu)
{
    return cpu->index;
}

int cpu_thread_id(CPUState *cpu)
{
    return cpu->thread_id;
}
