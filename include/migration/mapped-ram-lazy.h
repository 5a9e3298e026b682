/*
 * mapped-ram load: a lazy restore, a block's pages brought in on first
 * touch by userfaultfd filler threads (migration/mapped-ram-lazy.c).  A
 * block being filled hangs off RAMBlock.mapped_ram_lazy; the lifecycle
 * of include/migration/mapped-ram.h (start, finish, cancel) drives it.
 */
#ifndef MIGRATION_MAPPED_RAM_LAZY_H
#define MIGRATION_MAPPED_RAM_LAZY_H

#include "migration/mapped-ram-check.h"

typedef struct MappedRamLazy MappedRamLazy;

/*
 * Set @bl's block up for a lazy restore with @threads fillers (it then
 * hangs off the block).  Returns 1 if set up, 0 if the block must be
 * read eagerly instead, -1 on error.
 */
int mapped_ram_load_lazy(MappedRamBlockLoad *bl, unsigned threads,
                         Error **errp);

/*
 * The load is over: fill the rest of the block in the background too
 * (unless a test turned the walk off).
 */
void mapped_ram_lazy_walk_start(MappedRamLazy *lz);

/* Walk now, even if a test turned the walk off. */
void mapped_ram_lazy_walk_now(MappedRamLazy *lz);

/*
 * The stream's checksums section has been read: @regions are the
 * block's region CRCs.  Regions filled so far (and those that hold no
 * data) are compared now, an error naming the first that differs; every
 * later fill is compared before it enters the block.
 */
bool mapped_ram_lazy_expect(MappedRamLazy *lz, const uint32_t *regions,
                            uint64_t nregions, Error **errp);

/*
 * Stop the fillers where they are (@quit) or wait until the block is
 * whole, then free everything.
 */
void mapped_ram_lazy_free(MappedRamLazy *lz, bool quit);

#endif
