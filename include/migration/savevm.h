/*
 * Writing and reading QEMU v3 migration streams for a machine: the contract
 * between the stream code (savevm.c, ram.c, vmstate.c) and the migration
 * control code (migration.c), which decides when each step runs.
 *
 * Outgoing, in this order:
 *   qemu_savevm_state_begin()      magic, version, configuration, RAM START
 *   qemu_savevm_state_iterate()*   RAM PART sections while pages remain
 *   qemu_savevm_state_complete()   RAM END, device FULL sections, EOF, JSON
 * Between iterations, dirty tracking feeds ram_save_mark_dirty().
 *
 * Incoming: qemu_loadvm_state() checks every step and refuses a stream
 * that does not fit the machine, naming the section and offset.
 */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct QEMUFile QEMUFile;
typedef struct MachineState MachineState;
typedef struct RAMBlock RAMBlock;
typedef struct RAMSaveState RAMSaveState;
typedef struct VMStateRegistry VMStateRegistry;

/* Counters with query-migrate's names ("ram" member). */
typedef struct RAMStats {
    uint64_t transferred;     /* bytes written for RAM */
    uint64_t duplicate;       /* zero pages sent as a fill byte */
    uint64_t normal;          /* pages sent whole */
    uint64_t normal_bytes;
    uint64_t dirty_sync_count;
    uint64_t iterations;
} RAMStats;

RAMSaveState *ram_save_new(MachineState *ms);
void ram_save_free(RAMSaveState *rs);
/* Pages still to send, and the counters so far (thread safe reads). */
uint64_t ram_save_remaining(RAMSaveState *rs);
void ram_save_get_stats(RAMSaveState *rs, RAMStats *stats);
/* Dirty tracking reports pages written since they were last sent. */
void ram_save_mark_dirty(RAMSaveState *rs, RAMBlock *rb,
                         uint64_t first_page, uint64_t npages);

bool qemu_savevm_state_begin(QEMUFile *f, MachineState *ms,
                             RAMSaveState *rs, Error **errp);
/*
 * Send pages still marked in the bitmap, at most @max_bytes worth, in one
 * RAM PART section.  Returns false on error; *@done is set once nothing is
 * left to send.
 */
bool qemu_savevm_state_iterate(QEMUFile *f, RAMSaveState *rs,
                               uint64_t max_bytes, bool *done, Error **errp);
/*
 * With the vCPUs paused: every page left, the device states, EOF and the
 * JSON description.
 */
bool qemu_savevm_state_complete(QEMUFile *f, MachineState *ms,
                                RAMSaveState *rs, Error **errp);

bool qemu_loadvm_state(QEMUFile *f, MachineState *ms, Error **errp);
/*
 * The same, restoring a mapped-ram stream as @opts says (NULL: eagerly,
 * in this thread).  A stream of the other layout ignores @opts.
 */
typedef struct MappedRamLoadOptions MappedRamLoadOptions;
bool qemu_loadvm_state_mapped_ram(QEMUFile *f, MachineState *ms,
                                  const MappedRamLoadOptions *opts,
                                  Error **errp);

/* ---- additions by the stream code ---- */

/* Count one more pass of dirty tracking over RAM (dirty-sync-count). */
void ram_save_note_dirty_sync(RAMSaveState *rs);

/*
 * The final steps of qemu_savevm_state_complete(), split for the
 * background snapshot, which saves device state at the start and appends
 * it at the end:
 *   qemu_savevm_device_state_to_buffer()  with the vCPUs paused: one FULL
 *                                         section per device into @buf,
 *                                         their CRCs into @rs's checksums
 *   qemu_savevm_ram_complete()            RAM END with every page left
 *   qemu_savevm_state_finish()            @device_state, the checksums
 *                                         section, EOF, JSON; flush
 * The fork method's child cannot build JSON, so it has the finish in
 * pieces: qemu_savevm_tail_to_buffer() (EOF and JSON, rendered by the
 * parent before the fork), then, in the child, @device_state,
 * qemu_savevm_put_checksums() and the tail.
 */
bool qemu_savevm_device_state_to_buffer(MachineState *ms, RAMSaveState *rs,
                                        GByteArray *buf, Error **errp);
bool qemu_savevm_ram_complete(QEMUFile *f, RAMSaveState *rs, Error **errp);
bool qemu_savevm_state_finish(QEMUFile *f, MachineState *ms,
                              RAMSaveState *rs,
                              const GByteArray *device_state, Error **errp);
bool qemu_savevm_tail_to_buffer(MachineState *ms, RAMSaveState *rs,
                                GByteArray *tail, Error **errp);
/* Nothing if @rs has checksums off.  Only puts: safe in a fork child. */
void qemu_savevm_put_checksums(QEMUFile *f, MachineState *ms,
                               RAMSaveState *rs);

/*
 * The JSON description of @reg's devices that ends a stream (after
 * QEMU_VM_VMDESCRIPTION and its be32 length *@len), the layout that
 * vmstate_layout_from_json() reads back, with the checksums section's
 * entry if @rs (may be NULL) has checksums on.  Caller frees.
 */
char *qemu_savevm_description(const VMStateRegistry *reg, RAMSaveState *rs,
                              uint32_t *len);

/* ---- reading a stream without a machine (snapvm-img) ---- */

typedef struct StreamRAMBlockInfo {
    char idstr[256];
    uint64_t used_length;
    uint64_t pages;             /* PAGE items for it (a page may repeat) */
    uint64_t zero_pages;        /* ZERO items for it */
    /* mapped-ram: where the block's header, bitmap and pages are */
    uint64_t header_offset, bitmap_offset, pages_offset;
} StreamRAMBlockInfo;

typedef struct StreamDeviceInfo {
    char idstr[256];
    uint32_t instance_id;
    uint32_t version_id;
    uint32_t section_id;
    uint64_t offset;            /* of the section header */
    uint64_t size;              /* header to footer, inclusive */
} StreamDeviceInfo;

/* What a read of a stream found, as far as it got. */
typedef struct StreamSummary {
    char *machine_type;
    uint64_t ram_total;         /* from the RAM START section */
    GArray *ram_blocks;         /* of StreamRAMBlockInfo, in stream order */
    GArray *devices;            /* of StreamDeviceInfo */
    uint64_t pages, zero_pages;
    unsigned ram_sections;      /* START + PARTs + END */
    bool ram_complete;          /* RAM END seen */
    bool eof_seen;
    bool complete;              /* EOF, a valid trailer, nothing after */
    bool mapped_ram;            /* the mapped-ram layout */
    bool checksums;             /* a checksums section, read and matched */
    uint64_t checksums_offset;
    uint64_t checksummed_regions;
    struct StreamChecksums *checksum_values;    /* its values, if read */
    char *description;          /* the JSON trailer */
    uint64_t stream_bytes;      /* consumed */
} StreamSummary;

void stream_summary_init(StreamSummary *sum);
void stream_summary_clear(StreamSummary *sum);

typedef struct StreamInspector {
    /*
     * Device layouts to parse FULL sections with (see
     * vmstate_layout_from_json()); NULL refuses device sections.
     */
    VMStateRegistry *devices;
    /* Called for every page item; @data NULL for a zero page. */
    bool (*ram_page)(void *opaque, const StreamRAMBlockInfo *block,
                     unsigned block_index, uint64_t offset,
                     const uint8_t *data, Error **errp);
    void *opaque;
} StreamInspector;

/*
 * Read a whole stream, checking it as qemu_loadvm_state() does, without a
 * machine.  @sum (initialised by the caller) is filled even on failure.
 */
bool qemu_loadvm_inspect(QEMUFile *f, const StreamInspector *insp,
                         StreamSummary *sum, Error **errp);

#endif
