/*
 * CRC32C: ISA-L computes, we fold (include/qemu/crc32c.h).
 *
 * Why folding works: the CRC register is linear over GF(2) in the register
 * and the data together, so the register after a page P, starting from
 * register r, is shift(r) ^ raw(P), where shift() is what the register
 * becomes after TARGET_PAGE_SIZE zero bytes and raw(P) is P's CRC from a
 * zero register.  shift() is linear in r, so four tables of 256 entries
 * (one per byte of r) hold it exactly.
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include <isa-l/crc.h>

static uint32_t page_shift[4][256];

/*
 * Built at start-up, not on first use: the fork method's child folds
 * region CRCs, and a lazily built table would need a lock there (see
 * migration/bg-fork.c, "what the child may do").
 */
static void __attribute__((constructor)) crc32c_build_page_shift(void)
{
    static const uint8_t zeros[TARGET_PAGE_SIZE];
    uint32_t basis[32];

    for (int bit = 0; bit < 32; bit++) {
        basis[bit] = crc32_iscsi((uint8_t *)zeros, sizeof(zeros),
                                 1u << bit);
    }
    for (int byte = 0; byte < 4; byte++) {
        for (unsigned v = 0; v < 256; v++) {
            uint32_t s = 0;

            for (int bit = 0; bit < 8; bit++) {
                if (v & (1u << bit)) {
                    s ^= basis[byte * 8 + bit];
                }
            }
            page_shift[byte][v] = s;
        }
    }
}

uint32_t crc32c_extend(uint32_t crc, const void *buf, size_t len)
{
    uint32_t r = ~crc;

    /* crc32_iscsi takes an int length: feed it in slices. */
    while (len) {
        size_t n = MIN(len, (size_t)1 << 30);

        r = crc32_iscsi((uint8_t *)buf, n, r);
        buf = (const uint8_t *)buf + n;
        len -= n;
    }
    return ~r;
}

uint32_t crc32c(const void *buf, size_t len)
{
    return crc32c_extend(0, buf, len);
}

uint32_t crc32c_page_raw(const void *page)
{
    return page ? crc32_iscsi((uint8_t *)page, TARGET_PAGE_SIZE, 0) : 0;
}

uint32_t crc32c_region_add_page(uint32_t region, uint32_t page_raw)
{
    return page_shift[0][region & 0xff] ^
           page_shift[1][(region >> 8) & 0xff] ^
           page_shift[2][(region >> 16) & 0xff] ^
           page_shift[3][region >> 24] ^ page_raw;
}
