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

#endif
