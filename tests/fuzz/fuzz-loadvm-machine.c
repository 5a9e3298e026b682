/*
 * Fuzz target: the stream loader on hostile input as snapvm -incoming
 * runs it, into a machine: qemu_loadvm_state() writes RAM pages, vCPU
 * registers and device state of the machine as it goes, where
 * fuzz-loadvm only inspects.  A refusal must come with a message, and the
 * machine must keep its shape (RAM blocks, vCPUs) whatever the stream
 * said.
 *
 * Each input is loaded into three machines, one per layout of the seeds
 * (tests/fuzz/corpus/loadvm): 2 MiB with one vCPU, 2 MiB with two, and
 * 4 MiB in two RAM blocks (anonymous "m0", memfd "m1").  A stream for
 * another layout is refused at its RAM section, cheaply.  The machines
 * are made once per process and reused: a failed load leaves whatever
 * it wrote, as it would in snapvm before the process exits.
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "fuzz-targets.h"

static const MemoryBackendConfig two_nodes[] = {
    { .id = "m0", .kind = RAM_BACKEND_ANON, .size = 2 * MiB },
    { .id = "m1", .kind = RAM_BACKEND_MEMFD, .size = 2 * MiB },
};

static const MachineConfig layouts[] = {
    { .ram_size = 2 * MiB, .smp = 1 },
    { .ram_size = 2 * MiB, .smp = 2 },
    { .ram_size = 4 * MiB, .smp = 1, .numa_nodes = two_nodes,
      .nr_numa_nodes = G_N_ELEMENTS(two_nodes) },
};

static MachineState *machines[G_N_ELEMENTS(layouts)];

/* Whether @ms took the whole stream. */
static bool load_into(MachineState *ms, const uint8_t *data, size_t size)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    unsigned blocks = machine_ram_block_count(ms);
    unsigned cpus = machine_cpu_count(ms);
    uint64_t ram = machine_ram_size(ms);
    Error *err = NULL;
    bool ok;

    g_byte_array_append(buf, data, size);
    QEMUFile *f = qemu_file_new_input(mig_channel_new_buffer(buf));
    ok = qemu_loadvm_state(f, ms, &err);
    if (!ok) {
        g_assert(err && *error_get_pretty(err));
        error_free(err);
    } else {
        g_assert(!err);
    }
    qemu_file_abort(f);
    g_assert_cmpuint(machine_ram_block_count(ms), ==, blocks);
    g_assert_cmpuint(machine_cpu_count(ms), ==, cpus);
    g_assert_cmpuint(machine_ram_size(ms), ==, ram);
    return ok;
}

unsigned fuzz_loadvm_machine_count(const uint8_t *data, size_t size)
{
    unsigned loaded = 0;

    for (unsigned i = 0; i < G_N_ELEMENTS(layouts); i++) {
        if (!machines[i]) {
            machines[i] = machine_create(&layouts[i], &error_abort);
        }
        loaded += load_into(machines[i], data, size);
    }
    return loaded;
}

int fuzz_loadvm_machine_one(const uint8_t *data, size_t size)
{
    fuzz_loadvm_machine_count(data, size);
    return 0;
}

#ifdef SNAPVM_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_loadvm_machine_one(data, size);
}
#endif
