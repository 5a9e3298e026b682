/*
 * mapped-ram load: a block's header and bitmap, read and checked against
 * the block and the file before any page is read.
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "qemu/bitmap.h"
#include "migration/channel.h"
#include "migration/mapped-ram-check.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"

bool mapped_ram_read_header(QEMUFile *f, MappedRamBlockLoad *bl,
                                   Error **errp)
{
    uint64_t at = qemu_file_transferred(f);
    uint32_t version = qemu_get_be32(f);
    uint64_t page_size = qemu_get_be64(f);
    uint64_t bitmap_offset = qemu_get_be64(f);
    uint64_t pages_offset = qemu_get_be64(f);
    uint64_t file_size;
    MappedRamBlockLayout *l = &bl->layout;

    if (qemu_file_get_error_obj(f, errp)) {
        error_prepend(errp, "mapped-ram header of block '%s': ", bl->idstr);
        return false;
    }
    mapped_ram_block_layout(at, bl->pages << TARGET_PAGE_BITS, l);
    if (version != MAPPED_RAM_HDR_VERSION) {
        error_setg(errp, "mapped-ram header of block '%s' at offset %" PRIu64
                   ": version %u, expected %u", bl->idstr, at, version,
                   MAPPED_RAM_HDR_VERSION);
        return false;
    }
    if (page_size != TARGET_PAGE_SIZE) {
        error_setg(errp, "mapped-ram header of block '%s' at offset %" PRIu64
                   ": page size %" PRIu64 ", expected %d", bl->idstr, at + 4,
                   page_size, TARGET_PAGE_SIZE);
        return false;
    }
    /*
     * QEMU and snapvm put the bitmap right after the header and the pages
     * at the next 1 MiB; a reader needs less: a bitmap after the header,
     * pages after the bitmap, page aligned (they are mapped).
     */
    if (bitmap_offset < at + MAPPED_RAM_HDR_SIZE ||
        pages_offset < bitmap_offset + l->bitmap_size ||
        pages_offset % TARGET_PAGE_SIZE ||
        pages_offset > UINT64_MAX - l->used_length) {
        error_setg(errp, "mapped-ram header of block '%s' at offset %" PRIu64
                   ": bitmap offset %" PRIu64 " (%" PRIu64 " bytes) and "
                   "pages offset %" PRIu64 " do not fit the layout",
                   bl->idstr, at + 12, bitmap_offset, l->bitmap_size,
                   pages_offset);
        return false;
    }
    l->bitmap_offset = bitmap_offset;
    l->pages_offset = pages_offset;
    l->end = pages_offset + l->used_length;
    if (!bl->ch->ops->get_size(bl->ch, &file_size, errp)) {
        return false;
    }
    if (file_size < l->end) {
        error_setg(errp, "mapped-ram block '%s': the file ends at offset %"
                   PRIu64 ", inside the block's page area (offset %" PRIu64
                   " to %" PRIu64 "): truncated", bl->idstr, file_size,
                   l->pages_offset, l->end);
        return false;
    }
    return true;
}

bool mapped_ram_read_bitmap(MappedRamBlockLoad *bl, Error **errp)
{
    MappedRamBlockLayout *l = &bl->layout;
    size_t words = l->bitmap_size / sizeof(uint64_t);
    uint64_t *le = g_new(uint64_t, words);

    if (!mig_channel_pread_all(bl->ch, le, l->bitmap_size, l->bitmap_offset,
                               errp)) {
        error_prepend(errp, "mapped-ram bitmap of block '%s': ", bl->idstr);
        g_free(le);
        return false;
    }
    bl->bitmaps_crc = crc32c_extend(bl->bitmaps_crc, le, l->bitmap_size);
    bl->bitmap = (unsigned long *)le;
    for (size_t w = 0; w < words; w++) {
        bl->bitmap[w] = GUINT64_FROM_LE(le[w]);
    }
    if (find_next_bit(bl->bitmap, words * BITS_PER_LONG, bl->pages) <
        words * BITS_PER_LONG) {
        error_setg(errp, "mapped-ram bitmap of block '%s' at offset %" PRIu64
                   " marks pages beyond the block's %" PRIu64, bl->idstr,
                   l->bitmap_offset + bl->pages / 8, bl->pages);
        return false;
    }
    return true;
}

/* The runs of present pages, in order; false if there are more than @max. */
bool mapped_ram_runs(MappedRamBlockLoad *bl, GArray *runs,
                            unsigned max)
{
    uint64_t start = find_next_bit(bl->bitmap, bl->pages, 0);

    while (start < bl->pages) {
        uint64_t end = find_next_zero_bit(bl->bitmap, bl->pages, start);
        MappedRamRange r = { start << TARGET_PAGE_BITS,
                             (end - start) << TARGET_PAGE_BITS };

        if (runs->len == max) {
            return false;
        }
        g_array_append_val(runs, r);
        start = find_next_bit(bl->bitmap, bl->pages, end);
    }
    return true;
}

void mapped_ram_error_present(MappedRamBlockLoad *bl, uint64_t page,
                                     Error **errp)
{
    error_setg(errp, "mapped-ram bitmap of block '%s' at offset %" PRIu64
               " marks page 0x%" PRIx64 " present, but its place at offset %"
               PRIu64 " holds no data: the bitmap or the page area is "
               "corrupted", bl->idstr, bl->layout.bitmap_offset + page / 8,
               page << TARGET_PAGE_BITS,
               bl->layout.pages_offset + (page << TARGET_PAGE_BITS));
}

/*
 * snapvm never writes a zero page (it is a hole, its bit clear), so a
 * present page that reads as zero means the bitmap and the page area
 * disagree: a corrupted bitmap, or a page area that lost data.
 */
bool mapped_ram_check_present(MappedRamBlockLoad *bl,
                                     const uint8_t *data, uint64_t first,
                                     uint64_t npages, Error **errp)
{
    for (uint64_t i = 0; i < npages; i++) {
        const uint8_t *page = data + (i << TARGET_PAGE_BITS);

        if (ram_page_is_zero(page)) {
            mapped_ram_error_present(bl, first + i, errp);
            return false;
        }
        /* In the cache from the zero check. */
        if (bl->page_crcs) {
            page_crcs_set(bl->page_crcs, first + i, crc32c_page_raw(page));
        }
    }
    return true;
}
