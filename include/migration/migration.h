/*
 * The migration control state: one MigrationState per machine, created by
 * migration_init() and passed to every command handler as its opaque.
 * Outgoing streams are produced by a migration thread, incoming ones are
 * loaded by an incoming thread; the monitor only starts, queries and
 * cancels them.  See docs/devel/migration.md.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/background-snapshot.h"
#include "migration/channel.h"
#include "migration/fdset.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/savevm.h"
#include "sysemu/runstate.h"
#include <json-glib/json-glib.h>

typedef struct QEMUFile QEMUFile;

/* QEMU's MigrationStatus names (query-migrate "status", event MIGRATION). */
typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS__MAX
} MigrationStatus;

/* The status names, as qapi/migration.json's MigrationStatus. */
extern const QEnumLookup MigrationStatus_lookup;
const char *migration_status_name(MigrationStatus status);

/* Figures of the current or last migration, for query-migrate. */
typedef struct MigrationStats {
    int64_t start_ms;           /* realtime, when migrate was issued */
    int64_t total_time;         /* ms, so far or in all */
    int64_t setup_time;         /* ms from migrate to "active" */
    int64_t downtime;           /* ms the vCPUs were stopped */
    int64_t expected_downtime;  /* ms, estimate while iterating */
    uint64_t ram_total;         /* bytes of guest RAM */
    uint64_t ram_remaining;     /* bytes still to send */
    RAMStats ram;
    double mbps;                /* measured throughput, Mbit/s */
    uint64_t pages_per_second;
    uint64_t dirty_pages_rate;  /* pages/s written by the guest */
    uint64_t dirty_sync_count;  /* dirty syncs done */
    uint64_t last_sync_us;      /* duration of the last dirty sync */
    bool precopy_converged;     /* false: stopped after the pass bound */
    bool background_snapshot;   /* this one is a background snapshot */
    int64_t pause_us;           /* its pause, once the guest resumed */
    WPTrackerStats wp;          /* its write-tracking figures */
} MigrationStats;

struct MigrationState {
    MachineState *machine;
    MigFdStore *fds;
    MigrationOptions options;

    /*
     * Shared by the monitor (main loop) and the migration / incoming
     * thread: the status, the error, the stats and the published file.
     */
    GMutex lock;
    GCond cond;                 /* wakes a rate-limit sleep on cancel */
    MigrationStatus status;
    Error *error;               /* why the last migration failed */
    MigrationStats stats;
    QEMUFile *file;             /* cancellable while published */
    RAMSaveState *rs;           /* for live RAM figures */
    BackgroundSnapshot *bg;     /* cancellable, live figures */

    /* Outgoing. */
    GThread *thread;
    char *uri;
    RunState prev_runstate;     /* restored on failure and cancel */

    /* Incoming. */
    bool incoming;              /* -incoming was given */
    bool incoming_deferred;     /* "defer": waiting for migrate-incoming */
    bool incoming_autostart;    /* run once loaded (no -S) */
    GThread *incoming_thread;
};

/* True while a migration is in setup, active or cancelling. */
bool migration_is_running(MigrationState *s);

/* Status changes, with the MIGRATION event when "events" is on. */
void migration_set_status(MigrationState *s, MigrationStatus status);
/* Move @from -> @to only if nobody changed the status meanwhile. */
bool migration_advance(MigrationState *s, MigrationStatus from,
                       MigrationStatus to);
/* The stream migrate_cancel may cancel (NULL: none). */
void migration_publish_file(MigrationState *s, QEMUFile *f);
/* Wait for the incoming thread, if any (migration-incoming.c). */
void migration_incoming_join(MigrationState *s);

/* The commands' bodies; QMP and HMP shells call these. */
bool migration_start(MigrationState *s, const char *uri, Error **errp);
void migration_cancel(MigrationState *s);
bool migration_incoming_deferred_start(MigrationState *s, const char *uri,
                                       Error **errp);
/* A consistent copy of the figures, with the live RAM counters folded in. */
void migration_get_stats(MigrationState *s, MigrationStatus *status,
                         MigrationStats *stats, char **error_desc);

/* Shared by the QMP and HMP shells (migration-qmp-cmds.c). */
JsonObject *migration_info_to_json(MigrationState *s);
JsonObject *migration_parameters_to_json(MigrationState *s);
bool migration_set_capability(MigrationState *s, const char *name, bool on,
                              Error **errp);
/* @args: migrate-set-parameters' arguments. */
bool migration_set_parameters_json(MigrationState *s, JsonObject *args,
                                   Error **errp);

/*
 * The shells' registration (migration-qmp-cmds.c, migration-hmp-cmds.c);
 * once, from start-up (snapvm_register_commands()), not from the core.
 */
void migration_register_qmp_commands(MigrationState *s);
void migration_register_hmp_commands(MigrationState *s);

/* Named descriptors for fd: (getfd / closefd), thread safe. */
MigFdStore *mig_fd_store_new(void);
void mig_fd_store_free(MigFdStore *store);
/* Takes ownership of @fd; replaces (and closes) one of the same name. */
bool mig_fd_store_add(MigFdStore *store, const char *name, int fd,
                      Error **errp);
bool mig_fd_store_close(MigFdStore *store, const char *name, Error **errp);
/* Removes @name and returns its fd, which the caller now owns. */
int mig_fd_store_take(MigFdStore *store, const char *name, Error **errp);
bool mig_fd_store_has(MigFdStore *store, const char *name);
/* add-fd's descriptor sets, which live as long as the store. */
MigFdSets *mig_fd_store_fdsets(MigFdStore *store);

/* Whether @uri names a known transport (and an existing fd: name). */
bool mig_uri_check(const char *uri, MigFdStore *fds, Error **errp);

#endif
