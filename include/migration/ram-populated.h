/*
 * Which guest pages hold data.  A page that was never populated reads as
 * zero; sending it as a zero marker without touching it keeps a snapshot
 * of a large, mostly idle guest from populating (and so allocating) its
 * RAM, which a read of an unpopulated memfd or hugetlbfs page would do.
 */
#ifndef MIGRATION_RAM_POPULATED_H
#define MIGRATION_RAM_POPULATED_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"

typedef struct RamPopulatedReader RamPopulatedReader;

RamPopulatedReader *ram_populated_reader_new(Error **errp);
void ram_populated_reader_free(RamPopulatedReader *r);

/*
 * For pages [first_page, first_page + npages) of @rb, set out[i] to true
 * if page first_page + i may hold data (present or swapped in our page
 * tables, or backed by data in the block's file), false if it is certainly
 * zero.  Errs on the side of "may hold data".  @npages <= 512.
 */
bool ram_populated_read(RamPopulatedReader *r, RAMBlock *rb,
                        uint64_t first_page, unsigned npages, bool *out,
                        Error **errp);

/*
 * Mark in @map (one bit per page of @rb, cleared first) every page that
 * is present or swapped in our page tables, with PAGEMAP_SCAN: one ioctl
 * that returns ranges, cheap enough for a guest's pause (a fully
 * populated 1 GiB of huge pages is one range).  Anonymous memory only:
 * data of a file or memfd need not be mapped to exist.  Fails with
 * ENOTTY / EINVAL before Linux 6.7; the caller then has to do without.
 */
bool ram_populated_scan(RamPopulatedReader *r, RAMBlock *rb,
                        unsigned long *map, Error **errp);

/* Whether PAGEMAP_SCAN works here (SNAPVM_TEST_NO_PAGEMAP_SCAN=1: no). */
bool ram_populated_scan_supported(RamPopulatedReader *r);

#endif
