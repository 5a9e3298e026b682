/*
 * The background snapshot as the migration thread runs it: the short
 * pause, RAM written while the guest runs, the device state of the pause
 * instant at the end.  See docs/devel/background-snapshot.md.
 */
#ifndef MIGRATION_BACKGROUND_SNAPSHOT_H
#define MIGRATION_BACKGROUND_SNAPSHOT_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/options.h"
#include "migration/wp-tracker.h"

typedef struct QEMUFile QEMUFile;
typedef struct MachineState MachineState;
typedef struct RAMSaveState RAMSaveState;
typedef struct BackgroundSnapshot BackgroundSnapshot;

/* Default copy buffer (parameter background-snapshot-buffer-size). */
#define BACKGROUND_SNAPSHOT_DEFAULT_BUFFER (64 * MiB)

/*
 * May @ms's RAM be snapshotted in the background on this host?  Errors
 * name the missing kernel feature or the RAMBlock that cannot be
 * write-protected.  Called when the capability is turned on.
 */
bool background_snapshot_check(MachineState *ms, Error **errp);

/*
 * Prepare (before the pause: may populate RAM for reading on kernels
 * without UFFD_FEATURE_WP_UNPOPULATED).
 */
BackgroundSnapshot *background_snapshot_new(MachineState *ms,
                                            uint64_t buffer_bytes,
                                            Error **errp);

/*
 * Write the whole snapshot to @f using @rs (fresh from ram_save_new()):
 * the stream header, the pause (device state to a buffer, write-protect,
 * resume if the guest was running), RAM while the guest runs, then the
 * device state, EOF and the JSON description.  Does not close @f.  On
 * return, success or not, no guest page is write-protected any more.
 * *@pause_ns is set once the guest has resumed: how long it was paused.
 */
bool background_snapshot_save(BackgroundSnapshot *bs, QEMUFile *f,
                              RAMSaveState *rs, int64_t *pause_ns,
                              Error **errp);

/*
 * The same with the write tracker's userfaultfd or mprotect backend
 * (x-background-snapshot-method; "fork" is migration/bg-fork.c's).
 */
BackgroundSnapshot *background_snapshot_new_method(
    MachineState *ms, BackgroundSnapshotMethod method, uint64_t buffer_bytes,
    Error **errp);

/* Thread safe: make a running save fail soon with "cancelled". */
void background_snapshot_cancel(BackgroundSnapshot *bs);

/* Thread safe; the final figures once the save has returned. */
void background_snapshot_get_stats(BackgroundSnapshot *bs,
                                   WPTrackerStats *stats);

void background_snapshot_free(BackgroundSnapshot *bs);

#endif
