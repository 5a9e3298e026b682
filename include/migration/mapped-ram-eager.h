/*
 * mapped-ram load: an eager restore, every present page read into guest
 * RAM before the guest starts, by several threads
 * (migration/mapped-ram-eager.c).
 */
#ifndef MIGRATION_MAPPED_RAM_EAGER_H
#define MIGRATION_MAPPED_RAM_EAGER_H

#include "migration/mapped-ram-check.h"

/* Guest RAM [offset, +len) of @rb reads as zero afterwards. */
void mapped_ram_zero_range(RAMBlock *rb, uint64_t offset, uint64_t len);

/* Read @bl's pages into its block, @threads readers (this one included). */
bool mapped_ram_load_eager(MappedRamBlockLoad *bl, unsigned threads,
                           Error **errp);

#endif
