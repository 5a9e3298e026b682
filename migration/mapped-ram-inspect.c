/*
 * mapped-ram load for snapvm-img: no machine; every present page is
 * read, checked to hold data and handed to the inspector.
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "migration/channel.h"
#include "migration/mapped-ram-inspect.h"

bool mapped_ram_inspect(MappedRamBlockLoad *bl,
                               const StreamInspector *insp, unsigned index,
                               StreamRAMBlockInfo *info, StreamSummary *sum,
                               Error **errp)
{
    uint64_t present = bitmap_count_one(bl->bitmap, bl->pages);
    g_autofree uint8_t *buf = NULL;
    uint64_t start = find_next_bit(bl->bitmap, bl->pages, 0);

    info->pages += present;
    info->zero_pages += bl->pages - present;
    sum->pages += present;
    sum->zero_pages += bl->pages - present;
    /* Every present page is read and checked, with a callback or not. */
    buf = g_malloc(MAPPED_RAM_READ_SLICE);
    while (start < bl->pages) {
        uint64_t end = MIN(find_next_zero_bit(bl->bitmap, bl->pages, start),
                           start + MAPPED_RAM_READ_PAGES);
        uint64_t off = start << TARGET_PAGE_BITS;

        if (!mig_channel_pread_all(bl->ch, buf,
                                   (end - start) << TARGET_PAGE_BITS,
                                   bl->layout.pages_offset + off, errp)) {
            error_prepend(errp, "mapped-ram pages of block '%s': ",
                          bl->idstr);
            return false;
        }
        if (!mapped_ram_check_present(bl, buf, start, end - start, errp)) {
            return false;
        }
        for (uint64_t p = start; insp && insp->ram_page && p < end; p++) {
            if (!insp->ram_page(insp->opaque, info, index,
                                p << TARGET_PAGE_BITS,
                                buf + ((p - start) << TARGET_PAGE_BITS),
                                errp)) {
                return false;
            }
        }
        start = find_next_bit(bl->bitmap, bl->pages, end);
    }
    return true;
}
