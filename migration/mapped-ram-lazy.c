/*
 * mapped-ram load, lazy: a block's pages brought in on first touch, from
 * userfaultfd missing faults, 2 MiB at a time by filler threads, so that
 * the guest starts at once.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/crc32c.h"
#include "qemu/cutils.h"
#include "migration/channel.h"
#include "migration/checksums.h"
#include "migration/mapped-ram-eager.h"
#include "migration/mapped-ram-lazy.h"
#include "qemu/test-switches.h"
#include "qemu/userfaultfd.h"
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

/*
 * A lazy restore checks each run of present pages with SEEK_HOLE before
 * the guest starts; a block more fragmented than this is read instead,
 * so that the check stays short.
 */
#define MAPPED_RAM_LAZY_MAX_RUNS 4096

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
    /*
     * The checksums (include/migration/checksums.h): a chunk is a 2 MiB
     * region.  Until the stream's checksums section is read, a filled
     * chunk's CRC is kept; from then on each chunk is compared before it
     * goes into guest memory.
     */
    GMutex crc_lock;
    uint32_t *filled_crc;       /* per chunk, under crc_lock... */
    unsigned long *crc_seen;    /* ...where this bit says it is set */
    uint32_t *expected_crc;     /* per chunk, NULL until known */
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

/*
 * A chunk that cannot be filled ends the process, and must: the guest
 * (or snapvm itself) may already wait in a fault on one of its pages,
 * and nothing else can ever bring that page in.  Failing the migration
 * instead is not possible: the load may be long over, the guest running
 * on this RAM; unregistering the block would let the waiting access
 * through onto a zero page, a guest silently running on corrupted
 * memory; leaving it registered leaves a vCPU stuck for ever.  _exit,
 * not exit: the fillers run beside vCPU and main threads whose atexit
 * handlers (and RAM unmapping) must not run under them.
 */
static G_NORETURN void lazy_fatal(MappedRamLazy *lz, Error *err)
{
    error_report("mapped-ram lazy restore of block '%s': %s",
                 lz->rb->idstr, error_get_pretty(err));
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
    Error *err = NULL;

    if (f->move) {
        if (uffd_move(lz->uffd, dst, f->buf, len, &done)) {
            return;
        }
        /* Moving is an optimisation: copy the rest. */
        f->move = false;
    }
    if (!uffd_copy(lz->uffd, dst + done, f->buf + done, len - done, &err)) {
        lazy_fatal(lz, err);
    }
}

/* Does chunk @c hold any present page? */
static bool lazy_chunk_has_data(MappedRamLazy *lz, uint64_t c)
{
    uint64_t first = c * LAZY_CHUNK_PAGES;
    uint64_t last = MIN(first + LAZY_CHUNK_PAGES, lz->pages);

    return find_next_bit(lz->bitmap, last, first) < last;
}

G_STATIC_ASSERT(LAZY_CHUNK == CHECKSUMS_REGION_SIZE);

static void lazy_error_mismatch(MappedRamLazy *lz, uint64_t c, uint32_t got,
                                uint32_t expected, Error **errp)
{
    uint64_t start = c * LAZY_CHUNK;
    uint64_t end = MIN(start + LAZY_CHUNK, lz->rb->used_length);

    error_setg(errp, "RAM block '%s', bytes 0x%" PRIx64 " to 0x%" PRIx64
               " (2 MiB region %" PRIu64 ", file offsets %" PRIu64 " to %"
               PRIu64 "), does not match its checksum: CRC32C 0x%08x, the "
               "checksums section says 0x%08x", lz->rb->idstr, start,
               end - 1, c, lz->pages_offset + start,
               lz->pages_offset + end - 1, got, expected);
}

/*
 * Chunk @c, read into a filler's buffer, against its checksum: before it
 * goes into the block, so a guest never sees wrong bytes.  A mismatch
 * ends the process for the reason lazy_fatal() gives.
 */
static void lazy_check_chunk(MappedRamLazy *lz, uint64_t c,
                             const uint8_t *buf, uint64_t len)
{
    uint32_t got = crc32c(buf, len);
    Error *err = NULL;

    g_mutex_lock(&lz->crc_lock);
    if (!lz->expected_crc) {
        lz->filled_crc[c] = got;
        set_bit(c, lz->crc_seen);
    } else if (got != lz->expected_crc[c]) {
        lazy_error_mismatch(lz, c, got, lz->expected_crc[c], &err);
    }
    g_mutex_unlock(&lz->crc_lock);
    if (err) {
        lazy_fatal(lz, err);
    }
}

bool mapped_ram_lazy_expect(MappedRamLazy *lz, const uint32_t *regions,
                            uint64_t nregions, Error **errp)
{
    bool ok = true;

    g_assert(nregions == lz->nchunks);
    g_mutex_lock(&lz->crc_lock);
    for (uint64_t c = 0; c < lz->nchunks && ok; c++) {
        uint64_t first = c * LAZY_CHUNK_PAGES;
        uint64_t n = MIN(LAZY_CHUNK_PAGES, lz->pages - first);
        uint32_t got;

        if (test_bit(c, lz->crc_seen)) {
            got = lz->filled_crc[c];
        } else if (!lazy_chunk_has_data(lz, c)) {
            /* Never filled: the kernel's zero pages. */
            uint32_t zeros[LAZY_CHUNK_PAGES] = { 0 };
            got = checksums_fold(zeros, n);
        } else {
            continue;           /* compared when it is filled */
        }
        if (got != regions[c]) {
            lazy_error_mismatch(lz, c, got, regions[c], errp);
            ok = false;
        }
    }
    if (ok) {
        lz->expected_crc = g_memdup2(regions, nregions * sizeof(*regions));
    }
    g_mutex_unlock(&lz->crc_lock);
    return ok;
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

        if (!qemu_pread_all(lz->fd, p, n, off)) {
            Error *err = NULL;

            error_setg_errno(&err, errno, "cannot read the snapshot file");
            lazy_fatal(lz, err);
        }
        memset(f->buf + ((end - first) << TARGET_PAGE_BITS), 0,
               (next - end) << TARGET_PAGE_BITS);
        start = next;
    }
    lazy_check_chunk(lz, c, f->buf, len);
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
        uffd_wake(lz->uffd, (void *)(uintptr_t)(addr & TARGET_PAGE_MASK),
                  TARGET_PAGE_SIZE, NULL);
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
            Error *err = NULL;

            error_setg_errno(&err, errno, "poll");
            lazy_fatal(lz, err);
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

void mapped_ram_lazy_free(MappedRamLazy *lz, bool quit)
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
    g_free(lz->filled_crc);
    g_free(lz->crc_seen);
    g_free(lz->expected_crc);
    g_mutex_clear(&lz->crc_lock);
    g_free(lz);
}

int mapped_ram_load_lazy(MappedRamBlockLoad *bl, unsigned threads,
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
    g_mutex_init(&lz->crc_lock);
    lz->filled_crc = g_new0(uint32_t, lz->nchunks);
    lz->crc_seen = bitmap_new(lz->nchunks);
    lz->walk = !test_switch_mapped_ram_no_walk();
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

void mapped_ram_lazy_walk_start(MappedRamLazy *lz)
{
    if (lz->walk && !qatomic_xchg(&lz->walking, true)) {
        lazy_kick(lz);
    }
}

void mapped_ram_lazy_walk_now(MappedRamLazy *lz)
{
    qatomic_set(&lz->walk, true);
    qatomic_set(&lz->walking, true);
    lazy_kick(lz);
}
