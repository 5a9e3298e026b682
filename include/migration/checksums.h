/*
 * The checksums a snapshot carries (docs/interop/snapshot-format.md,
 * "Checksums"): one FULL section, "snapvm-checksums", after the device
 * sections and before EOF, described in the JSON trailer like a device so
 * that a reader that knows nothing of it (QEMU's analyze-migration.py)
 * still reads the file.  It holds CRC32Cs of:
 *   - every 2 MiB region of every RAM block, as the region is in the
 *     snapshot (built from per-page CRCs, see qemu/crc32c.h);
 *   - each device section, from its type byte to its footer;
 *   - the framing: every stream byte from offset 0 to the RAM END footer,
 *     page contents aside (header, configuration, block list, page
 *     headers and zero-page markers, mapped-ram block headers);
 *   - the mapped-ram bitmaps, in block order (0 in the stream layout);
 *   - the JSON trailer;
 *   - the section itself, up to its own CRC.
 * Every method and both layouts write it; a stream without it is one from
 * before checksums, and is read without them (saying so).
 */
#ifndef MIGRATION_CHECKSUMS_H
#define MIGRATION_CHECKSUMS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include <json-glib/json-glib.h>
#include "exec/ramblock.h"

typedef struct QEMUFile QEMUFile;

#define CHECKSUMS_SECTION_IDSTR     "snapvm-checksums"
#define CHECKSUMS_SECTION_VERSION   1
#define CHECKSUMS_ALGORITHM_CRC32C  1
#define CHECKSUMS_REGION_SIZE       (2 * MiB)
#define CHECKSUMS_REGION_PAGES      (CHECKSUMS_REGION_SIZE / TARGET_PAGE_SIZE)
/* Bounds for what a stream may claim: far above any machine of ours. */
#define CHECKSUMS_MAX_DEVICES       4096
#define CHECKSUMS_MAX_REGIONS       (1u << 20)      /* 2 TiB of RAM */

static inline uint64_t checksums_block_regions(uint64_t used_length)
{
    return DIV_ROUND_UP(used_length, CHECKSUMS_REGION_SIZE);
}

/*
 * A region's CRC32C from @page_crc, the raw CRCs of a block's pages (0 for
 * a zero page): region @region of a block of @npages pages.
 */
uint32_t checksums_region_crc(const uint32_t *page_crc, uint64_t npages,
                              uint64_t region);
/* The CRC32C of @n pages whose raw CRCs are @page_crc[0..n). */
uint32_t checksums_fold(const uint32_t *page_crc, uint64_t n);

/*
 * A loader's record of the pages' raw CRCs, for blocks whose pages may
 * arrive in any order and more than once (the last one counts).  Regions
 * get their array on their first page that is not zero, so a reader that
 * is handed a block far larger than its data does not pay for the claim.
 * Different pages may be set from different threads.
 */
typedef struct PageCrcs {
    uint64_t npages;
    uint64_t nregions;
    uint32_t **region;          /* NULL entries: all zero so far */
} PageCrcs;

void page_crcs_init(PageCrcs *pc, uint64_t npages);
void page_crcs_set(PageCrcs *pc, uint64_t page, uint32_t raw);
uint32_t page_crcs_region(const PageCrcs *pc, uint64_t region);
void page_crcs_clear(PageCrcs *pc);

/* ---- save ---- */

/* What a save gathers besides the pages' CRCs (kept in rb->page_crc). */
typedef struct SaveChecksums {
    uint32_t framing;
    uint32_t mapped_ram;
    uint32_t description;
    uint32_t *devices;          /* one per device section, in order */
    unsigned ndevices;
} SaveChecksums;

/* The section's entry in the JSON trailer's "devices". */
void checksums_describe(JsonBuilder *b, unsigned ndevices, uint64_t nregions);

/*
 * The section's body, between its header and footer.  Only puts: the
 * fork method's child calls it (migration/bg-fork.c).  The caller takes
 * the digest just before the section header, so that the last field, the
 * section's own CRC, covers the header too.
 */
void checksums_put_body(QEMUFile *f, const SaveChecksums *ck,
                        RAMBlock *const *blocks, unsigned nblocks);

/* ---- load ---- */

typedef struct StreamChecksums {
    uint64_t offset;            /* of the section's header */
    uint32_t framing;
    uint32_t mapped_ram;
    uint32_t description;
    uint32_t ndevices;
    uint32_t nregions;
    uint32_t *devices;
    uint32_t *regions;          /* every block's, in block-list order */
} StreamChecksums;

/*
 * Read the body (header already read, digest taken before it) and check
 * the section's own CRC.  @nregions: what the block list makes of it.
 */
bool checksums_get_body(QEMUFile *f, StreamChecksums *sc, uint64_t nregions,
                        Error **errp);
void stream_checksums_clear(StreamChecksums *sc);

#endif
