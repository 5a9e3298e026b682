/*
 * mapped-ram load, eager: every present page read straight into guest
 * RAM before the guest starts, 8 MiB slices shared out among several
 * threads; the holes made zero.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "migration/channel.h"
#include "migration/mapped-ram-eager.h"
#include "migration/ram.h"
#include <sys/mman.h>


/* Guest RAM [offset, +len) reads as zero afterwards. */
void mapped_ram_zero_range(RAMBlock *rb, uint64_t offset,
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

/*
 * Read present pages [@first, @end) into the block and check them, a
 * piece at a time: the check (and the page CRCs) then finds each piece
 * still in the cache, where after a whole 8 MiB slice it would read it
 * from memory again (100 against 55 ms per GiB, bench/checksums-cost).
 */
#define MAPPED_RAM_CHECK_PAGES  (1 * MiB / TARGET_PAGE_SIZE)

static bool mapped_ram_read_present(MappedRamBlockLoad *bl, uint64_t first,
                                    uint64_t end, Error **errp)
{
    for (uint64_t p = first; p < end; p += MAPPED_RAM_CHECK_PAGES) {
        uint64_t n = MIN(MAPPED_RAM_CHECK_PAGES, end - p);
        uint64_t off = p << TARGET_PAGE_BITS;

        if (!mig_channel_pread_all(bl->ch, bl->rb->host + off,
                                   n << TARGET_PAGE_BITS,
                                   bl->layout.pages_offset + off, errp)) {
            error_prepend(errp, "mapped-ram pages of block '%s': ",
                          bl->idstr);
            return false;
        }
        if (!mapped_ram_check_present(bl, bl->rb->host + off, p, n, errp)) {
            return false;
        }
    }
    return true;
}

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
        } else if (!mapped_ram_read_present(bl, start, end, errp)) {
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

bool mapped_ram_load_eager(MappedRamBlockLoad *bl, unsigned threads,
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
