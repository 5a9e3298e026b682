/*
 * Helpers for the qtests that migrate and snapshot a guest
 * (migration-test, bg-snapshot-test, bg-methods-test, mapped-ram-test,
 * fault-inject-test, stress-test): start a guest with an environment,
 * drive a migration or snapshot, and check what must hold after any
 * ending: the guest runs, no page is write-protected, no thread or
 * descriptor leaked, and a file restores to one instant (sweep-check.h).
 * One copy of each, here: a fix to one reaches every test.
 */
#ifndef SNAP_UTIL_H
#define SNAP_UTIL_H

#include "free-port.h"
#include "libqtest.h"
#include "sweep-check.h"

#define SNAP_MiB (1024 * 1024)
/* How long a running guest may take to show it, and a snapshot to end. */
#define SNAP_PROGRESS_TIMEOUT_MS 20000
#define SNAP_END_TIMEOUT_MS 120000

typedef struct SnapVM {
    const char *guest;      /* "a-b-sweep" or "random-writer" */
    int smp;
    int ram_mb;
    /*
     * RAM in two -numa nodes of different backends: memory-backend-ram
     * "m0" (3/8 of it) then memory-backend-memfd "m1" (the rest).
     */
    bool two_blocks;
} SnapVM;

/* "-m ..M -smp N", and the two nodes if @vm has them. */
char *snap_vm_args(const SnapVM *vm);
/*
 * Start @vm running with each "NAME=VALUE" of @env (NULL-terminated, may
 * be NULL) set in snapvm's environment, and wait until the guest shows
 * that it runs: several a-b-sweep passes ("BB"), so that RAM is no longer
 * zero and the step can be anywhere, or random-writer's 'R' (every 65536
 * stores).  A guest that does not run fails the test.
 */
QTestState *snap_start(const SnapVM *vm, const char *const *env);
/* query-status says @want ("running", "paused", "postmigrate", ...). */
void snap_assert_run_state(QTestState *qts, const char *want);

/* migrate-set-capabilities background-snapshot; the raw reply. */
JsonObject *snap_try_set_capability(QTestState *qts, bool on);
void snap_set_capability(QTestState *qts, bool on);
/* @buffer < 0: leave the default. @bandwidth: bytes/s, 0 = unlimited. */
void snap_set_params(QTestState *qts, int64_t buffer, int64_t bandwidth);
void snap_migrate(QTestState *qts, const char *uri);

JsonObject *snap_query_migrate(QTestState *qts);
const char *snap_status(JsonObject *info);
/* error-desc, or "" */
const char *snap_error_desc(JsonObject *info);
bool snap_over(JsonObject *info);
/* Poll until completed, failed or cancelled; the final query-migrate. */
JsonObject *snap_wait_end(QTestState *qts, int timeout_ms);
/*
 * A figure of query-migrate's "background-snapshot" object; the test
 * fails if the object or the figure is missing.
 */
gint64 snap_bg_stat(JsonObject *info, const char *name);
/*
 * Wait until the snapshot is active and the guest has taken at least one
 * write fault; fail if it ends first or none comes within the progress
 * timeout.
 */
void snap_wait_faulting(QTestState *qts);

/* The guest writes to its serial port within the progress timeout. */
void snap_assert_guest_runs(QTestState *qts);
/* Guest RAM pages whose PTE is uffd-wp protected (/proc/PID/pagemap). */
uint64_t snap_protected_pages(QTestState *qts);
void snap_assert_nothing_protected(QTestState *qts);
/* Threads of the snapvm process (/proc/PID/task). */
int snap_thread_count(QTestState *qts);
/*
 * Wait until threads and descriptors are back to @threads and @fds (a
 * finishing thread takes a moment to go); fail the test if they do not.
 */
void snap_assert_no_leak(QTestState *qts, int threads, int fds);
/* Child processes of snapvm (from /proc/PID/task/TID/children). */
GArray *snap_children(QTestState *qts);

/* Restore @file with -S into a fresh snapvm of @vm; check one instant. */
void snap_restore_and_check(const SnapVM *vm, const char *file);
/*
 * Snapshot @src to file:@file, assert it completed with the guest
 * running, nothing left protected, and that the file is exact.
 */
void snap_snapshot_and_check(QTestState *src, const SnapVM *vm,
                             const char *file);

#endif
