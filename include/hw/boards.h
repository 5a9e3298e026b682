/*
 * The machine: guest RAM, vCPUs, the board's devices and run state.  There
 * is one per process, created by main() and passed to whoever needs it;
 * nothing reaches it through a global.
 */
#ifndef HW_BOARDS_H
#define HW_BOARDS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"
#include "hw/core/cpu.h"
#include "sysemu/runstate.h"
#include "migration/vmstate.h"

/* The machine type written into a stream's configuration section. */
#define SNAPVM_MACHINE_TYPE "snapvm-x86_64"

typedef struct SerialState SerialState;
typedef struct MachineState MachineState;

/* Iterate over a machine's RAMBlocks in guest physical address order. */
#define RAMBLOCK_FOREACH(ms, rb) \
    for (unsigned _rb_i = 0; \
         _rb_i < machine_ram_block_count(ms) && \
         ((rb) = machine_ram_block(ms, _rb_i), true); _rb_i++)

unsigned machine_ram_block_count(MachineState *ms);
RAMBlock *machine_ram_block(MachineState *ms, unsigned index);
RAMBlock *machine_ram_block_by_name(MachineState *ms, const char *idstr);
uint64_t machine_ram_size(MachineState *ms);   /* sum of used_length */

unsigned machine_cpu_count(MachineState *ms);
CPUState *machine_cpu(MachineState *ms, unsigned index);

SerialState *machine_serial(MachineState *ms);
const char *machine_name(MachineState *ms);    /* -name, or NULL */

/* The device states that travel in a stream, in section order. */
VMStateRegistry *machine_vmstate(MachineState *ms);

/*
 * Host pointer for [gpa, gpa + len) if it lies inside one RAMBlock,
 * else NULL.
 */
void *machine_gpa_to_host(MachineState *ms, uint64_t gpa, uint64_t len);

#endif
