/*
 * mapped-ram: a snapshot file with one fixed place per guest page (QEMU's
 * capability of that name, file: only).  See docs/interop/snapshot-format.md
 * for the bytes and docs/devel/migration.md for the design.
 *
 * The stream is QEMU's v3 stream, but the RAM START section's block list
 * carries, after each block's used_length, a MappedRamHeader, and the
 * stream then jumps over the block's bitmap and page area:
 *
 *   ... idstr used_length HEADER | bitmap ... | pad to 1 MiB | pages ... |
 *       next idstr ...
 *
 * Page i of a block lives at pages_offset + i * 4096, written with
 * pwrite by a pool of writer threads; a zero page is never written (a
 * hole), and bit i of the block's bitmap says whether page i is present.
 * The bitmaps are written once RAM is complete, before the device state.
 *
 * Saving: migration.c turns it on with ram_save_enable_mapped_ram(); ram.c
 * hands page runs to mapped_ram_save_queue() and calls the drain at every
 * point where the stream would have flushed them.  Loading: ram.c calls
 * mapped_ram_load_block() for each block of a stream whose configuration
 * announces the capability.
 */
#ifndef MIGRATION_MAPPED_RAM_H
#define MIGRATION_MAPPED_RAM_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "exec/ramblock.h"
#include "migration/savevm.h"

typedef struct QEMUFile QEMUFile;
typedef struct MigChannel MigChannel;
typedef struct RAMPageRun RAMPageRun;
typedef struct PageCrcs PageCrcs;

/* The capability's name, as it travels in the configuration section. */
#define MAPPED_RAM_CAPABILITY_NAME      "mapped-ram"

/* QEMU's MappedRamHeader: be32 version, be64 page_size, bitmap_offset,
 * pages_offset, packed. */
#define MAPPED_RAM_HDR_VERSION          1
#define MAPPED_RAM_HDR_SIZE             28
/* Page areas start at multiples of this (QEMU's value). */
#define MAPPED_RAM_FILE_OFFSET_ALIGNMENT (1 * MiB)

/* Default writer threads (parameter multifd-channels), QEMU's default. */
#define MAPPED_RAM_DEFAULT_CHANNELS     2
#define MAPPED_RAM_MAX_CHANNELS         255

/* How a mapped-ram file is restored (parameter x-mapped-ram-restore). */
typedef enum MappedRamRestoreMode {
    MAPPED_RAM_RESTORE_EAGER,   /* "eager": read every present page */
    MAPPED_RAM_RESTORE_LAZY,    /* "lazy": map the page areas privately */
    MAPPED_RAM_RESTORE__MAX
} MappedRamRestoreMode;

extern const QEnumLookup MappedRamRestoreMode_lookup;
const char *mapped_ram_restore_mode_name(MappedRamRestoreMode mode);

/* Where one block's pieces lie, given where its header starts. */
typedef struct MappedRamBlockLayout {
    uint64_t header_offset;
    uint64_t bitmap_offset;     /* right after the header */
    uint64_t bitmap_size;       /* bytes: 64-bit words, little-endian */
    uint64_t pages_offset;      /* 1 MiB aligned */
    uint64_t used_length;
    uint64_t end;               /* pages_offset + used_length */
} MappedRamBlockLayout;

void mapped_ram_block_layout(uint64_t header_offset, uint64_t used_length,
                             MappedRamBlockLayout *l);

/*
 * Is mapped-ram possible for a migration to @uri with these settings?
 * Errors name what is in the way (another transport, direct-io without
 * mapped-ram).
 */
bool mapped_ram_check_uri(const char *uri, bool mapped_ram, bool direct_io,
                          Error **errp);

/* ---- save ---- */

typedef struct MappedRamSaver MappedRamSaver;

typedef struct MappedRamCounts {
    uint64_t zero;              /* pages found zero: holes */
    uint64_t normal;            /* pages written */
} MappedRamCounts;

/*
 * @f: the outgoing stream, whose channel must be seekable.  @writers
 * threads do the page writes; @direct_io opens the file O_DIRECT for them.
 */
MappedRamSaver *mapped_ram_saver_new(QEMUFile *f, unsigned writers,
                                     bool direct_io, Error **errp);
/*
 * After @rb's used_length in the block list: the header, the file sized
 * to hold the block's page area, and the stream moved past it.
 */
bool mapped_ram_save_block_header(MappedRamSaver *m, QEMUFile *f,
                                  RAMBlock *rb, Error **errp);
/*
 * Queue @run's pages for the writers (page[i] NULL: known zero).  The
 * memory behind the pages must stay valid and unchanged until the next
 * mapped_ram_save_drain() returns.  Blocks while the queue is full.
 */
void mapped_ram_save_queue(MappedRamSaver *m, const RAMPageRun *run);
/*
 * Wait until every queued page is in the file.  Adds what was written
 * since the last drain to @counts.  False with the first writer error.
 */
bool mapped_ram_save_drain(MappedRamSaver *m, MappedRamCounts *counts,
                           Error **errp);
/* Create a saver and give it to @rs (ram_save_set_mapped_ram()). */
bool mapped_ram_enable(RAMSaveState *rs, QEMUFile *f, unsigned writers,
                       bool direct_io, Error **errp);
/*
 * Drain, then write every block's bitmap at its place; *@bitmaps_crc is
 * the CRC32C of the bitmaps as written, in block order.
 */
bool mapped_ram_save_finish(MappedRamSaver *m, uint32_t *bitmaps_crc,
                            Error **errp);
void mapped_ram_saver_free(MappedRamSaver *m);

/* ---- load ---- */

typedef struct MappedRamLoadOptions {
    MappedRamRestoreMode mode;
    unsigned threads;           /* eager readers; 0 or 1: this thread */
} MappedRamLoadOptions;

/*
 * Right after a block's used_length in the START section: check its
 * header against @file_size and the block, read its bitmap, restore its
 * pages into @rb (or, with @rb NULL, hand each present page to
 * @insp->ram_page, counting into @info and @sum), and move the stream
 * past the page area.  Errors name the block and the file offset.
 */
bool mapped_ram_load_block(QEMUFile *f, RAMBlock *rb,
                           const MappedRamLoadOptions *opts,
                           const StreamInspector *insp, unsigned index,
                           StreamRAMBlockInfo *info, StreamSummary *sum,
                           PageCrcs *page_crcs, uint32_t *bitmaps_crc,
                           Error **errp);

/*
 * A lazily restored block is registered with a userfaultfd (missing
 * mode) until its filler thread has brought every page in; write-protect
 * (another userfaultfd) and the populated-page reader of the next
 * snapshot need it whole.  This waits for the fillers to finish (the
 * guest keeps running: the fillers race nothing) and frees them.  Called
 * at the start of an outgoing migration and before background-snapshot
 * is checked; returns at once when no block is being filled.  It cannot
 * fail.
 */
void mapped_ram_lazy_finish(MachineState *ms);

/*
 * The load is over: the lazy restore fillers, which so far served only
 * faults, also fill the rest of their blocks in the background (so that
 * they do not compete with the rest of the load for the CPUs).
 */
void mapped_ram_lazy_start(MachineState *ms);

/*
 * snapvm is ending: stop the lazy restore fillers where they are and
 * close their userfaultfds (a fault still waiting then goes through),
 * before RAM is unmapped.  After migration_shutdown(), before
 * machine_free().
 */
void mapped_ram_lazy_cancel(MachineState *ms);

#endif
