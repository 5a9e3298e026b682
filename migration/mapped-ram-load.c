/*
 * mapped-ram, the load side: check a block's header and bitmap, then
 * bring its pages back eagerly (pread straight into guest RAM, several
 * threads) or lazily (map the page area copy-on-write over guest RAM, so
 * the guest starts at once and pages come in on first touch).  Also the
 * inspect mode snapvm-img uses, and the copy back to anonymous memory
 * before a lazily restored guest is migrated again.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "hw/boards.h"
#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "sysemu/runstate.h"
#include <sys/mman.h>

/* One eager read: large enough to stream, small enough to share out. */
#define MAPPED_RAM_READ_SLICE   (8 * MiB)
#define MAPPED_RAM_READ_PAGES   (MAPPED_RAM_READ_SLICE / TARGET_PAGE_SIZE)
/*
 * A lazy restore maps each run of present pages on its own; a block
 * that is more holes than runs would need more mappings than the
 * kernel's vm.max_map_count (65530) allows, so past this it is read.
 */
#define MAPPED_RAM_LAZY_MAX_RUNS 4096

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
} MappedRamBlockLoad;

/* ---- header and bitmap ---- */

static bool mapped_ram_read_header(QEMUFile *f, MappedRamBlockLoad *bl,
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

static bool mapped_ram_read_bitmap(MappedRamBlockLoad *bl, Error **errp)
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
static bool mapped_ram_runs(MappedRamBlockLoad *bl, GArray *runs,
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

static void mapped_ram_error_present(MappedRamBlockLoad *bl, uint64_t page,
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
static bool mapped_ram_check_present(MappedRamBlockLoad *bl,
                                     const uint8_t *data, uint64_t first,
                                     uint64_t npages, Error **errp)
{
    for (uint64_t i = 0; i < npages; i++) {
        if (ram_page_is_zero(data + (i << TARGET_PAGE_BITS))) {
            mapped_ram_error_present(bl, first + i, errp);
            return false;
        }
    }
    return true;
}

/* ---- eager ---- */

/* Guest RAM [offset, +len) reads as zero afterwards. */
static void mapped_ram_zero_range(RAMBlock *rb, uint64_t offset,
                                  uint64_t len)
{
    uint8_t *p = rb->host + offset;

    if (rb->fd < 0 && !rb->shared) {
        /* Private anonymous: drop the pages; cheap when never touched. */
        if (madvise(p, len, MADV_DONTNEED) == 0) {
            return;
        }
    } else if (rb->page_size == TARGET_PAGE_SIZE &&
               fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         offset, len) == 0) {
        return;
    }
    for (uint64_t off = 0; off < len; off += TARGET_PAGE_SIZE) {
        if (!ram_page_is_zero(p + off)) {
            memset(p + off, 0, TARGET_PAGE_SIZE);
        }
    }
}

typedef struct EagerReader {
    MappedRamBlockLoad *bl;
    unsigned next_slice;        /* atomic: the next slice to take */
    unsigned nslices;
    GMutex lock;
    Error *err;
} EagerReader;

static bool mapped_ram_read_slice(MappedRamBlockLoad *bl, unsigned slice,
                                  Error **errp)
{
    uint64_t first = (uint64_t)slice * MAPPED_RAM_READ_PAGES;
    uint64_t last = MIN(first + MAPPED_RAM_READ_PAGES, bl->pages);
    uint64_t start = first;

    while (start < last) {
        bool present = test_bit(start, bl->bitmap);
        uint64_t end = present ?
            find_next_zero_bit(bl->bitmap, last, start) :
            find_next_bit(bl->bitmap, last, start);
        uint64_t off = start << TARGET_PAGE_BITS;
        uint64_t len = (end - start) << TARGET_PAGE_BITS;

        if (!present) {
            mapped_ram_zero_range(bl->rb, off, len);
        } else if (!mig_channel_pread_all(bl->ch, bl->rb->host + off, len,
                                          bl->layout.pages_offset + off,
                                          errp)) {
            error_prepend(errp, "mapped-ram pages of block '%s': ",
                          bl->idstr);
            return false;
        } else if (!mapped_ram_check_present(bl, bl->rb->host + off, start,
                                             end - start, errp)) {
            return false;
        }
        start = end;
    }
    return true;
}

static gpointer eager_reader_thread(gpointer opaque)
{
    EagerReader *r = opaque;

    for (;;) {
        unsigned slice = qatomic_fetch_inc(&r->next_slice);
        Error *err = NULL;

        if (slice >= r->nslices) {
            break;
        }
        if (!mapped_ram_read_slice(r->bl, slice, &err)) {
            g_mutex_lock(&r->lock);
            if (!r->err) {
                r->err = err;
                err = NULL;
            }
            r->next_slice = r->nslices;     /* the others stop too */
            g_mutex_unlock(&r->lock);
            error_free(err);
            break;
        }
    }
    return NULL;
}

static bool mapped_ram_load_eager(MappedRamBlockLoad *bl, unsigned threads,
                                  Error **errp)
{
    EagerReader r = {
        .bl = bl,
        .nslices = DIV_ROUND_UP(bl->pages, MAPPED_RAM_READ_PAGES),
    };
    g_autofree GThread **extra = NULL;
    unsigned nextra = MIN(threads, r.nslices);

    nextra = nextra > 1 ? nextra - 1 : 0;
    g_mutex_init(&r.lock);
    extra = g_new0(GThread *, nextra + 1);
    for (unsigned i = 0; i < nextra; i++) {
        /* Fewer readers is slower, not wrong: ignore a failed start. */
        extra[i] = g_thread_try_new("mig/mr-read", eager_reader_thread, &r,
                                    NULL);
    }
    eager_reader_thread(&r);
    for (unsigned i = 0; i < nextra; i++) {
        if (extra[i]) {
            g_thread_join(extra[i]);
        }
    }
    g_mutex_clear(&r.lock);
    if (r.err) {
        error_propagate(errp, r.err);
        return false;
    }
    return true;
}

/* ---- lazy ---- */

/*
 * Only private anonymous 4 KiB RAM can be replaced by a private file
 * mapping: memfd and shared RAM is seen by others through its fd, and
 * hugetlbfs pages are not file pages of our snapshot.
 */
static bool mapped_ram_can_map(RAMBlock *rb)
{
    return rb->backend == RAM_BACKEND_ANON && !rb->shared && rb->fd < 0 &&
           rb->page_size == TARGET_PAGE_SIZE;
}

/* Returns 1 if mapped, 0 if the block must be read instead, -1 on error. */
static int mapped_ram_load_lazy(MappedRamBlockLoad *bl, Error **errp)
{
    RAMBlock *rb = bl->rb;
    g_autoptr(GArray) runs = g_array_new(false, false,
                                         sizeof(MappedRamRange));
    bool failed = false;

    if (!mapped_ram_can_map(rb) || !bl->ch->ops->map_private ||
        !mapped_ram_runs(bl, runs, MAPPED_RAM_LAZY_MAX_RUNS)) {
        return 0;
    }
    /*
     * Nothing is read, but a run of present pages must be data in the
     * file: one SEEK_HOLE per run (there are at most 4096) catches a
     * bitmap that marks holes present.
     */
    for (guint i = 0; bl->ch->ops->next_hole && i < runs->len; i++) {
        MappedRamRange *r = &g_array_index(runs, MappedRamRange, i);
        uint64_t at = bl->layout.pages_offset + r->offset, hole;

        if (!bl->ch->ops->next_hole(bl->ch, at, &hole, errp)) {
            return -1;
        }
        if (hole < at + r->length) {
            mapped_ram_error_present(bl, (r->offset + (hole - at)) >>
                                     TARGET_PAGE_BITS, errp);
            return -1;
        }
    }
    /* Holes must read as zero: drop whatever the block held. */
    mapped_ram_zero_range(rb, 0, rb->used_length);
    for (guint i = 0; i < runs->len; i++) {
        MappedRamRange *r = &g_array_index(runs, MappedRamRange, i);

        if (!bl->ch->ops->map_private(bl->ch, rb->host + r->offset,
                                      r->length,
                                      bl->layout.pages_offset + r->offset,
                                      errp)) {
            error_prepend(errp, "mapped-ram lazy restore of block '%s': ",
                          bl->idstr);
            /* What is mapped stays recorded, to be copied back later. */
            g_array_set_size(runs, i);
            failed = true;
            break;
        }
    }
    if (runs->len) {
        rb->mapped_ram_lazy = g_steal_pointer(&runs);
    }
    return failed ? -1 : 1;
}

/* ---- inspect ---- */

static bool mapped_ram_inspect(MappedRamBlockLoad *bl,
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

bool mapped_ram_load_block(QEMUFile *f, RAMBlock *rb,
                           const MappedRamLoadOptions *opts,
                           const StreamInspector *insp, unsigned index,
                           StreamRAMBlockInfo *info, StreamSummary *sum,
                           Error **errp)
{
    MappedRamBlockLoad bl = {
        .ch = qemu_file_get_channel(f),
        .rb = rb,
        .idstr = info->idstr,
        .pages = info->used_length >> TARGET_PAGE_BITS,
    };
    MappedRamLoadOptions eager = { MAPPED_RAM_RESTORE_EAGER, 1 };
    bool ok = false;
    int mapped = 0;

    opts = opts ? opts : &eager;
    if (!mapped_ram_read_header(f, &bl, errp) ||
        !mapped_ram_read_bitmap(&bl, errp)) {
        goto out;
    }
    info->header_offset = bl.layout.header_offset;
    info->bitmap_offset = bl.layout.bitmap_offset;
    info->pages_offset = bl.layout.pages_offset;
    if (!rb) {
        ok = mapped_ram_inspect(&bl, insp, index, info, sum, errp);
    } else {
        if (opts->mode == MAPPED_RAM_RESTORE_LAZY) {
            mapped = mapped_ram_load_lazy(&bl, errp);
        }
        ok = mapped > 0 ||
             (mapped == 0 && mapped_ram_load_eager(&bl, opts->threads, errp));
    }
    ok = ok && qemu_file_seek(f, bl.layout.end, errp);
out:
    g_free(bl.bitmap);
    return ok;
}

/* ---- back to anonymous memory ---- */

static bool mapped_ram_materialize_block(RAMBlock *rb, Error **errp)
{
    GArray *runs = rb->mapped_ram_lazy;

    for (guint i = 0; i < runs->len; i++) {
        MappedRamRange *r = &g_array_index(runs, MappedRamRange, i);
        uint8_t *dst = rb->host + r->offset;
        void *anon = mmap(NULL, r->length, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

        if (anon == MAP_FAILED) {
            error_setg_errno(errp, errno, "block '%s': cannot copy its "
                             "lazily restored RAM back into memory",
                             rb->idstr);
            return false;
        }
        madvise(anon, r->length, MADV_HUGEPAGE);
        /* Zero pages stay unpopulated in the copy, as they were. */
        for (uint64_t off = 0; off < r->length; off += TARGET_PAGE_SIZE) {
            if (!ram_page_is_zero(dst + off)) {
                memcpy((uint8_t *)anon + off, dst + off, TARGET_PAGE_SIZE);
            }
        }
        if (mremap(anon, r->length, r->length, MREMAP_MAYMOVE | MREMAP_FIXED,
                   dst) == MAP_FAILED) {
            error_setg_errno(errp, errno, "block '%s': cannot move its "
                             "RAM back in place", rb->idstr);
            munmap(anon, r->length);
            return false;
        }
        madvise(dst, r->length, MADV_HUGEPAGE);
    }
    g_array_free(runs, true);
    rb->mapped_ram_lazy = NULL;
    return true;
}

bool mapped_ram_materialize(MachineState *ms, Error **errp)
{
    RAMBlock *rb;
    bool any = false, was_running, ok = true;

    RAMBLOCK_FOREACH(ms, rb) {
        any = any || rb->mapped_ram_lazy;
    }
    if (!any) {
        return true;
    }
    /* A guest write between the copy and the move would be lost. */
    was_running = runstate_is_running(ms);
    if (was_running) {
        vm_stop(ms, RUN_STATE_PAUSED);
    }
    RAMBLOCK_FOREACH(ms, rb) {
        if (ok && rb->mapped_ram_lazy) {
            ok = mapped_ram_materialize_block(rb, errp);
        }
    }
    if (was_running) {
        vm_start(ms);
    }
    return ok;
}
