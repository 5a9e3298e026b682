/*
 * mapped-ram load without a machine: what snapvm-img reads
 * (migration/mapped-ram-inspect.c).
 */
#ifndef MIGRATION_MAPPED_RAM_INSPECT_H
#define MIGRATION_MAPPED_RAM_INSPECT_H

#include "migration/mapped-ram-check.h"

/*
 * Read and check every present page of @bl, count them into @info and
 * @sum and hand each to @insp->ram_page (if any).
 */
bool mapped_ram_inspect(MappedRamBlockLoad *bl, const StreamInspector *insp,
                        unsigned index, StreamRAMBlockInfo *info,
                        StreamSummary *sum, Error **errp);

#endif
