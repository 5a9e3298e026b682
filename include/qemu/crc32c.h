/*
 * CRC32C (Castagnoli, the iSCSI CRC), for the checksums a snapshot file
 * carries (docs/interop/snapshot-format.md, "Checksums").
 *
 * The computing is ISA-L's (crc32_iscsi, which picks the fastest code this
 * CPU has: 20-30 ms per GiB of cache-hot pages here).  What is ours is the
 * folding: a region's CRC32C is built from the CRCs of its 4 KiB pages in
 * page order, whatever order the pages were saved or loaded in, so no
 * page has to be read twice.
 *
 * A "raw" CRC is the register without the standard initial value and
 * final inversion: the raw CRC of a zero page is 0, and raw CRCs of equal
 * lengths fold (crc32c_region_add_page()).
 */
#ifndef QEMU_CRC32C_H
#define QEMU_CRC32C_H

#include "qemu/osdep.h"

/* The standard CRC32C of @len bytes ("123456789" gives 0xe3069283). */
uint32_t crc32c(const void *buf, size_t len);

/* Continue a standard CRC32C: crc32c_extend(crc32c(a), b) = crc32c(a b). */
uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len);

/* Raw CRC of one TARGET_PAGE_SIZE page; NULL is a zero page (0). */
uint32_t crc32c_page_raw(const void *page);

/*
 * A region's CRC32C from its pages' raw CRCs, page after page:
 *     uint32_t r = CRC32C_REGION_INIT;
 *     for each page: r = crc32c_region_add_page(r, raw);
 *     crc = crc32c_region_final(r);
 * equals crc32c() of the region's bytes.
 */
#define CRC32C_REGION_INIT 0xffffffffu
uint32_t crc32c_region_add_page(uint32_t region, uint32_t page_raw);

static inline uint32_t crc32c_region_final(uint32_t region)
{
    return ~region;
}

#endif
