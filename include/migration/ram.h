/*
 * The "ram" section of a stream, beyond what savevm.h offers the migration
 * control code: its wire constants, its section bodies (savevm.c frames
 * them), the seam where the background snapshot feeds pages in, and the
 * loader that savevm.c and snapvm-img share.
 *
 * On the wire (see docs/interop/snapshot-format.md) every item is a be64
 * holding a page-aligned byte offset within a RAMBlock in its high bits and
 * RAM_SAVE_FLAG_* in its low 12 bits.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"
#include "migration/savevm.h"
#include "migration/mapped-ram.h"

#define RAM_SECTION_IDSTR       "ram"
#define RAM_SECTION_VERSION     4

#define RAM_SAVE_FLAG_ZERO      0x02    /* one fill byte (0) follows */
#define RAM_SAVE_FLAG_MEM_SIZE  0x04    /* block list; the offset is the total */
#define RAM_SAVE_FLAG_PAGE      0x08    /* TARGET_PAGE_SIZE bytes follow */
#define RAM_SAVE_FLAG_EOS       0x10    /* end of this section's RAM data */
#define RAM_SAVE_FLAG_CONTINUE  0x20    /* same block as the previous page */
#define RAM_SAVE_FLAGS_KNOWN    0x3e

/*
 * The default bitmap walk claims pages an aligned 2 MiB chunk at a time
 * with one atomic fetch-and per bitmap word, so a concurrent claimer
 * using test_and_clear_bit_atomic() on rb->bmap never races it into
 * sending a page twice.
 */
#define RAM_SAVE_CHUNK_PAGES    (2 * MiB / TARGET_PAGE_SIZE)

/* True if the TARGET_PAGE_SIZE bytes at @page are all zero. */
bool ram_page_is_zero(const void *page);

/* ---- section bodies, written between savevm.c's header and footer ---- */

/* START: the block list, then EOS. */
bool ram_save_setup(QEMUFile *f, RAMSaveState *rs, Error **errp);
/* PART: pages, about @max_bytes worth (UINT64_MAX: all), then EOS. */
bool ram_save_iterate(QEMUFile *f, RAMSaveState *rs, uint64_t max_bytes,
                      Error **errp);

/* ---- the background snapshot's seam ---- */

/*
 * A run of consecutive pages of one block, ready to go out.  page[i] is
 * the content of page first_page + i, or NULL for a page known to be zero
 * without reading it.  With @in_guest_ram the pointers are into guest RAM
 * and are queued without copying: the source keeps that memory unchanged
 * (write-protected) until its done() is called.  Otherwise they point at
 * copies, which are copied into the stream buffer at once.
 */
typedef struct RAMPageRun {
    RAMBlock *rb;
    uint64_t first_page;
    uint32_t npages;
    bool in_guest_ram;
    const uint8_t *const *page;
    void *priv;                 /* the source's own */
} RAMPageRun;

/*
 * Replaces the bitmap walk: while a source is set, ram_save_iterate()
 * and the END section write exactly the runs it hands out, in its order,
 * and nothing else.  Each page must be handed out exactly once over the
 * whole save (the source owns the claiming, e.g. atomic test-and-clear on
 * rb->bmap, which ram_save_new() filled): ram_save_remaining() counts
 * pages not yet written and reaches 0 when the source's pages are all out.
 */
typedef struct RAMPageSourceOps {
    /*
     * The next run: 1 with @run filled, 0 when every page has been handed
     * out, -1 with @errp set on error or cancel.  May block until work
     * arrives.
     */
    int (*next)(void *opaque, RAMPageRun *run, Error **errp);
    /*
     * @run's bytes have been written to the channel (flushed): guest RAM
     * behind it may change again, copies may be freed.
     */
    bool (*done)(void *opaque, RAMPageRun *run, Error **errp);
} RAMPageSourceOps;

void ram_save_set_page_source(RAMSaveState *rs, const RAMPageSourceOps *ops,
                              void *opaque);

/* Write one run's pages (headers, zero markers, data); no flush. */
void ram_save_put_run(QEMUFile *f, RAMSaveState *rs, const RAMPageRun *run);

/* ---- checksums (include/migration/checksums.h) ---- */

/*
 * A save gathers checksums unless told not to (x-checksums off, or the
 * fork method's parent, whose walk only counts).  NULL when off.
 */
typedef struct SaveChecksums SaveChecksums;
void ram_save_disable_checksums(RAMSaveState *rs);
SaveChecksums *ram_save_checksums(RAMSaveState *rs);
RAMBlock *const *ram_save_blocks(RAMSaveState *rs, unsigned *nblocks);

/* ---- mapped-ram hooks (migration/mapped-ram.c does the work) ---- */

/* Pages go to @m (which @rs now owns) instead of the stream. */
void ram_save_set_mapped_ram(RAMSaveState *rs, MappedRamSaver *m);
bool ram_save_is_mapped_ram(RAMSaveState *rs);
/* After RAM END: the bitmaps.  True at once without mapped-ram. */
bool ram_save_mapped_ram_complete(RAMSaveState *rs, Error **errp);

/* ---- loading (shared by qemu_loadvm_state() and snapvm-img) ---- */

typedef struct RAMLoadState RAMLoadState;

/*
 * @ms NULL: inspect mode, pages go to @insp->ram_page (if set) instead of
 * guest RAM.  Block details and counters go to @sum.
 */
RAMLoadState *ram_load_new(MachineState *ms, const StreamInspector *insp,
                           StreamSummary *sum);
void ram_load_free(RAMLoadState *rl);
/*
 * The stream's configuration announced mapped-ram: each block in the
 * list is followed by its header, and pages are read from the page
 * areas.  Refused unless @f's channel is seekable.  @opts NULL: eager.
 */
bool ram_load_set_mapped_ram(RAMLoadState *rl, QEMUFile *f,
                             const MappedRamLoadOptions *opts, Error **errp);
/* One section's RAM data, up to and including its EOS. */
bool ram_load_section(RAMLoadState *rl, QEMUFile *f, bool is_start,
                      Error **errp);
/*
 * The RAM as loaded against the checksums section: refused with the
 * block and region that differ.  A lazily restored block is handed the
 * expected values instead, and checks each chunk as it fills it.
 */
typedef struct StreamChecksums StreamChecksums;
bool ram_load_verify(RAMLoadState *rl, const StreamChecksums *sc,
                     Error **errp);

#endif
