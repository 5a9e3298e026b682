/*
 * Guest RAM in a stream, the "ram" section's load side (the save side is
 * migration/ram.c): the block list against the machine, every page item,
 * the pages' CRCs, and the comparison with the checksums section.
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "hw/boards.h"
#include "migration/channel.h"
#include "migration/checksums.h"
#include "migration/mapped-ram.h"
#include "migration/mapped-ram-lazy.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"

/* Inspect mode: more blocks than any machine of ours can have. */
#define RAM_LOAD_MAX_BLOCKS 256

struct RAMLoadState {
    MachineState *ms;           /* NULL in inspect mode */
    const StreamInspector *insp;
    StreamSummary *sum;         /* sum->ram_blocks is the stream's list */
    GPtrArray *machine_blocks;  /* RAMBlock *, parallel to sum->ram_blocks */
    bool started;
    uint8_t *scratch;           /* inspect mode: one page */
    bool mapped_ram;            /* the configuration announced it */
    MappedRamLoadOptions mapped_ram_opts;

    /*
     * Per listed block, the pages' CRCs as loaded, for the checksums
     * section; a lazily restored block checks its own as it fills.
     */
    GArray *page_crcs;          /* PageCrcs, parallel to sum->ram_blocks */
    uint32_t mapped_ram_crc;    /* of the bitmaps, in block order */
};

bool ram_load_set_mapped_ram(RAMLoadState *rl, QEMUFile *f,
                             const MappedRamLoadOptions *opts, Error **errp)
{
    MigChannel *ch = qemu_file_get_channel(f);

    if (!mig_channel_is_seekable(ch)) {
        error_setg(errp, "the stream is a mapped-ram file, which is read "
                   "at fixed offsets: open it with file:, not %s",
                   ch->description);
        return false;
    }
    rl->mapped_ram = true;
    if (opts) {
        rl->mapped_ram_opts = *opts;
    }
    return true;
}

RAMLoadState *ram_load_new(MachineState *ms, const StreamInspector *insp,
                           StreamSummary *sum)
{
    RAMLoadState *rl = g_new0(RAMLoadState, 1);

    rl->ms = ms;
    rl->insp = insp;
    rl->sum = sum;
    rl->machine_blocks = g_ptr_array_new();
    rl->page_crcs = g_array_new(false, true, sizeof(PageCrcs));
    if (!ms) {
        rl->scratch = g_malloc(TARGET_PAGE_SIZE);
    }
    return rl;
}

void ram_load_free(RAMLoadState *rl)
{
    if (rl) {
        for (unsigned i = 0; i < rl->page_crcs->len; i++) {
            page_crcs_clear(&g_array_index(rl->page_crcs, PageCrcs, i));
        }
        g_array_free(rl->page_crcs, true);
        g_ptr_array_free(rl->machine_blocks, true);
        g_free(rl->scratch);
        g_free(rl);
    }
}

/* Read a length-prefixed idstr; @what names it in errors. */
static bool ram_load_idstr(QEMUFile *f, char idstr[256], const char *what,
                           Error **errp)
{
    uint64_t at = qemu_file_transferred(f);
    uint8_t len = qemu_get_byte(f);

    qemu_get_buffer(f, idstr, len);
    idstr[len] = 0;
    if (qemu_file_get_error_obj(f, errp)) {
        return false;
    }
    if (!len || strlen(idstr) != len) {
        error_setg(errp, "%s at offset %" PRIu64 " is empty or holds a NUL "
                   "byte", what, at);
        return false;
    }
    return true;
}

static int ram_load_find_block(RAMLoadState *rl, const char *idstr)
{
    for (unsigned i = 0; i < rl->sum->ram_blocks->len; i++) {
        if (!strcmp(g_array_index(rl->sum->ram_blocks, StreamRAMBlockInfo,
                                  i).idstr, idstr)) {
            return i;
        }
    }
    return -1;
}

static bool ram_load_block_list(RAMLoadState *rl, QEMUFile *f,
                                uint64_t total, uint64_t list_at,
                                Error **errp)
{
    uint64_t listed = 0;
    unsigned max = rl->ms ? machine_ram_block_count(rl->ms)
                          : RAM_LOAD_MAX_BLOCKS;
    RAMBlock *rb = NULL;

    rl->sum->ram_total = total;
    while (listed < total) {
        StreamRAMBlockInfo info = { 0 };
        uint64_t at = qemu_file_transferred(f);
        PageCrcs *pc;

        if (!ram_load_idstr(f, info.idstr, "RAM block name", errp)) {
            return false;
        }
        info.used_length = qemu_get_be64(f);
        if (qemu_file_get_error_obj(f, errp)) {
            return false;
        }
        if (ram_load_find_block(rl, info.idstr) >= 0) {
            error_setg(errp, "RAM block '%s' listed twice (offset %" PRIu64
                       ")", info.idstr, at);
            return false;
        }
        if (rl->sum->ram_blocks->len == max) {
            error_setg(errp, "RAM block '%s' at offset %" PRIu64 " is one "
                       "more than the %u this %s has", info.idstr, at, max,
                       rl->ms ? "machine" : "reader accepts");
            return false;
        }
        if (!info.used_length || info.used_length % TARGET_PAGE_SIZE ||
            info.used_length > total - listed) {
            error_setg(errp, "RAM block '%s' at offset %" PRIu64 ": size "
                       "0x%" PRIx64 " is zero, not page aligned or beyond "
                       "the total 0x%" PRIx64, info.idstr, at,
                       info.used_length, total);
            return false;
        }
        if (rl->ms) {
            rb = machine_ram_block_by_name(rl->ms, info.idstr);
            if (!rb) {
                error_setg(errp, "RAM block '%s' (offset %" PRIu64 ") does "
                           "not exist in this machine", info.idstr, at);
                return false;
            }
            if (rb->used_length != info.used_length) {
                error_setg(errp, "RAM block '%s' (offset %" PRIu64 ") has "
                           "0x%" PRIx64 " bytes in the stream but 0x%"
                           PRIx64 " in this machine", info.idstr, at,
                           info.used_length, rb->used_length);
                return false;
            }
            g_ptr_array_add(rl->machine_blocks, rb);
        }
        g_array_set_size(rl->page_crcs, rl->page_crcs->len + 1);
        pc = &g_array_index(rl->page_crcs, PageCrcs, rl->page_crcs->len - 1);
        page_crcs_init(pc, info.used_length >> TARGET_PAGE_BITS);
        if (rl->mapped_ram &&
            !mapped_ram_load_block(f, rl->ms ? rb : NULL, &rl->mapped_ram_opts,
                                   rl->insp, rl->sum->ram_blocks->len, &info,
                                   rl->sum, pc, &rl->mapped_ram_crc, errp)) {
            return false;
        }
        g_array_append_val(rl->sum->ram_blocks, info);
        listed += info.used_length;
    }
    if (rl->ms) {
        RAMBLOCK_FOREACH(rl->ms, rb) {
            if (ram_load_find_block(rl, rb->idstr) < 0) {
                error_setg(errp, "RAM block '%s' of this machine is missing "
                           "from the stream's block list at offset %" PRIu64,
                           rb->idstr, list_at);
                return false;
            }
        }
    }
    return true;
}

static bool ram_load_page(RAMLoadState *rl, QEMUFile *f, unsigned index,
                          uint64_t addr, bool zero, uint64_t at, Error **errp)
{
    StreamRAMBlockInfo *info = &g_array_index(rl->sum->ram_blocks,
                                              StreamRAMBlockInfo, index);
    PageCrcs *pc = &g_array_index(rl->page_crcs, PageCrcs, index);
    uint8_t *dst;

    if (addr >= info->used_length) {
        error_setg(errp, "page at 0x%" PRIx64 " is beyond the end of RAM "
                   "block '%s' (0x%" PRIx64 " bytes), at offset %" PRIu64,
                   addr, info->idstr, info->used_length, at);
        return false;
    }
    dst = rl->ms ? ((RAMBlock *)rl->machine_blocks->pdata[index])->host + addr
                 : rl->scratch;
    if (zero) {
        uint8_t fill = qemu_get_byte(f);

        if (qemu_file_get_error_obj(f, errp)) {
            return false;
        }
        if (fill) {
            error_setg(errp, "zero page at 0x%" PRIx64 " of '%s' has fill "
                       "byte 0x%02x, not 0, at offset %" PRIu64, addr,
                       info->idstr, fill, at);
            return false;
        }
        /* Reading a never-touched page does not populate it; writing would. */
        if (rl->ms && !ram_page_is_zero(dst)) {
            memset(dst, 0, TARGET_PAGE_SIZE);
        }
        page_crcs_set(pc, addr >> TARGET_PAGE_BITS, 0);
        info->zero_pages++;
        rl->sum->zero_pages++;
    } else {
        qemu_get_payload(f, dst, TARGET_PAGE_SIZE);
        if (qemu_file_get_error_obj(f, errp)) {
            return false;
        }
        /* Just written: the CRC reads it from the cache. */
        page_crcs_set(pc, addr >> TARGET_PAGE_BITS, crc32c_page_raw(dst));
        info->pages++;
        rl->sum->pages++;
    }
    if (rl->insp && rl->insp->ram_page &&
        !rl->insp->ram_page(rl->insp->opaque, info, index, addr,
                            zero ? NULL : dst, errp)) {
        return false;
    }
    return true;
}

/* The page item before the current one, for the errors below. */
typedef struct RAMItemAt {
    uint64_t at, addr;
    bool zero, set;
} RAMItemAt;

/*
 * When an item makes no sense, the damage is often in the one before (a
 * ZERO marker turned PAGE takes 4 KiB of what follows as its content):
 * errors name it too.  Formatted only then, not for every page.
 */
static const char *ram_item_before(const RAMItemAt *prev, char *buf,
                                   size_t size)
{
    if (!prev->set) {
        return "";
    }
    snprintf(buf, size, "; the item before it, at offset %" PRIu64 ", is "
             "a %s item for 0x%" PRIx64, prev->at,
             prev->zero ? "ZERO (fill byte)" : "PAGE (4096 bytes)",
             prev->addr);
    return buf;
}

bool ram_load_section(RAMLoadState *rl, QEMUFile *f, bool is_start,
                      Error **errp)
{
    int last_block = -1;        /* CONTINUE refers to this section only */
    bool first = true;
    RAMItemAt prev = { 0 };
    char buf[160];

    for (;;) {
        uint64_t at = qemu_file_transferred(f);
        uint64_t v = qemu_get_be64(f);
        uint64_t addr = v & TARGET_PAGE_MASK;
        unsigned flags = v & ~TARGET_PAGE_MASK;
        unsigned kind = flags & ~RAM_SAVE_FLAG_CONTINUE;

        if (qemu_file_get_error_obj(f, errp)) {
            return false;
        }
        if (flags & ~RAM_SAVE_FLAGS_KNOWN) {
            error_setg(errp, "unknown RAM flags 0x%x at offset %" PRIu64 "%s",
                       flags & ~RAM_SAVE_FLAGS_KNOWN, at,
                       ram_item_before(&prev, buf, sizeof(buf)));
            return false;
        }
        if (is_start && first && flags != RAM_SAVE_FLAG_MEM_SIZE) {
            error_setg(errp, "RAM START section does not begin with the "
                       "block list (flags 0x%x at offset %" PRIu64 ")",
                       flags, at);
            return false;
        }
        if (flags == RAM_SAVE_FLAG_EOS && !addr) {
            return true;
        }
        if (flags == RAM_SAVE_FLAG_MEM_SIZE && is_start && first) {
            first = false;
            if (!ram_load_block_list(rl, f, addr, at, errp)) {
                return false;
            }
            rl->started = true;
            continue;
        }
        first = false;
        if (kind != RAM_SAVE_FLAG_ZERO && kind != RAM_SAVE_FLAG_PAGE) {
            error_setg(errp, "invalid RAM item 0x%" PRIx64 " at offset %"
                       PRIu64 "%s", v, at,
                       ram_item_before(&prev, buf, sizeof(buf)));
            return false;
        }
        if (!rl->started) {
            error_setg(errp, "RAM page at offset %" PRIu64 " before the "
                       "block list", at);
            return false;
        }
        if (rl->mapped_ram) {
            error_setg(errp, "RAM page item at offset %" PRIu64 " in a "
                       "mapped-ram stream, whose pages are in the page "
                       "areas", at);
            return false;
        }
        if (flags & RAM_SAVE_FLAG_CONTINUE) {
            if (last_block < 0) {
                error_setg(errp, "RAM page at offset %" PRIu64 " continues "
                           "a block, but no page of this section named one",
                           at);
                return false;
            }
        } else {
            char idstr[256];

            if (!ram_load_idstr(f, idstr, "RAM page's block name", errp)) {
                return false;
            }
            last_block = ram_load_find_block(rl, idstr);
            if (last_block < 0) {
                error_setg(errp, "RAM page at offset %" PRIu64 " names "
                           "block '%s', which the block list does not have",
                           at, idstr);
                return false;
            }
        }
        if (!ram_load_page(rl, f, last_block, addr,
                           kind == RAM_SAVE_FLAG_ZERO, at, errp)) {
            return false;
        }
        prev = (RAMItemAt) { .at = at, .addr = addr,
                             .zero = kind == RAM_SAVE_FLAG_ZERO, .set = true };
    }
}

bool ram_load_verify(RAMLoadState *rl, const StreamChecksums *sc,
                     Error **errp)
{
    uint64_t k = 0;

    if (rl->mapped_ram && rl->mapped_ram_crc != sc->mapped_ram) {
        error_setg(errp, "the mapped-ram bitmaps do not match their "
                   "checksum: CRC32C 0x%08x, the checksums section at "
                   "offset %" PRIu64 " says 0x%08x", rl->mapped_ram_crc,
                   sc->offset, sc->mapped_ram);
        return false;
    }
    for (unsigned i = 0; i < rl->sum->ram_blocks->len; i++) {
        const StreamRAMBlockInfo *info =
            &g_array_index(rl->sum->ram_blocks, StreamRAMBlockInfo, i);
        const PageCrcs *pc = &g_array_index(rl->page_crcs, PageCrcs, i);
        RAMBlock *rb = rl->ms ? rl->machine_blocks->pdata[i] : NULL;
        uint64_t nregions = checksums_block_regions(info->used_length);

        if (rb && rb->mapped_ram_lazy) {
            if (!mapped_ram_lazy_expect(rb->mapped_ram_lazy,
                                        &sc->regions[k], nregions, errp)) {
                return false;
            }
            k += nregions;
            continue;
        }
        for (uint64_t r = 0; r < nregions; r++, k++) {
            uint32_t got = page_crcs_region(pc, r);
            uint64_t start = r * CHECKSUMS_REGION_SIZE;
            uint64_t end = MIN(start + CHECKSUMS_REGION_SIZE,
                               info->used_length);
            g_autofree char *in_file = NULL;

            if (got == sc->regions[k]) {
                continue;
            }
            in_file = rl->mapped_ram ?
                g_strdup_printf(", file offsets %" PRIu64 " to %" PRIu64,
                                info->pages_offset + start,
                                info->pages_offset + end - 1) :
                g_strdup("");
            error_setg(errp, "RAM block '%s', bytes 0x%" PRIx64 " to 0x%"
                       PRIx64 " (2 MiB region %" PRIu64 "%s), does not "
                       "match its checksum: CRC32C 0x%08x, the checksums "
                       "section at offset %" PRIu64 " says 0x%08x",
                       info->idstr, start, end - 1, r, in_file, got,
                       sc->offset, sc->regions[k]);
            return false;
        }
    }
    return true;
}
