/*
 * Guest RAM in a stream, the "ram" section's save side: the bitmap walk or
 * an external page source, and each page's CRC for the checksums.  Its
 * load side is migration/ram-load.c.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/crc32c.h"
#include "hw/boards.h"
#include "migration/checksums.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/ram-populated.h"
#include "migration/vmstate.h"

struct RAMSaveState {
    MachineState *ms;
    RAMBlock **blocks;
    unsigned nblocks;

    /* Pages not yet written: bits set in the bitmaps, plus pages a
     * source has claimed but not handed out yet. */
    uint64_t remaining;
    RAMStats stats;             /* every field read with qatomic_read() */

    /* The walk resumes here, and wraps once to catch pages marked again. */
    unsigned cursor_block;
    uint64_t cursor_page;
    /* The block of the previous page in the current section (CONTINUE). */
    RAMBlock *last_sent_block;

    const RAMPageSourceOps *src_ops;
    void *src_opaque;
    bool src_finished;

    /*
     * Pages never populated are sent as zero without being read: reading
     * them would fault them in (2.3 s and 1 GiB of RSS for an untouched
     * 1 GiB guest).  NULL if /proc/self/pagemap is unavailable.
     */
    RamPopulatedReader *populated;

    /* mapped-ram: pages go to their place in the file, not the stream. */
    MappedRamSaver *mapped_ram;
    uint64_t mapped_ram_queued;     /* bytes queued in this iterate call */

    /*
     * The checksums section's values (see migration/checksums.h), unless
     * turned off; the pages' CRCs are in each block's page_crc.
     */
    bool checksums;
    SaveChecksums ck;
};

bool ram_page_is_zero(const void *page)
{
    const uint64_t *p = page;

    /*
     * Most pages with data have it in their first word; the rest is an OR
     * reduction over cache lines that the compiler vectorises.
     */
    if (p[0]) {
        return false;
    }
    for (size_t i = 0; i < TARGET_PAGE_SIZE / 8; i += 8) {
        uint64_t t = p[i] | p[i + 1] | p[i + 2] | p[i + 3] |
                     p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7];
        if (t) {
            return false;
        }
    }
    return true;
}

/* ---- save ---- */

RAMSaveState *ram_save_new(MachineState *ms)
{
    RAMSaveState *rs = g_new0(RAMSaveState, 1);
    RAMBlock *rb;

    rs->ms = ms;
    rs->nblocks = machine_ram_block_count(ms);
    rs->blocks = g_new0(RAMBlock *, rs->nblocks);
    RAMBLOCK_FOREACH(ms, rb) {
        /* One save at a time owns the bitmaps. */
        g_assert(!rb->bmap);
        rb->bmap = bitmap_new(ramblock_pages(rb));
        bitmap_set(rb->bmap, 0, ramblock_pages(rb));
        rs->blocks[_rb_i] = rb;
        rs->remaining += ramblock_pages(rb);
        /* Zeroed lazily by the kernel: a page never saved is a zero one. */
        rb->page_crc = g_new0(uint32_t, ramblock_pages(rb));
    }
    rs->checksums = true;
    rs->ck.ndevices = vmstate_registry_count(machine_vmstate(ms));
    rs->ck.devices = g_new0(uint32_t, rs->ck.ndevices);
    /* The full bitmap counts as the first sync, as in QEMU. */
    rs->stats.dirty_sync_count = 1;
    rs->populated = ram_populated_reader_new(NULL);
    return rs;
}

void ram_save_free(RAMSaveState *rs)
{
    if (!rs) {
        return;
    }
    ram_save_disable_checksums(rs);
    for (unsigned i = 0; i < rs->nblocks; i++) {
        g_free(rs->blocks[i]->bmap);
        rs->blocks[i]->bmap = NULL;
    }
    ram_populated_reader_free(rs->populated);
    mapped_ram_saver_free(rs->mapped_ram);
    g_free(rs->blocks);
    g_free(rs);
}

void ram_save_disable_checksums(RAMSaveState *rs)
{
    for (unsigned i = 0; i < rs->nblocks; i++) {
        g_free(rs->blocks[i]->page_crc);
        rs->blocks[i]->page_crc = NULL;
    }
    g_free(rs->ck.devices);
    memset(&rs->ck, 0, sizeof(rs->ck));
    rs->checksums = false;
}

SaveChecksums *ram_save_checksums(RAMSaveState *rs)
{
    return rs->checksums ? &rs->ck : NULL;
}

RAMBlock *const *ram_save_blocks(RAMSaveState *rs, unsigned *nblocks)
{
    *nblocks = rs->nblocks;
    return rs->blocks;
}

uint64_t ram_save_remaining(RAMSaveState *rs)
{
    return qatomic_read(&rs->remaining);
}

void ram_save_get_stats(RAMSaveState *rs, RAMStats *stats)
{
    stats->transferred = qatomic_read(&rs->stats.transferred);
    stats->duplicate = qatomic_read(&rs->stats.duplicate);
    stats->normal = qatomic_read(&rs->stats.normal);
    stats->normal_bytes = qatomic_read(&rs->stats.normal_bytes);
    stats->dirty_sync_count = qatomic_read(&rs->stats.dirty_sync_count);
    stats->iterations = qatomic_read(&rs->stats.iterations);
}

void ram_save_note_dirty_sync(RAMSaveState *rs)
{
    qatomic_inc(&rs->stats.dirty_sync_count);
}

void ram_save_mark_dirty(RAMSaveState *rs, RAMBlock *rb,
                         uint64_t first_page, uint64_t npages)
{
    uint64_t end = first_page + npages;
    uint64_t added = 0;

    g_assert(end <= ramblock_pages(rb) && rb->bmap);
    /* Word at a time, counting only bits this call turned on. */
    while (first_page < end) {
        uint64_t w = BIT_WORD(first_page);
        unsigned bit = first_page % BITS_PER_LONG;
        unsigned n = MIN(BITS_PER_LONG - bit, end - first_page);
        unsigned long mask = (n == BITS_PER_LONG ? ~0UL :
                              ((1UL << n) - 1)) << bit;
        unsigned long old = qatomic_fetch_or(&rb->bmap[w], mask);

        added += __builtin_popcountl(mask & ~old);
        first_page += n;
    }
    qatomic_add(&rs->remaining, added);
}

void ram_save_set_page_source(RAMSaveState *rs, const RAMPageSourceOps *ops,
                              void *opaque)
{
    rs->src_ops = ops;
    rs->src_opaque = opaque;
    rs->src_finished = false;
}

static void ram_put_page_header(QEMUFile *f, RAMSaveState *rs, RAMBlock *rb,
                                uint64_t page, uint64_t flags)
{
    if (rb == rs->last_sent_block) {
        qemu_put_be64(f, (page << TARGET_PAGE_BITS) | flags |
                      RAM_SAVE_FLAG_CONTINUE);
        return;
    }
    qemu_put_be64(f, (page << TARGET_PAGE_BITS) | flags);
    qemu_put_byte(f, strlen(rb->idstr));
    qemu_put_buffer(f, rb->idstr, strlen(rb->idstr));
    rs->last_sent_block = rb;
}

typedef struct RAMRunStats {
    uint64_t zero, normal;
} RAMRunStats;

/*
 * @data NULL: known zero without reading.  @in_place: @data is guest RAM
 * that stays unchanged until the next flush, so it is queued, not copied.
 */
static void ram_put_page(QEMUFile *f, RAMSaveState *rs, RAMBlock *rb,
                         uint64_t page, const uint8_t *data, bool in_place,
                         RAMRunStats *st)
{
    if (!data || ram_page_is_zero(data)) {
        ram_put_page_header(f, rs, rb, page, RAM_SAVE_FLAG_ZERO);
        qemu_put_byte(f, 0);
        if (rb->page_crc) {
            rb->page_crc[page] = 0;
        }
        st->zero++;
        return;
    }
    ram_put_page_header(f, rs, rb, page, RAM_SAVE_FLAG_PAGE);
    /* While the page is in the cache from the zero check above. */
    if (rb->page_crc) {
        rb->page_crc[page] = crc32c_page_raw(data);
    }
    qemu_put_payload(f, data, TARGET_PAGE_SIZE, in_place);
    st->normal++;
}

static void ram_account(RAMSaveState *rs, const RAMRunStats *st)
{
    qatomic_add(&rs->stats.duplicate, st->zero);
    qatomic_add(&rs->stats.normal, st->normal);
    qatomic_add(&rs->stats.normal_bytes, st->normal * TARGET_PAGE_SIZE);
    qatomic_sub(&rs->remaining, st->zero + st->normal);
}

void ram_save_set_mapped_ram(RAMSaveState *rs, MappedRamSaver *m)
{
    g_assert(!rs->mapped_ram);
    rs->mapped_ram = m;
}

bool ram_save_is_mapped_ram(RAMSaveState *rs)
{
    return rs->mapped_ram != NULL;
}

/* mapped-ram: what the writers did since the last drain, into the stats. */
static bool ram_mapped_ram_drain(RAMSaveState *rs, Error **errp)
{
    MappedRamCounts c = { 0 };
    bool ok = mapped_ram_save_drain(rs->mapped_ram, &c, errp);
    RAMRunStats st = { .zero = c.zero, .normal = c.normal };

    ram_account(rs, &st);
    qatomic_add(&rs->stats.transferred, c.normal * TARGET_PAGE_SIZE);
    return ok;
}

bool ram_save_mapped_ram_complete(RAMSaveState *rs, Error **errp)
{
    return !rs->mapped_ram ||
           mapped_ram_save_finish(rs->mapped_ram, &rs->ck.mapped_ram, errp);
}

/* mapped-ram: queue the claimed pages of a chunk, in contiguous runs. */
static void ram_save_chunk_mapped(RAMSaveState *rs, RAMBlock *rb,
                                  uint64_t first, uint64_t npages,
                                  const unsigned long *claimed,
                                  const bool *may_hold_data)
{
    const uint8_t *page[RAM_SAVE_CHUNK_PAGES];
    unsigned long start = find_next_bit(claimed, npages, 0);

    while (start < npages) {
        unsigned long end = find_next_zero_bit(claimed, npages, start);
        RAMPageRun run = {
            .rb = rb, .first_page = first + start, .npages = end - start,
            .in_guest_ram = true, .page = page,
        };

        for (unsigned long i = start; i < end; i++) {
            page[i - start] = may_hold_data[i] ?
                rb->host + ((first + i) << TARGET_PAGE_BITS) : NULL;
        }
        mapped_ram_save_queue(rs->mapped_ram, &run);
        rs->mapped_ram_queued += (uint64_t)(end - start) * TARGET_PAGE_SIZE;
        start = find_next_bit(claimed, npages, end);
    }
}

void ram_save_put_run(QEMUFile *f, RAMSaveState *rs, const RAMPageRun *run)
{
    RAMRunStats st = { 0 };

    g_assert(run->first_page + run->npages <= ramblock_pages(run->rb));
    for (uint32_t i = 0; i < run->npages; i++) {
        ram_put_page(f, rs, run->rb, run->first_page + i, run->page[i],
                     run->in_guest_ram, &st);
    }
    ram_account(rs, &st);
}

/* Claim and write whatever is still marked in one aligned chunk. */
static void ram_save_chunk(QEMUFile *f, RAMSaveState *rs, RAMBlock *rb,
                           uint64_t first, uint64_t npages)
{
    unsigned long claimed[BITS_TO_LONGS(RAM_SAVE_CHUNK_PAGES)] = { 0 };
    bool may_hold_data[RAM_SAVE_CHUNK_PAGES];
    RAMRunStats st = { 0 };
    unsigned long i;

    if (!bitmap_fetch_and_clear_atomic(rb->bmap, first, npages, claimed)) {
        return;
    }
    /*
     * Claimed first, asked second: a page populated after the question is
     * one the guest wrote after the claim, which dirty tracking reports.
     */
    if (!rs->populated ||
        !ram_populated_read(rs->populated, rb, first, npages, may_hold_data,
                            NULL)) {
        memset(may_hold_data, true, sizeof(may_hold_data));
    }
    if (rs->mapped_ram) {
        ram_save_chunk_mapped(rs, rb, first, npages, claimed, may_hold_data);
        return;
    }
    for_each_set_bit(i, claimed, npages) {
        ram_put_page(f, rs, rb, first + i,
                     may_hold_data[i] ?
                     rb->host + ((first + i) << TARGET_PAGE_BITS) : NULL,
                     true, &st);
    }
    ram_account(rs, &st);
}

/* The next marked page at or after the cursor, wrapping once. */
static bool ram_find_marked(RAMSaveState *rs, RAMBlock **rbp,
                            uint64_t *pagep)
{
    for (unsigned visit = 0; visit <= rs->nblocks; visit++) {
        RAMBlock *rb = rs->blocks[rs->cursor_block];
        uint64_t pages = ramblock_pages(rb);
        uint64_t next = rs->cursor_page < pages ?
            find_next_bit(rb->bmap, pages, rs->cursor_page) : pages;

        if (next < pages) {
            *rbp = rb;
            *pagep = next;
            return true;
        }
        rs->cursor_block = (rs->cursor_block + 1) % rs->nblocks;
        rs->cursor_page = 0;
    }
    return false;
}

static bool ram_save_from_source(QEMUFile *f, RAMSaveState *rs,
                                 uint64_t start, uint64_t max_bytes,
                                 Error **errp)
{
    while (!rs->src_finished &&
           qemu_file_transferred(f) - start + rs->mapped_ram_queued <
           max_bytes) {
        RAMPageRun run = { 0 };
        int ret = rs->src_ops->next(rs->src_opaque, &run, errp);

        if (ret < 0) {
            return false;
        }
        if (ret == 0) {
            rs->src_finished = true;
            break;
        }
        if (rs->mapped_ram) {
            /* The run's pages are at their place once drained. */
            mapped_ram_save_queue(rs->mapped_ram, &run);
            rs->mapped_ram_queued += (uint64_t)run.npages * TARGET_PAGE_SIZE;
            if (!ram_mapped_ram_drain(rs, errp)) {
                return false;
            }
        } else {
            ram_save_put_run(f, rs, &run);
        }
        /* done() may unprotect guest RAM we queued without copying. */
        if (!qemu_fflush(f)) {
            qemu_file_get_error_obj(f, errp);
            return false;
        }
        if (!rs->src_ops->done(rs->src_opaque, &run, errp)) {
            return false;
        }
    }
    return true;
}

bool ram_save_iterate(QEMUFile *f, RAMSaveState *rs, uint64_t max_bytes,
                      Error **errp)
{
    uint64_t start = qemu_file_transferred(f);
    bool ok = true;

    rs->last_sent_block = NULL;
    rs->mapped_ram_queued = 0;
    if (rs->src_ops) {
        ok = ram_save_from_source(f, rs, start, max_bytes, errp);
    } else {
        while (qemu_file_transferred(f) - start + rs->mapped_ram_queued <
               max_bytes && !qemu_file_get_error(f)) {
            RAMBlock *rb;
            uint64_t page, chunk;

            if (!ram_find_marked(rs, &rb, &page)) {
                break;
            }
            chunk = QEMU_ALIGN_DOWN(page, RAM_SAVE_CHUNK_PAGES);
            ram_save_chunk(f, rs, rb, chunk,
                           MIN(RAM_SAVE_CHUNK_PAGES,
                               ramblock_pages(rb) - chunk));
            rs->cursor_page = chunk + RAM_SAVE_CHUNK_PAGES;
        }
    }
    /* Nothing queued outlives the call: the next pass may resend it. */
    if (rs->mapped_ram && !ram_mapped_ram_drain(rs, ok ? errp : NULL)) {
        ok = false;
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    qatomic_add(&rs->stats.transferred, qemu_file_transferred(f) - start);
    qatomic_inc(&rs->stats.iterations);
    if (ok && qemu_file_get_error_obj(f, errp)) {
        ok = false;
    }
    return ok;
}

bool ram_save_setup(QEMUFile *f, RAMSaveState *rs, Error **errp)
{
    uint64_t start = qemu_file_transferred(f);

    qemu_put_be64(f, machine_ram_size(rs->ms) | RAM_SAVE_FLAG_MEM_SIZE);
    for (unsigned i = 0; i < rs->nblocks; i++) {
        RAMBlock *rb = rs->blocks[i];

        qemu_put_byte(f, strlen(rb->idstr));
        qemu_put_buffer(f, rb->idstr, strlen(rb->idstr));
        qemu_put_be64(f, rb->used_length);
        if (rs->mapped_ram) {
            uint64_t header_at = qemu_file_transferred(f);

            if (!mapped_ram_save_block_header(rs->mapped_ram, f, rb, errp)) {
                return false;
            }
            /* The page area is skipped, not transferred. */
            start += qemu_file_transferred(f) - header_at -
                     MAPPED_RAM_HDR_SIZE;
        }
    }
    qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
    qatomic_add(&rs->stats.transferred, qemu_file_transferred(f) - start);
    return !qemu_file_get_error_obj(f, errp);
}
