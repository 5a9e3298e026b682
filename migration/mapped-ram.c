/*
 * mapped-ram, the save side: the per-block headers, the writer threads
 * that pwrite each page at its place, and the bitmaps of the pages
 * present (include/migration/mapped-ram.h).
 *
 * Ordering: the writers take jobs in any order and write them in
 * parallel, which is only right if no page is queued twice between two
 * drains (two writes of one page could land in either order).  ram.c
 * keeps that: the bitmap walk claims each page once per pass and drains
 * at the end of every ram_save_iterate(); a page source hands each page
 * out once and every run is drained before its done().
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/crc32c.h"
#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"

/* A job: at most one 2 MiB aligned chunk, so writers share big runs. */
#define MAPPED_RAM_JOB_PAGES    512
#define MAPPED_RAM_JOBS_PER_WRITER 4

static const char *const restore_mode_names[MAPPED_RAM_RESTORE__MAX] = {
    [MAPPED_RAM_RESTORE_EAGER] = "eager",
    [MAPPED_RAM_RESTORE_LAZY] = "lazy",
};

const QEnumLookup MappedRamRestoreMode_lookup = {
    "MappedRamRestoreMode", restore_mode_names, MAPPED_RAM_RESTORE__MAX,
};

const char *mapped_ram_restore_mode_name(MappedRamRestoreMode mode)
{
    return qapi_enum_lookup(&MappedRamRestoreMode_lookup, mode);
}

void mapped_ram_block_layout(uint64_t header_offset, uint64_t used_length,
                             MappedRamBlockLayout *l)
{
    uint64_t pages = used_length >> TARGET_PAGE_BITS;

    l->header_offset = header_offset;
    l->bitmap_offset = header_offset + MAPPED_RAM_HDR_SIZE;
    l->bitmap_size = BITS_TO_LONGS(pages) * sizeof(uint64_t);
    l->pages_offset = QEMU_ALIGN_UP(l->bitmap_offset + l->bitmap_size,
                                    MAPPED_RAM_FILE_OFFSET_ALIGNMENT);
    l->used_length = used_length;
    l->end = l->pages_offset + used_length;
}

bool mapped_ram_check_uri(const char *uri, bool mapped_ram, bool direct_io,
                          Error **errp)
{
    if (direct_io && !mapped_ram) {
        error_setg(errp, "Parameter 'direct-io' needs the capability "
                   "'mapped-ram': only its page writes are aligned");
        return false;
    }
    if (mapped_ram && strncmp(uri, "file:", 5)) {
        error_setg(errp, "Capability 'mapped-ram' needs a file: migration "
                   "URI (pages are written at fixed offsets), not '%s'",
                   uri);
        return false;
    }
    if (mapped_ram) {
        g_autofree char *path = NULL;
        uint64_t offset;

        if (!mig_uri_parse_file(uri + 5, &path, &offset, errp)) {
            return false;
        }
        if (offset) {
            error_setg(errp, "Capability 'mapped-ram' cannot be used with a "
                       "file: offset (its page offsets would be the "
                       "stream's, not the file's, unlike QEMU's)");
            return false;
        }
    }
    return true;
}

/* ---- the writers ---- */

typedef struct MappedRamBlockState {
    RAMBlock *rb;
    MappedRamBlockLayout layout;
    unsigned long *present;     /* bit set: page written, not a hole */
} MappedRamBlockState;

typedef struct MappedRamJob {
    MappedRamBlockState *blk;
    uint64_t first_page;
    uint32_t npages;
    const uint8_t *page[MAPPED_RAM_JOB_PAGES];
} MappedRamJob;

struct MappedRamSaver {
    MigChannel *ch;
    bool direct_io;
    GArray *blocks;             /* MappedRamBlockState, in list order */

    GMutex lock;
    GCond work;                 /* a job was queued, or quit */
    GCond room;                 /* a job was taken */
    GCond idle;                 /* the queue is empty and nobody writes */
    GQueue jobs;
    unsigned busy;              /* writers in the middle of a job */
    unsigned max_jobs;
    bool quit;
    Error *err;                 /* the first writer error */
    MappedRamCounts counts;     /* since the last drain */

    GThread **writers;
    unsigned nwriters;
};

static void mapped_ram_set_error(MappedRamSaver *m, Error *err)
{
    g_mutex_lock(&m->lock);
    if (!m->err) {
        m->err = err;
        err = NULL;
    }
    g_mutex_unlock(&m->lock);
    error_free(err);
}

/*
 * Write one job: runs of non-zero pages in one pwritev each; zero pages
 * are left as (or turned back into) holes.
 */
static bool mapped_ram_write_job(MappedRamSaver *m, MappedRamJob *job,
                                 uint8_t **bounce, MappedRamCounts *c,
                                 Error **errp)
{
    MappedRamBlockState *blk = job->blk;
    struct iovec iov[MAPPED_RAM_JOB_PAGES];
    int iovcnt = 0;
    uint64_t run_first = 0;
    unsigned bounced = 0;

    for (uint32_t i = 0; i <= job->npages; i++) {
        uint64_t page = job->first_page + i;
        const uint8_t *data = i < job->npages ? job->page[i] : NULL;
        bool zero = !data || ram_page_is_zero(data);

        if ((zero || i == job->npages) && iovcnt) {
            uint64_t off = blk->layout.pages_offset +
                           (run_first << TARGET_PAGE_BITS);
            if (!mig_channel_pwritev_all(m->ch, iov, iovcnt, off,
                                         m->direct_io, errp)) {
                error_prepend(errp, "mapped-ram: block '%s': ",
                              blk->rb->idstr);
                return false;
            }
            iovcnt = 0;
            bounced = 0;
        }
        if (i == job->npages) {
            break;
        }
        if (blk->rb->page_crc) {
            blk->rb->page_crc[page] = zero ? 0 : crc32c_page_raw(data);
        }
        if (zero) {
            c->zero++;
            /* Written earlier in this save (pre-copy): punch it out. */
            if (test_and_clear_bit_atomic(page, blk->present) &&
                !m->ch->ops->discard(m->ch, blk->layout.pages_offset +
                                     (page << TARGET_PAGE_BITS),
                                     TARGET_PAGE_SIZE, errp)) {
                return false;
            }
            continue;
        }
        /* O_DIRECT needs aligned memory; guest RAM and copy slots are. */
        if (m->direct_io && ((uintptr_t)data & (TARGET_PAGE_SIZE - 1))) {
            uint8_t *b;

            if (!*bounce &&
                posix_memalign((void **)bounce, TARGET_PAGE_SIZE,
                               MAPPED_RAM_JOB_PAGES * TARGET_PAGE_SIZE)) {
                error_setg(errp, "mapped-ram: no memory for a bounce "
                           "buffer");
                return false;
            }
            b = *bounce + bounced++ * TARGET_PAGE_SIZE;
            memcpy(b, data, TARGET_PAGE_SIZE);
            data = b;
        }
        if (!iovcnt) {
            run_first = page;
        }
        iov[iovcnt].iov_base = (void *)data;
        iov[iovcnt].iov_len = TARGET_PAGE_SIZE;
        iovcnt++;
        set_bit_atomic(page, blk->present);
        c->normal++;
    }
    return true;
}

static gpointer mapped_ram_writer_thread(gpointer opaque)
{
    MappedRamSaver *m = opaque;
    uint8_t *bounce = NULL;

    g_mutex_lock(&m->lock);
    for (;;) {
        MappedRamJob *job;
        MappedRamCounts c = { 0 };
        Error *err = NULL;
        bool skip;

        while (!m->quit && g_queue_is_empty(&m->jobs)) {
            g_cond_wait(&m->work, &m->lock);
        }
        if (g_queue_is_empty(&m->jobs)) {
            break;
        }
        job = g_queue_pop_head(&m->jobs);
        m->busy++;
        skip = m->err != NULL;
        g_cond_signal(&m->room);
        g_mutex_unlock(&m->lock);

        /* After an error the rest is dropped: the save fails anyway. */
        if (!skip && !mapped_ram_write_job(m, job, &bounce, &c, &err)) {
            mapped_ram_set_error(m, err);
        }
        g_free(job);

        g_mutex_lock(&m->lock);
        m->counts.zero += c.zero;
        m->counts.normal += c.normal;
        m->busy--;
        if (!m->busy && g_queue_is_empty(&m->jobs)) {
            g_cond_broadcast(&m->idle);
        }
    }
    g_mutex_unlock(&m->lock);
    free(bounce);
    return NULL;
}

MappedRamSaver *mapped_ram_saver_new(QEMUFile *f, unsigned writers,
                                     bool direct_io, Error **errp)
{
    MigChannel *ch = qemu_file_get_channel(f);
    MappedRamSaver *m;

    if (!mig_channel_is_seekable(ch) || !ch->ops->discard ||
        !ch->ops->truncate) {
        error_setg(errp, "Capability 'mapped-ram' needs a seekable file: "
                   "target; %s is not one", ch->description);
        return NULL;
    }
    if (direct_io && (!ch->ops->enable_direct_io ||
                      !ch->ops->enable_direct_io(ch, errp))) {
        if (!ch->ops->enable_direct_io) {
            error_setg(errp, "%s cannot do direct-io", ch->description);
        }
        return NULL;
    }
    m = g_new0(MappedRamSaver, 1);
    m->ch = ch;
    m->direct_io = direct_io;
    m->blocks = g_array_new(false, true, sizeof(MappedRamBlockState));
    g_mutex_init(&m->lock);
    g_cond_init(&m->work);
    g_cond_init(&m->room);
    g_cond_init(&m->idle);
    g_queue_init(&m->jobs);
    m->nwriters = CLAMP(writers, 1, MAPPED_RAM_MAX_CHANNELS);
    m->max_jobs = m->nwriters * MAPPED_RAM_JOBS_PER_WRITER;
    m->writers = g_new0(GThread *, m->nwriters);
    for (unsigned i = 0; i < m->nwriters; i++) {
        g_autoptr(GError) gerr = NULL;

        m->writers[i] = g_thread_try_new("mig/mapped-ram",
                                         mapped_ram_writer_thread, m, &gerr);
        if (!m->writers[i]) {
            error_setg(errp, "mapped-ram: cannot start writer thread %u: %s",
                       i, gerr->message);
            mapped_ram_saver_free(m);
            return NULL;
        }
    }
    return m;
}

bool mapped_ram_enable(RAMSaveState *rs, QEMUFile *f, unsigned writers,
                       bool direct_io, Error **errp)
{
    MappedRamSaver *m = mapped_ram_saver_new(f, writers, direct_io, errp);

    if (m) {
        ram_save_set_mapped_ram(rs, m);
    }
    return m != NULL;
}

static MappedRamBlockState *mapped_ram_find(MappedRamSaver *m, RAMBlock *rb)
{
    for (unsigned i = 0; i < m->blocks->len; i++) {
        MappedRamBlockState *blk = &g_array_index(m->blocks,
                                                  MappedRamBlockState, i);
        if (blk->rb == rb) {
            return blk;
        }
    }
    g_assert_not_reached();
}

bool mapped_ram_save_block_header(MappedRamSaver *m, QEMUFile *f,
                                  RAMBlock *rb, Error **errp)
{
    MappedRamBlockState blk = { .rb = rb };
    MappedRamBlockLayout *l = &blk.layout;

    mapped_ram_block_layout(qemu_file_transferred(f), rb->used_length, l);
    qemu_put_be32(f, MAPPED_RAM_HDR_VERSION);
    qemu_put_be64(f, TARGET_PAGE_SIZE);
    qemu_put_be64(f, l->bitmap_offset);
    qemu_put_be64(f, l->pages_offset);
    /*
     * The file holds the whole page area from now on, as holes: its size
     * is its layout, whatever is written later.
     */
    if (!qemu_fflush(f) ||
        !m->ch->ops->truncate(m->ch, l->end, errp) ||
        !qemu_file_seek(f, l->end, errp)) {
        qemu_file_get_error_obj(f, errp);
        return false;
    }
    blk.present = bitmap_new(ramblock_pages(rb));
    g_array_append_val(m->blocks, blk);
    return true;
}

void mapped_ram_save_queue(MappedRamSaver *m, const RAMPageRun *run)
{
    MappedRamBlockState *blk = mapped_ram_find(m, run->rb);

    for (uint32_t done = 0; done < run->npages;) {
        uint64_t page = run->first_page + done;
        /* Pieces end at 2 MiB boundaries: whole huge pages per write. */
        uint32_t n = MIN(run->npages - done,
                         MAPPED_RAM_JOB_PAGES - page % MAPPED_RAM_JOB_PAGES);
        MappedRamJob *job = g_new(MappedRamJob, 1);

        job->blk = blk;
        job->first_page = page;
        job->npages = n;
        memcpy(job->page, run->page + done, n * sizeof(job->page[0]));
        g_mutex_lock(&m->lock);
        while (g_queue_get_length(&m->jobs) >= m->max_jobs) {
            g_cond_wait(&m->room, &m->lock);
        }
        g_queue_push_tail(&m->jobs, job);
        g_cond_signal(&m->work);
        g_mutex_unlock(&m->lock);
        done += n;
    }
}

bool mapped_ram_save_drain(MappedRamSaver *m, MappedRamCounts *counts,
                           Error **errp)
{
    bool ok;

    g_mutex_lock(&m->lock);
    while (m->busy || !g_queue_is_empty(&m->jobs)) {
        g_cond_wait(&m->idle, &m->lock);
    }
    if (counts) {
        counts->zero += m->counts.zero;
        counts->normal += m->counts.normal;
    }
    m->counts = (MappedRamCounts) { 0 };
    ok = !m->err;
    if (!ok) {
        error_propagate(errp, error_copy(m->err));
    }
    g_mutex_unlock(&m->lock);
    return ok;
}

bool mapped_ram_save_finish(MappedRamSaver *m, uint32_t *bitmaps_crc,
                            Error **errp)
{
    *bitmaps_crc = 0;
    if (!mapped_ram_save_drain(m, NULL, errp)) {
        return false;
    }
    for (unsigned i = 0; i < m->blocks->len; i++) {
        MappedRamBlockState *blk = &g_array_index(m->blocks,
                                                  MappedRamBlockState, i);
        size_t words = blk->layout.bitmap_size / sizeof(uint64_t);
        g_autofree uint64_t *le = g_new(uint64_t, words);
        struct iovec iov = { le, blk->layout.bitmap_size };

        /* On disk: 64-bit little-endian words, bit i = page i. */
        for (size_t w = 0; w < words; w++) {
            le[w] = GUINT64_TO_LE(blk->present[w]);
        }
        *bitmaps_crc = crc32c_extend(*bitmaps_crc, le,
                                     blk->layout.bitmap_size);
        if (!mig_channel_pwritev_all(m->ch, &iov, 1,
                                     blk->layout.bitmap_offset, false,
                                     errp)) {
            error_prepend(errp, "mapped-ram: bitmap of block '%s': ",
                          blk->rb->idstr);
            return false;
        }
    }
    return true;
}

void mapped_ram_saver_free(MappedRamSaver *m)
{
    if (!m) {
        return;
    }
    g_mutex_lock(&m->lock);
    m->quit = true;
    g_cond_broadcast(&m->work);
    g_mutex_unlock(&m->lock);
    for (unsigned i = 0; i < m->nwriters; i++) {
        if (m->writers[i]) {
            g_thread_join(m->writers[i]);
        }
    }
    /* Writers finish the queue before they quit; nothing is left. */
    g_assert(g_queue_is_empty(&m->jobs));
    for (unsigned i = 0; i < m->blocks->len; i++) {
        g_free(g_array_index(m->blocks, MappedRamBlockState, i).present);
    }
    g_array_free(m->blocks, true);
    error_free(m->err);
    g_free(m->writers);
    g_cond_clear(&m->work);
    g_cond_clear(&m->room);
    g_cond_clear(&m->idle);
    g_mutex_clear(&m->lock);
    g_free(m);
}
