/*
 * mapped-ram, the load side: each block's header and bitmap are checked
 * (mapped-ram-check.c), then its pages are brought back eagerly (pread
 * straight into guest RAM, several threads: mapped-ram-eager.c) or
 * lazily (userfaultfd missing faults, so the guest starts at once:
 * mapped-ram-lazy.c), or, without a machine, read for snapvm-img
 * (mapped-ram-inspect.c).  Here: the choice among them for one block, and
 * the lifecycle of lazily restored blocks after the load (the background
 * walk, the wait for them to be whole, the stop when snapvm ends).
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "hw/boards.h"
#include "migration/mapped-ram.h"
#include "migration/mapped-ram-eager.h"
#include "migration/mapped-ram-inspect.h"
#include "migration/mapped-ram-lazy.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"

bool mapped_ram_load_block(QEMUFile *f, RAMBlock *rb,
                           const MappedRamLoadOptions *opts,
                           const StreamInspector *insp, unsigned index,
                           StreamRAMBlockInfo *info, StreamSummary *sum,
                           PageCrcs *page_crcs, uint32_t *bitmaps_crc,
                           Error **errp)
{
    MappedRamBlockLoad bl = {
        .ch = qemu_file_get_channel(f),
        .rb = rb,
        .idstr = info->idstr,
        .pages = info->used_length >> TARGET_PAGE_BITS,
        .page_crcs = page_crcs,
        .bitmaps_crc = *bitmaps_crc,
    };
    MappedRamLoadOptions eager = { MAPPED_RAM_RESTORE_EAGER, 1 };
    bool ok = false;
    int mapped = 0;

    opts = opts ? opts : &eager;
    if (!mapped_ram_read_header(f, &bl, errp) ||
        !mapped_ram_read_bitmap(&bl, errp)) {
        goto out;
    }
    *bitmaps_crc = bl.bitmaps_crc;
    info->header_offset = bl.layout.header_offset;
    info->bitmap_offset = bl.layout.bitmap_offset;
    info->pages_offset = bl.layout.pages_offset;
    if (!rb) {
        ok = mapped_ram_inspect(&bl, insp, index, info, sum, errp);
    } else {
        if (opts->mode == MAPPED_RAM_RESTORE_LAZY) {
            mapped = mapped_ram_load_lazy(&bl, opts->threads, errp);
        }
        ok = mapped > 0 ||
             (mapped == 0 && mapped_ram_load_eager(&bl, opts->threads, errp));
    }
    ok = ok && qemu_file_seek(f, bl.layout.end, errp);
out:
    g_free(bl.bitmap);
    return ok;
}

/* ---- back to plain memory ---- */

/*
 * Cannot fail: a filler ends the process rather than leave a page
 * unfilled (lazy_fatal()), so the wait always ends with every block
 * whole.
 */
void mapped_ram_lazy_finish(MachineState *ms)
{
    RAMBlock *rb;

    /*
     * The fillers keep going while the guest runs (they race nothing:
     * the kernel holds every access to an empty page); wait for them.
     */
    RAMBLOCK_FOREACH(ms, rb) {
        MappedRamLazy *lz = rb->mapped_ram_lazy;

        if (lz) {
            mapped_ram_lazy_walk_now(lz);
            rb->mapped_ram_lazy = NULL;
            mapped_ram_lazy_free(lz, false);
        }
    }
}

void mapped_ram_lazy_cancel(MachineState *ms)
{
    RAMBlock *rb;

    RAMBLOCK_FOREACH(ms, rb) {
        MappedRamLazy *lz = rb->mapped_ram_lazy;

        if (lz) {
            rb->mapped_ram_lazy = NULL;
            mapped_ram_lazy_free(lz, true);
        }
    }
}

void mapped_ram_lazy_start(MachineState *ms)
{
    RAMBlock *rb;

    RAMBLOCK_FOREACH(ms, rb) {
        if (rb->mapped_ram_lazy) {
            mapped_ram_lazy_walk_start(rb->mapped_ram_lazy);
        }
    }
}
