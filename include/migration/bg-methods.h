/*
 * The experimental background-snapshot methods beside userfaultfd
 * (x-background-snapshot-method): "fork", a child process writing guest
 * RAM from its copy-on-write view, and "mprotect", write protection by
 * mprotect() with a SIGSEGV handler in the faulting vCPU thread.  Both
 * produce the same stream as "userfaultfd".  See "Other methods" in
 * docs/devel/background-snapshot.md.
 */
#ifndef MIGRATION_BG_METHODS_H
#define MIGRATION_BG_METHODS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/options.h"

typedef struct MachineState MachineState;
typedef struct MigrationState MigrationState;
typedef struct QEMUFile QEMUFile;
typedef struct RAMSaveState RAMSaveState;

/*
 * May @ms be snapshotted in the background with @method on this host?
 * "fork" refuses RAMBlocks that are shared mappings (no copy-on-write);
 * "mprotect" refuses guests that would need more VMAs than
 * vm.max_map_count allows; "userfaultfd" asks the kernel's features.
 */
bool background_snapshot_method_check(MachineState *ms,
                                      BackgroundSnapshotMethod method,
                                      Error **errp);

/*
 * The whole snapshot by fork(), from the migration thread of @s: the
 * stream header, the pause (device state to a buffer, fork, resume), then
 * the child writes RAM, device state, EOF and the trailer to @f's channel
 * and exits while this thread waits for it, killing it on migrate_cancel.
 * @rs's figures are the child's when it succeeded.  Does not close @f:
 * the parent owns completion (fsync and rename of a file:, the exec:
 * command's exit status) and does it once the child is gone.
 * *@pause_ns: how long the vCPUs were stopped.
 */
bool bg_fork_save(MigrationState *s, QEMUFile *f, RAMSaveState *rs,
                  int64_t *pause_ns, Error **errp);

#endif
