/*
 * mapped-ram load: one block's header and bitmap, read and checked
 * against the file (migration/mapped-ram-check.c).  The state of a block
 * being loaded is shared by the eager, lazy and inspect readers.
 */
#ifndef MIGRATION_MAPPED_RAM_CHECK_H
#define MIGRATION_MAPPED_RAM_CHECK_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"
#include "migration/checksums.h"
#include "migration/mapped-ram.h"

/* One eager read: large enough to stream, small enough to share out. */
#define MAPPED_RAM_READ_SLICE   (8 * MiB)
#define MAPPED_RAM_READ_PAGES   (MAPPED_RAM_READ_SLICE / TARGET_PAGE_SIZE)

typedef struct MappedRamRange {
    uint64_t offset;            /* in the block */
    uint64_t length;
} MappedRamRange;

typedef struct MappedRamBlockLoad {
    MigChannel *ch;
    RAMBlock *rb;
    const char *idstr;
    MappedRamBlockLayout layout;
    unsigned long *bitmap;
    uint64_t pages;
    /*
     * The pages' CRCs as read, for the checksums section (eager restore
     * and inspection; a lazy restore checks its own), and the bitmap's as
     * it is in the file, extending that of the blocks before it.
     */
    PageCrcs *page_crcs;
    uint32_t bitmaps_crc;
} MappedRamBlockLoad;

/*
 * Read the header at the stream's position into @bl->layout and check
 * it against the block and the file's size.
 */
bool mapped_ram_read_header(QEMUFile *f, MappedRamBlockLoad *bl,
                            Error **errp);
/* Read @bl's bitmap (host order, owned by @bl); no bit past its pages. */
bool mapped_ram_read_bitmap(MappedRamBlockLoad *bl, Error **errp);
/* The runs of present pages, in order; false if there are more than @max. */
bool mapped_ram_runs(MappedRamBlockLoad *bl, GArray *runs, unsigned max);
/* Set @errp: @page is marked present but its place holds no data. */
void mapped_ram_error_present(MappedRamBlockLoad *bl, uint64_t page,
                              Error **errp);
/*
 * Pages @first.. (@npages, read into @data) all hold data; their CRCs go
 * to @bl->page_crcs.
 */
bool mapped_ram_check_present(MappedRamBlockLoad *bl, const uint8_t *data,
                              uint64_t first, uint64_t npages, Error **errp);

#endif
