/*
 * Migration capabilities and parameters, with QEMU's names and units
 * (migrate-set-capabilities, migrate-set-parameters and their queries).
 * They belong to one MigrationState and cannot change while a migration
 * runs; the migration thread reads them without a lock for that reason.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "migration/mapped-ram.h"

typedef struct MachineState MachineState;

typedef enum MigrationCapability {
    MIGRATION_CAPABILITY_EVENTS,                /* "events" */
    MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT,   /* "background-snapshot" */
    MIGRATION_CAPABILITY_MAPPED_RAM,            /* "mapped-ram" */
    MIGRATION_CAPABILITY__MAX
} MigrationCapability;

/* How pre-copy learns which pages the guest wrote (x-dirty-tracking). */
typedef enum DirtyTrackingMethod {
    DIRTY_TRACKING_PAGEMAP_SCAN,    /* "pagemap-scan": uffd-wp async */
    DIRTY_TRACKING_SOFT_DIRTY,      /* "soft-dirty": clear_refs + pagemap */
    DIRTY_TRACKING__MAX
} DirtyTrackingMethod;

/*
 * How a background snapshot keeps the pages of its instant
 * (x-background-snapshot-method; see docs/devel/background-snapshot.md).
 */
typedef enum BackgroundSnapshotMethod {
    BG_SNAPSHOT_METHOD_USERFAULTFD, /* "userfaultfd": write-protect faults */
    BG_SNAPSHOT_METHOD_FORK,        /* "fork": a child's copy-on-write view */
    BG_SNAPSHOT_METHOD_MPROTECT,    /* "mprotect": PROT_READ and SIGSEGV */
    BG_SNAPSHOT_METHOD__MAX
} BackgroundSnapshotMethod;

/* QEMU's defaults. */
#define MIGRATION_DEFAULT_MAX_BANDWIDTH   (128 * MiB)   /* bytes/s */
#define MIGRATION_DEFAULT_DOWNTIME_LIMIT  300           /* ms */
#define MIGRATION_MAX_DOWNTIME_LIMIT      2000000       /* ms, 2000 s */

typedef struct MigrationParameters {
    uint64_t max_bandwidth;         /* bytes/s; 0 means unlimited */
    uint64_t downtime_limit;        /* ms */
    /* bytes; 0: a vCPU always waits for its page to be written */
    uint64_t background_snapshot_buffer_size;
    DirtyTrackingMethod x_dirty_tracking;
    /* mapped-ram: writer threads (and eager reader threads when loading) */
    uint64_t multifd_channels;
    bool direct_io;                 /* mapped-ram pages written O_DIRECT */
    bool x_checksums;               /* the snapshot's checksums section */
    MappedRamRestoreMode x_mapped_ram_restore;
    BackgroundSnapshotMethod x_background_snapshot_method;
} MigrationParameters;

typedef struct MigrationOptions {
    bool caps[MIGRATION_CAPABILITY__MAX];
    MigrationParameters params;
} MigrationOptions;

void migration_options_init(MigrationOptions *opts);

/*
 * The names of the capabilities and of the x- parameters' values, as
 * qapi/migration.json's enums of the same name (the build checks).
 */
extern const QEnumLookup MigrationCapability_lookup;
extern const QEnumLookup DirtyTrackingMethod_lookup;
extern const QEnumLookup BackgroundSnapshotMethod_lookup;

const char *migration_capability_name(MigrationCapability cap);
/*
 * For a name MigrationCapability_lookup does not know: true if it
 * is one of QEMU's capabilities and @on is false (nothing to do), else
 * false with an error that says which.
 */
bool migration_capability_check_unknown(const char *name, bool on,
                                        Error **errp);
const char *dirty_tracking_method_name(DirtyTrackingMethod method);
const char *background_snapshot_method_name(BackgroundSnapshotMethod m);

/*
 * Whether @caps (the whole set, as it would be after a change) can be
 * used together on this host.  Refuses with a message naming the
 * capability and the reason.
 */
bool migration_caps_check(MachineState *ms, const bool *caps, Error **errp);
/*
 * The same, for the background-snapshot method of @params: each method
 * has its own host requirements (userfaultfd write-protect, private
 * mappings for fork, enough VMAs for mprotect).
 */
bool migration_caps_check_method(MachineState *ms, const bool *caps,
                                 const MigrationParameters *params,
                                 Error **errp);

/* Range checks, with QEMU's messages; @params is the whole new set. */
bool migration_params_check(const MigrationParameters *params, Error **errp);

#endif
