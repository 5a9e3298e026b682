/*
 * Loading the guest: a freestanding x86-64 ELF whose PT_LOAD segments are
 * copied to their physical addresses in guest RAM.
 */
#ifndef HW_LOADER_H
#define HW_LOADER_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct MachineState MachineState;

/* On success *entry is the ELF entry point (the first vCPU's RIP). */
bool load_elf_kernel(MachineState *ms, const char *path, uint64_t *entry,
                     Error **errp);

#endif
