/*
 * mapped-ram, the load side: check a block's header and bitmap, then
 * bring its pages back eagerly (pread straight into guest RAM, several
 * threads) or lazily (userfaultfd missing faults, filled from the file
 * 2 MiB at a time by a thread per block, so the guest starts at once).
 * Also the inspect mode snapvm-img uses, and the wait for lazily
 * restored blocks to be whole before the guest is migrated again.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "hw/boards.h"
#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "qemu/userfaultfd.h"
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

/* One eager read: large enough to stream, small enough to share out. */
#define MAPPED_RAM_READ_SLICE   (8 * MiB)
#define MAPPED_RAM_READ_PAGES   (MAPPED_RAM_READ_SLICE / TARGET_PAGE_SIZE)
/*
 * A lazy restore checks each run of present pages with SEEK_HOLE before
 * the guest starts; a block more fragmented than this is read instead,
 * so that the check stays short.
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
 * A lazily restored block stays anonymous memory, emptied; its 2 MiB
 * chunks that hold data are registered with a userfaultfd in missing
 * mode, and 'multifd-channels' filler threads fill them from the file:
 * first the chunk of any page a vCPU (or snapvm) touches, and, once the
 * load is over, between faults the next chunk still empty, in order, so
 * the block is whole after about the time an eager restore takes.  Then
 * the registration goes and the block is plain memory again.
 *
 * A fill costs one fault per 2 MiB, and a page is never mapped read-only
 * first: a private file mapping (the first design) took a read fault and
 * then a copy-on-write fault, with a TLB shootdown to the other vCPUs'
 * CPUs, for every page a vCPU wrote.
 *
 * Each chunk is claimed once (an atomic bit), so it is filled exactly
 * once, and no page can be populated behind the fillers' back: every
 * access to an empty page of a registered chunk is a fault that waits.
 * A fault on a chunk another filler is filling needs nothing: that fill
 * wakes it.
 */
#define LAZY_CHUNK              (2 * MiB)
#define LAZY_CHUNK_PAGES        (LAZY_CHUNK / TARGET_PAGE_SIZE)
#define LAZY_MAX_FILLERS        16

/* UFFDIO_MOVE (Linux 6.8), newer than Debian 12's headers: the kernel's. */
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE       (1 << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE            (0x05)
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE             _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

typedef struct MappedRamLazy MappedRamLazy;

typedef struct LazyFiller {
    MappedRamLazy *lz;
    GThread *thread;
    /*
     * One chunk, read into before it goes into the block.  With
     * UFFDIO_MOVE it is a 2 MiB aligned huge page that is moved into
     * place as it is (the block keeps huge pages, as an eager restore
     * gives); without, it is copied in 4 KiB pages by UFFDIO_COPY.
     */
    uint8_t *buf;
    void *buf_map;              /* the mapping buf lies in */
    bool move;
} LazyFiller;

struct MappedRamLazy {
    RAMBlock *rb;
    int uffd;
    int fd;                     /* the snapshot file, for reading */
    /*
     * eventfd, never read: written when the walk starts, when the block
     * is whole and when snapvm ends; every filler's poll() then returns.
     */
    int kick_fd;
    uint64_t pages_offset;
    uint64_t pages;
    unsigned long *bitmap;      /* present pages (owned) */
    unsigned long *claimed;     /* per chunk, atomic: a filler took it */
    unsigned long *filled;      /* per chunk, atomic: in place */
    uint64_t nchunks;
    uint64_t ndata;             /* chunks with data: to be filled */
    uint64_t nfilled;           /* atomic */
    uint64_t next;              /* atomic: the background walk */
    bool move;                  /* the kernel has UFFDIO_MOVE */
    bool walk;                  /* atomic: fill in the background too... */
    bool walking;               /* atomic: ...from now on */
    bool quit;                  /* atomic: stop now (snapvm exits) */
    bool done;                  /* atomic: whole, unregistered */
    unsigned nfillers;
    LazyFiller fillers[LAZY_MAX_FILLERS];
};

/*
 * Only private anonymous 4 KiB RAM: memfd and shared RAM is seen by
 * others through its fd, and hugetlbfs would need huge-page copies.
 */
static bool mapped_ram_can_lazy(RAMBlock *rb)
{
    return rb->backend == RAM_BACKEND_ANON && !rb->shared && rb->fd < 0 &&
           rb->page_size == TARGET_PAGE_SIZE;
}

static G_NORETURN void lazy_fatal(MappedRamLazy *lz, const char *what,
                                  int err)
{
    /* The guest already runs on this RAM: it cannot go on without it. */
    error_report("mapped-ram lazy restore of block '%s': %s: %s",
                 lz->rb->idstr, what, strerror(err));
    _exit(1);
}

static void lazy_kick(MappedRamLazy *lz)
{
    if (eventfd_write(lz->kick_fd, 1) < 0) {
        /* Cannot fail short of an overflow after 2^64 kicks. */
    }
}

/* Put the chunk read into f->buf at @dst (this wakes its faults). */
static void lazy_place(LazyFiller *f, uint8_t *dst, uint64_t len)
{
    MappedRamLazy *lz = f->lz;
    uint64_t done = 0;

    while (f->move && done < len) {
        struct uffdio_move mv = {
            .dst = (uintptr_t)dst + done, .src = (uintptr_t)f->buf + done,
            .len = len - done,
        };

        if (ioctl(lz->uffd, UFFDIO_MOVE, &mv) == 0) {
            return;
        }
        if (errno != EAGAIN || mv.move <= 0) {
            /* Moving is an optimisation: copy the rest. */
            f->move = false;
            break;
        }
        done += mv.move;
    }
    while (done < len) {
        struct uffdio_copy cp = {
            .dst = (uintptr_t)dst + done, .src = (uintptr_t)f->buf + done,
            .len = len - done,
        };

        if (ioctl(lz->uffd, UFFDIO_COPY, &cp) == 0) {
            return;
        }
        if (errno != EAGAIN || cp.copy <= 0) {
            lazy_fatal(lz, "UFFDIO_COPY", errno);
        }
        done += cp.copy;
    }
}

/* Does chunk @c hold any present page? */
static bool lazy_chunk_has_data(MappedRamLazy *lz, uint64_t c)
{
    uint64_t first = c * LAZY_CHUNK_PAGES;
    uint64_t last = MIN(first + LAZY_CHUNK_PAGES, lz->pages);

    return find_next_bit(lz->bitmap, last, first) < last;
}

/*
 * Fill chunk @c, claimed by @f and holding data, from the file (present
 * pages) and zeros (holes).
 */
static void lazy_fill(LazyFiller *f, uint64_t c)
{
    MappedRamLazy *lz = f->lz;
    uint64_t first = c * LAZY_CHUNK_PAGES;
    uint64_t last = MIN(first + LAZY_CHUNK_PAGES, lz->pages);
    uint64_t len = (last - first) << TARGET_PAGE_BITS;
    uint8_t *dst = lz->rb->host + (first << TARGET_PAGE_BITS);
    uint64_t start = find_next_bit(lz->bitmap, last, first);

    g_assert(start < last);
    memset(f->buf, 0, (start - first) << TARGET_PAGE_BITS);
    while (start < last) {
        uint64_t end = find_next_zero_bit(lz->bitmap, last, start);
        uint64_t next = find_next_bit(lz->bitmap, last, end);
        uint8_t *p = f->buf + ((start - first) << TARGET_PAGE_BITS);
        size_t n = (end - start) << TARGET_PAGE_BITS;
        off_t off = lz->pages_offset + (start << TARGET_PAGE_BITS);

        while (n) {
            ssize_t r = pread(lz->fd, p, n, off);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                lazy_fatal(lz, "cannot read the snapshot file",
                           r < 0 ? errno : EIO);
            }
            p += r;
            n -= r;
            off += r;
        }
        memset(f->buf + ((end - first) << TARGET_PAGE_BITS), 0,
               (next - end) << TARGET_PAGE_BITS);
        start = next;
    }
    lazy_place(f, dst, len);
    set_bit_atomic(c, lz->filled);
    if (qatomic_fetch_inc(&lz->nfilled) + 1 == lz->ndata) {
        /* Whole: plain anonymous memory again; the others can stop. */
        uffd_unregister(lz->uffd, lz->rb->host, lz->rb->used_length, NULL);
        qatomic_set(&lz->done, true);
        lazy_kick(lz);
    }
}

static void lazy_fault(LazyFiller *f, uint64_t addr)
{
    MappedRamLazy *lz = f->lz;
    uint64_t c = (addr - (uintptr_t)lz->rb->host) / LAZY_CHUNK;

    if (c >= lz->nchunks) {
        return;
    }
    if (!test_and_set_bit_atomic(c, lz->claimed)) {
        lazy_fill(f, c);
    } else if (test_bit_atomic(c, lz->filled)) {
        /* Filled after this fault was raised: just wake it. */
        struct uffdio_range r = {
            .start = addr & TARGET_PAGE_MASK, .len = TARGET_PAGE_SIZE,
        };
        ioctl(lz->uffd, UFFDIO_WAKE, &r);
    }
    /* Else another filler is at it, and its fill wakes the fault. */
}

static gpointer lazy_filler_thread(gpointer opaque)
{
    LazyFiller *f = opaque;
    MappedRamLazy *lz = f->lz;

    while (!qatomic_read(&lz->quit) && !qatomic_read(&lz->done)) {
        struct pollfd pfd[2] = {
            { .fd = lz->uffd, .events = POLLIN },
            { .fd = lz->kick_fd, .events = POLLIN },
        };
        bool walk = qatomic_read(&lz->walk) && qatomic_read(&lz->walking) &&
                    qatomic_read(&lz->next) < lz->nchunks;
        struct uffd_msg msgs[16];
        int n;

        /* Faults first; without any, one chunk of the walk. */
        if (poll(pfd, 2, walk ? 0 : -1) < 0 && errno != EINTR) {
            lazy_fatal(lz, "poll", errno);
        }
        /* Another filler may have taken the messages: 0 then. */
        n = (pfd[0].revents & POLLIN) ?
            uffd_read_events(lz->uffd, msgs, G_N_ELEMENTS(msgs), NULL) : 0;
        for (int i = 0; i < n; i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
                lazy_fault(f, msgs[i].arg.pagefault.address);
            }
        }
        if (n > 0 || !walk) {
            continue;
        }
        for (;;) {
            uint64_t c = qatomic_fetch_inc(&lz->next);

            if (c >= lz->nchunks) {
                break;
            }
            if (!test_and_set_bit_atomic(c, lz->claimed)) {
                lazy_fill(f, c);
                break;
            }
        }
    }
    return NULL;
}

/* Stop (@quit) or wait for the fillers, then free everything. */
static void mapped_ram_lazy_free(MappedRamLazy *lz, bool quit)
{
    if (quit) {
        qatomic_set(&lz->quit, true);
        lazy_kick(lz);
    }
    for (unsigned i = 0; i < lz->nfillers; i++) {
        if (lz->fillers[i].thread) {
            g_thread_join(lz->fillers[i].thread);
        }
        if (lz->fillers[i].buf_map) {
            munmap(lz->fillers[i].buf_map, 2 * LAZY_CHUNK);
        }
    }
    /* Closing the userfaultfd lets any fault still waiting through. */
    if (lz->uffd >= 0) {
        close(lz->uffd);
    }
    if (lz->fd >= 0) {
        close(lz->fd);
    }
    if (lz->kick_fd >= 0) {
        close(lz->kick_fd);
    }
    g_free(lz->bitmap);
    g_free(lz->claimed);
    g_free(lz->filled);
    g_free(lz);
}

/* Returns 1 if set up, 0 if the block must be read instead, -1 on error. */
static int mapped_ram_load_lazy(MappedRamBlockLoad *bl, unsigned threads,
                                Error **errp)
{
    RAMBlock *rb = bl->rb;
    g_autoptr(GArray) runs = g_array_new(false, false,
                                         sizeof(MappedRamRange));
    MappedRamLazy *lz;
    uint64_t from = 0;

    if (!mapped_ram_can_lazy(rb) || !bl->ch->ops->dup_fd ||
        !mapped_ram_runs(bl, runs, MAPPED_RAM_LAZY_MAX_RUNS)) {
        return 0;
    }
    /*
     * Nothing is read before the guest starts, but a run of present
     * pages must be data in the file: one SEEK_HOLE per run (at most
     * 4096) catches a bitmap that marks holes present.
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
    lz = g_new0(MappedRamLazy, 1);
    lz->fd = lz->uffd = lz->kick_fd = -1;
    lz->rb = rb;
    lz->pages_offset = bl->layout.pages_offset;
    lz->pages = bl->pages;
    lz->nchunks = DIV_ROUND_UP(bl->pages, LAZY_CHUNK_PAGES);
    lz->claimed = bitmap_new(lz->nchunks);
    lz->filled = bitmap_new(lz->nchunks);
    /*
     * Test-only: fill on faults alone, so that a test sees exactly which
     * chunks an access brought in (tests/qtest/mapped-ram-test).
     */
    lz->walk = !getenv("SNAPVM_TEST_MAPPED_RAM_NO_WALK");
    lz->move = uffd_query_features(NULL) & UFFD_FEATURE_MOVE;
    lz->fd = bl->ch->ops->dup_fd(bl->ch, errp);
    lz->uffd = lz->fd < 0 ? -1 :
               uffd_open(lz->move ? UFFD_FEATURE_MOVE : 0, errp);
    if (lz->uffd < 0) {
        goto fail;
    }
    lz->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lz->kick_fd < 0) {
        error_setg_errno(errp, errno, "cannot create an eventfd");
        goto fail;
    }
    /*
     * Every page missing.  Only the chunks with data are registered, so
     * that every first access to them asks a filler; a chunk of holes
     * stays ordinary memory, whose first write allocates a zeroed huge
     * page.  (Filling it with the shared zero page instead made every
     * guest write there a copy-on-write fault with a TLB shootdown.)
     */
    mapped_ram_zero_range(rb, 0, rb->used_length);
    lz->bitmap = g_steal_pointer(&bl->bitmap);
    for (uint64_t c = 0; c <= lz->nchunks; c++) {
        bool data = c < lz->nchunks && lazy_chunk_has_data(lz, c);

        if (data) {
            lz->ndata++;
            continue;
        }
        if (c < lz->nchunks) {
            set_bit(c, lz->claimed);
            set_bit(c, lz->filled);
        }
        if (c > from &&
            !uffd_register(lz->uffd, rb->host + from * LAZY_CHUNK,
                           MIN(c * LAZY_CHUNK, rb->used_length) -
                           from * LAZY_CHUNK,
                           UFFDIO_REGISTER_MODE_MISSING, errp)) {
            goto fail_unregister;
        }
        from = c + 1;
    }
    if (!lz->ndata) {
        /* Nothing to fill: the block is emptied memory, and done. */
        mapped_ram_lazy_free(lz, false);
        return 1;
    }
    lz->nfillers = CLAMP(threads, 1, LAZY_MAX_FILLERS);
    for (unsigned i = 0; i < lz->nfillers; i++) {
        LazyFiller *f = &lz->fillers[i];
        g_autoptr(GError) gerr = NULL;

        f->lz = lz;
        f->move = lz->move;
        f->buf_map = mmap(NULL, 2 * LAZY_CHUNK, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (f->buf_map == MAP_FAILED) {
            f->buf_map = NULL;
            error_setg_errno(errp, errno, "no memory for a 2 MiB buffer");
            goto fail_unregister;
        }
        f->buf = (uint8_t *)QEMU_ALIGN_UP((uintptr_t)f->buf_map, LAZY_CHUNK);
        madvise(f->buf, LAZY_CHUNK, MADV_HUGEPAGE);
        f->thread = g_thread_try_new("mig/mr-lazy", lazy_filler_thread, f,
                                     &gerr);
        if (!f->thread) {
            error_setg(errp, "cannot start a lazy restore thread: %s",
                       gerr->message);
            goto fail_unregister;
        }
    }
    rb->mapped_ram_lazy = lz;
    return 1;

fail_unregister:
    uffd_unregister(lz->uffd, rb->host, rb->used_length, NULL);
    bl->bitmap = g_steal_pointer(&lz->bitmap);
fail:
    error_prepend(errp, "mapped-ram lazy restore of block '%s': ",
                  bl->idstr);
    mapped_ram_lazy_free(lz, true);
    return -1;
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

bool mapped_ram_materialize(MachineState *ms, Error **errp)
{
    RAMBlock *rb;

    /*
     * The fillers keep going while the guest runs (they race nothing:
     * the kernel holds every access to an empty page); wait for them.
     */
    RAMBLOCK_FOREACH(ms, rb) {
        MappedRamLazy *lz = rb->mapped_ram_lazy;

        if (lz) {
            /* Walk now, even if a test turned the walk off. */
            qatomic_set(&lz->walk, true);
            qatomic_set(&lz->walking, true);
            lazy_kick(lz);
            rb->mapped_ram_lazy = NULL;
            mapped_ram_lazy_free(lz, false);
        }
    }
    return true;
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
        MappedRamLazy *lz = rb->mapped_ram_lazy;

        if (lz && lz->walk && !qatomic_xchg(&lz->walking, true)) {
            lazy_kick(lz);
        }
    }
}
