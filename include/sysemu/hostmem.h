/*
 * Guest RAM backends: a RAMBlock's host memory, reserved but not touched,
 * so that a 64 GiB guest starts at once and costs only what it writes.
 */
#ifndef SYSEMU_HOSTMEM_H
#define SYSEMU_HOSTMEM_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"
#include "hw/machine-config.h"

/* The RAMBlock's offset is left 0 for the caller to place it. */
RAMBlock *ram_block_new(const MemoryBackendConfig *cfg, Error **errp);
void ram_block_free(RAMBlock *rb);

#endif
