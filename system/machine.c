/*
 * The machine: guest RAM blocks, vCPUs, the board's devices, and the
 * registry of their migratable state.
 */
#include "qemu/osdep.h"
#include "machine-internal.h"
#include "hw/board.h"
#include "hw/loader.h"
#include "hw/serial.h"
#include "sysemu/cpus.h"
#include "sysemu/hostmem.h"

/* Room below 1 MiB for the guest and the vCPU stacks, and some above. */
#define MACHINE_MIN_RAM_SIZE (2 * MiB)

static bool machine_check_config(const MachineConfig *cfg, uint64_t *ram_size,
                                 Error **errp)
{
    uint64_t size = cfg->ram_size;
    unsigned smp = cfg->smp ? cfg->smp : 1;

    if (cfg->nr_numa_nodes) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < cfg->nr_numa_nodes; i++) {
            sum += cfg->numa_nodes[i].size;
        }
        if (size && sum != size) {
            error_setg(errp, "total memory for NUMA nodes (0x%" PRIx64 ") "
                       "should equal RAM size (0x%" PRIx64 ")", sum, size);
            return false;
        }
        size = sum;
    } else if (!size) {
        size = MACHINE_DEFAULT_RAM_SIZE;
    }
    if (size < MACHINE_MIN_RAM_SIZE || size > MACHINE_MAX_RAM_SIZE) {
        error_setg(errp, "RAM size %" PRIu64 " MiB is out of range: 2 MiB "
                   "to 64 GiB", size / MiB);
        return false;
    }
    if (smp > MACHINE_MAX_CPUS) {
        error_setg(errp, "%u vCPUs requested, this machine supports at "
                   "most %d", smp, MACHINE_MAX_CPUS);
        return false;
    }
    *ram_size = size;
    return true;
}

static bool machine_create_ram(MachineState *ms, const MachineConfig *cfg,
                               Error **errp)
{
    MemoryBackendConfig pc_ram = {
        .id = "pc.ram",
        .kind = RAM_BACKEND_ANON,
        .size = ms->ram_size,
    };
    const MemoryBackendConfig *nodes = cfg->nr_numa_nodes ? cfg->numa_nodes
                                                          : &pc_ram;
    unsigned nr = cfg->nr_numa_nodes ? cfg->nr_numa_nodes : 1;
    uint64_t offset = 0;

    ms->ram_blocks = g_new0(RAMBlock *, nr);
    for (unsigned i = 0; i < nr; i++) {
        if (machine_ram_block_by_name(ms, nodes[i].id)) {
            error_setg(errp, "memory backend '%s' is used twice", nodes[i].id);
            return false;
        }
        RAMBlock *rb = ram_block_new(&nodes[i], errp);
        if (!rb) {
            return false;
        }
        rb->offset = offset;
        offset += rb->used_length;
        ms->ram_blocks[ms->nr_ram_blocks++] = rb;
    }
    return true;
}

static bool machine_create_cpus(MachineState *ms, unsigned smp,
                                const char *kernel, Error **errp)
{
    uint64_t entry = 0;

    if (kernel && !load_elf_kernel(ms, kernel, &entry, errp)) {
        return false;
    }
    ms->cpus = g_new0(CPUState *, smp);
    for (unsigned i = 0; i < smp; i++) {
        CPUState *cpu = cpu_create(ms, i, errp);
        if (!cpu) {
            return false;
        }
        ms->cpus[ms->nr_cpus++] = cpu;
        if (kernel) {
            if (!cpu_reset_for_entry(cpu, entry, ms->ram_size, smp, errp)) {
                return false;
            }
        } else {
            cpu_set_halted(cpu, true);
        }
    }
    return true;
}

MachineState *machine_create(const MachineConfig *cfg, Error **errp)
{
    uint64_t ram_size;

    if (!machine_check_config(cfg, &ram_size, errp)) {
        return NULL;
    }
    MachineState *ms = g_new0(MachineState, 1);
    g_mutex_init(&ms->run_lock);
    g_mutex_init(&ms->request_lock);
    ms->runstate = RUN_STATE_PRELAUNCH;
    ms->ram_size = ram_size;
    ms->name = g_strdup(cfg->name);
    ms->vmstate = vmstate_registry_new();
    ms->board = board_new(ms);

    ms->serial = serial_new(cfg->serial, errp);
    if (!ms->serial ||
        !machine_create_ram(ms, cfg, errp) ||
        !machine_create_cpus(ms, cfg->smp ? cfg->smp : 1, cfg->kernel,
                             errp)) {
        machine_free(ms);
        return NULL;
    }

    /* Section order in a stream: CPUs, then devices, then the board. */
    for (unsigned i = 0; i < ms->nr_cpus; i++) {
        vmstate_register(ms->vmstate, i, &vmstate_cpu,
                         cpu_vmstate_opaque(ms->cpus[i]));
    }
    vmstate_register(ms->vmstate, 0, &vmstate_serial, ms->serial);
    vmstate_register(ms->vmstate, 0, &vmstate_board, ms->board);
    g_info("machine: %" PRIu64 " MiB in %u RAM block(s), %u vCPU(s)",
           ms->ram_size / MiB, ms->nr_ram_blocks, ms->nr_cpus);
    return ms;
}

void machine_free(MachineState *ms)
{
    if (!ms) {
        return;
    }
    runstate_cancel_requests(ms);
    /* vCPUs first: they run on the RAM and call into the devices. */
    for (unsigned i = 0; i < ms->nr_cpus; i++) {
        cpu_destroy(ms->cpus[i]);
    }
    for (unsigned i = 0; i < ms->nr_ram_blocks; i++) {
        ram_block_free(ms->ram_blocks[i]);
    }
    serial_free(ms->serial);
    board_free(ms->board);
    vmstate_registry_free(ms->vmstate);
    g_free(ms->cpus);
    g_free(ms->ram_blocks);
    g_free(ms->name);
    g_mutex_clear(&ms->run_lock);
    g_mutex_clear(&ms->request_lock);
    g_free(ms);
}

unsigned machine_ram_block_count(MachineState *ms)
{
    return ms->nr_ram_blocks;
}

RAMBlock *machine_ram_block(MachineState *ms, unsigned index)
{
    g_assert(index < ms->nr_ram_blocks);
    return ms->ram_blocks[index];
}

RAMBlock *machine_ram_block_by_name(MachineState *ms, const char *idstr)
{
    for (unsigned i = 0; i < ms->nr_ram_blocks; i++) {
        if (!strcmp(ms->ram_blocks[i]->idstr, idstr)) {
            return ms->ram_blocks[i];
        }
    }
    return NULL;
}

uint64_t machine_ram_size(MachineState *ms)
{
    return ms->ram_size;
}

unsigned machine_cpu_count(MachineState *ms)
{
    return ms->nr_cpus;
}

CPUState *machine_cpu(MachineState *ms, unsigned index)
{
    g_assert(index < ms->nr_cpus);
    return ms->cpus[index];
}

SerialState *machine_serial(MachineState *ms)
{
    return ms->serial;
}

const char *machine_name(MachineState *ms)
{
    return ms->name;
}

VMStateRegistry *machine_vmstate(MachineState *ms)
{
    return ms->vmstate;
}

static RAMBlock *machine_ram_block_at(MachineState *ms, uint64_t gpa)
{
    for (unsigned i = 0; i < ms->nr_ram_blocks; i++) {
        if (ramblock_contains_gpa(ms->ram_blocks[i], gpa)) {
            return ms->ram_blocks[i];
        }
    }
    return NULL;
}

void *machine_gpa_to_host(MachineState *ms, uint64_t gpa, uint64_t len)
{
    RAMBlock *rb = machine_ram_block_at(ms, gpa);
    uint64_t off;

    if (!rb) {
        return NULL;
    }
    off = gpa - rb->offset;
    if (len > rb->used_length - off) {
        return NULL;
    }
    return rb->host + off;
}

/* Walk [gpa, gpa + len) block by block, copying to or from @buf. */
static bool machine_memory_rw(MachineState *ms, uint64_t gpa, uint8_t *buf,
                              uint64_t len, bool is_write, Error **errp)
{
    if (gpa > ms->ram_size || ms->ram_size - gpa < len) {
        error_setg(errp, "guest physical range 0x%" PRIx64 "+0x%" PRIx64
                   " is outside RAM (0x%" PRIx64 " bytes)",
                   gpa, len, ms->ram_size);
        return false;
    }
    while (len) {
        /* The blocks tile [0, ram_size), so this cannot fail. */
        RAMBlock *rb = machine_ram_block_at(ms, gpa);
        uint64_t off = gpa - rb->offset;
        uint64_t chunk = MIN(len, rb->used_length - off);

        if (is_write) {
            memcpy(rb->host + off, buf, chunk);
        } else {
            memcpy(buf, rb->host + off, chunk);
        }
        gpa += chunk;
        buf += chunk;
        len -= chunk;
    }
    return true;
}

bool machine_memory_read(MachineState *ms, uint64_t gpa, void *buf,
                         uint64_t len, Error **errp)
{
    return machine_memory_rw(ms, gpa, buf, len, false, errp);
}

bool machine_memory_write(MachineState *ms, uint64_t gpa, const void *buf,
                          uint64_t len, Error **errp)
{
    return machine_memory_rw(ms, gpa, (uint8_t *)buf, len, true, errp);
}
