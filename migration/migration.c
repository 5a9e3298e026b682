/*
 * Migration control: the state machine, the outgoing migration thread
 * (live pre-copy and stop-and-copy) and the incoming thread.  The stream
 * itself is written and read by savevm.c/ram.c; this file decides when
 * each step runs.  See docs/devel/migration.md.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/bg-methods.h"
#include "migration/dirty-tracking.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "hw/boards.h"
#include "monitor/monitor.h"
#include <signal.h>

/*
 * Pre-copy gives up waiting for convergence after this many dirty syncs
 * or this long, and stops the guest anyway (recorded in the stats).
 */
#define PRECOPY_MAX_SYNCS 30
#define PRECOPY_MAX_TIME_US (60 * G_USEC_PER_SEC)
/* Bytes sent between two looks at cancel, bandwidth and convergence. */
#define PRECOPY_BURST_BYTES (8 * MiB)

static const char *const status_names[MIGRATION_STATUS__MAX] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_CANCELLING] = "cancelling",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
};

const QEnumLookup MigrationStatus_lookup = {
    "MigrationStatus", status_names, MIGRATION_STATUS__MAX,
};

const char *migration_status_name(MigrationStatus status)
{
    return qapi_enum_lookup(&MigrationStatus_lookup, status);
}

static int64_t now_us(void)
{
    return g_get_monotonic_time();
}

/*
 * Events go out without s->lock held: the monitor may hold its own lock
 * while it calls into our commands, which take s->lock.
 */
static void migration_send_event(MigrationState *s, MigrationStatus status)
{
    if (!s->options.caps[MIGRATION_CAPABILITY_EVENTS]) {
        return;
    }
    JsonObject *data = json_object_new();
    json_object_set_string_member(data, "status",
                                  migration_status_name(status));
    qapi_event_send("MIGRATION", data);
}

/*
 * MIGRATION_PASS, as QEMU sends it: pass 1 when the RAM save starts (QEMU
 * counts the full bitmap it starts from as the first sync), then one after
 * every sync of the dirty bitmap; so @pass is dirty-sync-count + 1.  A
 * background snapshot syncs nothing and sends none, as in QEMU.
 */
static void migration_send_pass_event(MigrationState *s, uint64_t pass)
{
    if (!s->options.caps[MIGRATION_CAPABILITY_EVENTS]) {
        return;
    }
    JsonObject *data = json_object_new();
    json_object_set_int_member(data, "pass", pass);
    qapi_event_send("MIGRATION_PASS", data);
}

void migration_set_status(MigrationState *s, MigrationStatus status)
{
    g_mutex_lock(&s->lock);
    s->status = status;
    g_mutex_unlock(&s->lock);
    migration_send_event(s, status);
}

/* Move @from -> @to only if nobody changed the status meanwhile. */
bool migration_advance(MigrationState *s, MigrationStatus from,
                       MigrationStatus to)
{
    g_mutex_lock(&s->lock);
    bool ok = s->status == from;
    if (ok) {
        s->status = to;
    }
    g_mutex_unlock(&s->lock);
    if (ok) {
        migration_send_event(s, to);
    }
    return ok;
}

static bool migration_cancel_requested(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    bool cancelling = s->status == MIGRATION_STATUS_CANCELLING;
    g_mutex_unlock(&s->lock);
    return cancelling;
}

bool migration_is_running(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    MigrationStatus st = s->status;
    g_mutex_unlock(&s->lock);
    return st == MIGRATION_STATUS_SETUP || st == MIGRATION_STATUS_ACTIVE ||
           st == MIGRATION_STATUS_CANCELLING;
}

void migration_publish_file(MigrationState *s, QEMUFile *f)
{
    g_mutex_lock(&s->lock);
    s->file = f;
    g_mutex_unlock(&s->lock);
}

void migration_cancel(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    bool changed = s->status == MIGRATION_STATUS_SETUP ||
                   s->status == MIGRATION_STATUS_ACTIVE;
    if (changed) {
        s->status = MIGRATION_STATUS_CANCELLING;
        if (s->file) {
            qemu_file_cancel(s->file);
        }
        /* The save may be waiting for fault work rather than for I/O. */
        if (s->bg) {
            background_snapshot_cancel(s->bg);
        }
        g_cond_broadcast(&s->cond);
    }
    g_mutex_unlock(&s->lock);
    if (changed) {
        migration_send_event(s, MIGRATION_STATUS_CANCELLING);
    }
}

/* Sleep up to @us, returning early on cancel. */
static void migration_sleep(MigrationState *s, int64_t us)
{
    int64_t end = now_us() + us;

    g_mutex_lock(&s->lock);
    while (s->status != MIGRATION_STATUS_CANCELLING &&
           g_cond_wait_until(&s->cond, &s->lock, end)) {
        continue;
    }
    g_mutex_unlock(&s->lock);
}

/* ---- max-bandwidth ---- */

typedef struct RateLimit {
    MigrationState *s;
    uint64_t bytes_per_sec;     /* 0: unlimited */
    int64_t window_start;
    uint64_t window_bytes;
} RateLimit;

/*
 * Called after every write: sleep until the bytes written in the current
 * window are within the limit.  Windows restart every second so that an
 * idle spell does not buy a burst above the limit later.
 */
static void rate_limit_hook(void *opaque, uint64_t bytes)
{
    RateLimit *rl = opaque;

    if (!rl->bytes_per_sec) {
        return;
    }
    rl->window_bytes += bytes;
    int64_t elapsed = now_us() - rl->window_start;
    int64_t due = rl->window_bytes * G_USEC_PER_SEC / rl->bytes_per_sec;
    if (due > elapsed) {
        migration_sleep(rl->s, due - elapsed);
    }
    if (now_us() - rl->window_start >= G_USEC_PER_SEC) {
        rl->window_start = now_us();
        rl->window_bytes = 0;
    }
}

/* ---- statistics ---- */

static void migration_update_ram_stats(MigrationState *s, RAMSaveState *rs)
{
    RAMStats ram;
    uint64_t remaining = ram_save_remaining(rs) * TARGET_PAGE_SIZE;

    ram_save_get_stats(rs, &ram);
    g_mutex_lock(&s->lock);
    s->stats.ram = ram;
    s->stats.ram_remaining = remaining;
    s->stats.total_time = g_get_real_time() / 1000 - s->stats.start_ms;
    g_mutex_unlock(&s->lock);
}

/*
 * A save without pre-copy passes (stop-and-copy, background snapshot)
 * measured no window: its throughput is its RAM over the time since
 * setup, as QEMU reports for a completed migration.
 */
static void migration_final_throughput(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    int64_t ms = s->stats.total_time - s->stats.setup_time;
    if (s->stats.mbps == 0 && ms > 0) {
        s->stats.mbps = (double)s->stats.ram.transferred * 8 / 1000 / ms;
        s->stats.pages_per_second =
            (s->stats.ram.normal + s->stats.ram.duplicate) * 1000 / ms;
    }
    g_mutex_unlock(&s->lock);
}

void migration_get_stats(MigrationState *s, MigrationStatus *status,
                         MigrationStats *stats, char **error_desc)
{
    g_mutex_lock(&s->lock);
    *status = s->status;
    *stats = s->stats;
    if (s->rs) {
        ram_save_get_stats(s->rs, &stats->ram);
        stats->ram_remaining = ram_save_remaining(s->rs) * TARGET_PAGE_SIZE;
    }
    if (s->bg) {
        background_snapshot_get_stats(s->bg, &stats->wp);
    }
    if (*status == MIGRATION_STATUS_SETUP ||
        *status == MIGRATION_STATUS_ACTIVE ||
        *status == MIGRATION_STATUS_CANCELLING) {
        stats->total_time = g_get_real_time() / 1000 - stats->start_ms;
    }
    stats->ram.dirty_sync_count = stats->dirty_sync_count;
    if (error_desc) {
        *error_desc = s->error ? g_strdup(error_get_pretty(s->error)) : NULL;
    }
    g_mutex_unlock(&s->lock);
}

/* ---- pre-copy ---- */

static void precopy_mark_dirty(RAMBlock *rb, uint64_t first_page,
                               uint64_t npages, void *opaque)
{
    ram_save_mark_dirty(opaque, rb, first_page, npages);
}

/* soft-dirty reads and clears in two steps; nobody may write between. */
static void precopy_pause_vcpus(void *opaque)
{
    vm_stop(opaque, RUN_STATE_PAUSED);
}

static void precopy_resume_vcpus(void *opaque)
{
    vm_start(opaque);
}

static DirtyTracker *precopy_tracker_start(MigrationState *s, Error **errp)
{
    MachineState *ms = s->machine;
    unsigned n = machine_ram_block_count(ms);
    g_autofree RAMBlock **blocks = g_new(RAMBlock *, n);
    DirtyQuiesceOps quiesce = {
        .pause = precopy_pause_vcpus,
        .resume = precopy_resume_vcpus,
        .opaque = ms,
    };

    for (unsigned i = 0; i < n; i++) {
        blocks[i] = machine_ram_block(ms, i);
    }
    return dirty_tracker_start(s->options.params.x_dirty_tracking, blocks,
                               n, &quiesce, errp);
}

/*
 * Send RAM while the guest runs, pass after pass over what it dirtied,
 * until what is left fits the downtime limit at the bandwidth measured
 * (or the bounds above are hit).  Returns false on error or cancel.
 */
static bool precopy_iterate(MigrationState *s, QEMUFile *f, RAMSaveState *rs,
                            DirtyTracker *dt, Error **errp)
{
    int64_t start = now_us();
    int64_t window_start = start;
    uint64_t window_bytes = qemu_file_transferred(f);
    RAMStats ram;
    uint64_t window_pages;
    double bytes_per_us = 0;

    ram_save_get_stats(rs, &ram);
    window_pages = ram.normal + ram.duplicate;
    for (;;) {
        bool done = false;

        if (migration_cancel_requested(s)) {
            error_setg(errp, "Migration cancelled");
            return false;
        }
        if (!qemu_savevm_state_iterate(f, rs, PRECOPY_BURST_BYTES, &done,
                                       errp)) {
            return false;
        }
        migration_update_ram_stats(s, rs);
        if (!done) {
            continue;
        }

        /* A pass ended: measure it, then look at what the guest wrote. */
        int64_t now = now_us();
        int64_t elapsed = MAX(now - window_start, 1);
        uint64_t sent = qemu_file_transferred(f) - window_bytes;
        ram_save_get_stats(rs, &ram);
        if (sent) {
            bytes_per_us = (double)sent / elapsed;
        }
        int64_t dirtied = dirty_tracker_sync(dt, precopy_mark_dirty, rs,
                                             errp);
        if (dirtied < 0) {
            return false;
        }
        uint64_t remaining = ram_save_remaining(rs) * TARGET_PAGE_SIZE;
        int64_t expected_ms = bytes_per_us > 0 ?
            (int64_t)(remaining / bytes_per_us / 1000) : 0;

        g_mutex_lock(&s->lock);
        s->stats.dirty_sync_count++;
        s->stats.last_sync_us = dirty_tracker_last_sync_ns(dt) / 1000;
        s->stats.mbps = bytes_per_us * 8;
        s->stats.pages_per_second =
            (ram.normal + ram.duplicate - window_pages) * G_USEC_PER_SEC /
            elapsed;
        s->stats.dirty_pages_rate = dirtied * G_USEC_PER_SEC / elapsed;
        s->stats.expected_downtime = expected_ms;
        s->stats.ram_remaining = remaining;
        uint64_t syncs = s->stats.dirty_sync_count;
        g_mutex_unlock(&s->lock);
        migration_send_pass_event(s, syncs + 1);

        if (expected_ms <= (int64_t)s->options.params.downtime_limit) {
            g_mutex_lock(&s->lock);
            s->stats.precopy_converged = true;
            g_mutex_unlock(&s->lock);
            return true;
        }
        if (syncs >= PRECOPY_MAX_SYNCS || now - start > PRECOPY_MAX_TIME_US) {
            warn_report("migration: pre-copy did not converge after %" PRIu64
                        " passes (%" PRIu64 " bytes dirty, %" PRId64
                        " ms expected downtime); stopping the guest anyway",
                        syncs, remaining, expected_ms);
            return true;
        }
        window_start = now_us();
        window_bytes = qemu_file_transferred(f);
        window_pages = ram.normal + ram.duplicate;
    }
}

/* ---- background snapshot ---- */

/*
 * The whole snapshot, RAM and devices, as of its start, while the guest
 * keeps running (see docs/devel/background-snapshot.md).  The pause is
 * the downtime; the guest ends as it was, running or paused.
 */
static bool migration_run_background(MigrationState *s, QEMUFile *f,
                                     RAMSaveState *rs, Error **errp)
{
    BackgroundSnapshotMethod method =
        s->options.params.x_background_snapshot_method;
    BackgroundSnapshot *bs = NULL;
    if (method != BG_SNAPSHOT_METHOD_FORK) {    /* fork: bg-fork.c */
        bs = background_snapshot_new_method(
            s->machine, method,
            s->options.params.background_snapshot_buffer_size, errp);
        if (!bs) {
            return false;
        }
    }
    g_mutex_lock(&s->lock);
    s->bg = bs;
    s->stats.background_snapshot = true;
    s->stats.setup_time = g_get_real_time() / 1000 - s->stats.start_ms;
    bool cancelled = s->status == MIGRATION_STATUS_CANCELLING;
    g_mutex_unlock(&s->lock);

    bool ok = false;
    int64_t pause_ns = 0;
    if (cancelled || !migration_advance(s, MIGRATION_STATUS_SETUP,
                                        MIGRATION_STATUS_ACTIVE)) {
        error_setg(errp, "Migration cancelled");
    } else {
        ok = bs ? background_snapshot_save(bs, f, rs, &pause_ns, errp)
                : bg_fork_save(s, f, rs, &pause_ns, errp);
    }

    g_mutex_lock(&s->lock);
    s->bg = NULL;
    if (bs) {
        background_snapshot_get_stats(bs, &s->stats.wp);
    }
    s->stats.pause_us = pause_ns / 1000;
    s->stats.downtime = DIV_ROUND_UP(pause_ns, 1000000);
    g_mutex_unlock(&s->lock);
    background_snapshot_free(bs);
    return ok;
}

/* ---- the outgoing thread ---- */

static bool migration_run(MigrationState *s, QEMUFile **pf, RateLimit *rl,
                          RunState *stopped_from, Error **errp)
{
    MachineState *ms = s->machine;
    QEMUFile *f = *pf;
    RAMSaveState *rs = ram_save_new(ms);
    DirtyTracker *dt = NULL;
    bool live = runstate_is_running(ms);
    bool ok = false;

    if (!s->options.params.x_checksums) {
        ram_save_disable_checksums(rs);
    }

    g_mutex_lock(&s->lock);
    s->rs = rs;
    s->stats.ram_total = machine_ram_size(ms);
    g_mutex_unlock(&s->lock);

    mapped_ram_lazy_finish(ms);
    if (s->options.caps[MIGRATION_CAPABILITY_MAPPED_RAM] &&
        !mapped_ram_enable(rs, f, s->options.params.multifd_channels,
                           s->options.params.direct_io, errp)) {
        goto out;
    }

    if (s->options.caps[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT]) {
        if (!migration_run_background(s, f, rs, errp)) {
            goto out;
        }
        migration_update_ram_stats(s, rs);
        migration_final_throughput(s);
        migration_publish_file(s, NULL);
        *pf = NULL;
        ok = qemu_fclose(f, errp);
        goto out;
    }

    migration_send_pass_event(s, 1);
    /* Tracking starts before the first page is sent, so none is missed. */
    if (live) {
        dt = precopy_tracker_start(s, errp);
        if (!dt) {
            goto out;
        }
    }
    if (!qemu_savevm_state_begin(f, ms, rs, errp)) {
        goto out;
    }
    g_mutex_lock(&s->lock);
    s->stats.setup_time = g_get_real_time() / 1000 - s->stats.start_ms;
    g_mutex_unlock(&s->lock);
    if (!migration_advance(s, MIGRATION_STATUS_SETUP,
                           MIGRATION_STATUS_ACTIVE)) {
        error_setg(errp, "Migration cancelled");
        goto out;
    }
    if (live && !precopy_iterate(s, f, rs, dt, errp)) {
        goto out;
    }

    /* Stop-and-copy: the downtime runs from here to the end of the close. */
    int64_t downtime_start = now_us();
    *stopped_from = runstate_get(ms);
    vm_stop(ms, RUN_STATE_FINISH_MIGRATE);
    if (dt) {
        int64_t dirtied = dirty_tracker_sync(dt, precopy_mark_dirty, rs,
                                             errp);
        g_mutex_lock(&s->lock);
        uint64_t syncs = ++s->stats.dirty_sync_count;
        g_mutex_unlock(&s->lock);
        migration_send_pass_event(s, syncs + 1);
        if (dirtied < 0) {
            goto out;
        }
        dirty_tracker_stop(dt);
        dt = NULL;
    }
    /*
     * A live guest is stopped now: every ms of throttling is downtime.  A
     * guest the user had paused keeps the limit, which is then the only
     * thing that spares the host's I/O.
     */
    if (live) {
        rl->bytes_per_sec = 0;
    }
    if (!qemu_savevm_state_complete(f, ms, rs, errp)) {
        goto out;
    }
    migration_update_ram_stats(s, rs);
    migration_final_throughput(s);
    if (migration_cancel_requested(s)) {
        error_setg(errp, "Migration cancelled");
        goto out;
    }
    /*
     * Unpublished before the close, which frees the file: a cancel from
     * now on is too late to matter (see docs/devel/migration.md).
     */
    migration_publish_file(s, NULL);
    *pf = NULL;
    ok = qemu_fclose(f, errp);
    g_mutex_lock(&s->lock);
    s->stats.downtime = (now_us() - downtime_start) / 1000;
    g_mutex_unlock(&s->lock);

out:
    dirty_tracker_stop(dt);
    g_mutex_lock(&s->lock);
    ram_save_get_stats(rs, &s->stats.ram);
    s->stats.ram_remaining = ram_save_remaining(rs) * TARGET_PAGE_SIZE;
    s->rs = NULL;
    g_mutex_unlock(&s->lock);
    ram_save_free(rs);
    return ok;
}

static gpointer migration_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    MachineState *ms = s->machine;
    Error *err = NULL;
    QEMUFile *f = NULL;
    RateLimit rl = { .s = s };
    RunState stopped_from = runstate_get(ms);
    bool ok = false;

    MigChannel *ch = mig_channel_open_outgoing(s->uri, s->fds, &err);
    if (ch) {
        f = qemu_file_new_output(ch);
        rl.bytes_per_sec = s->options.params.max_bandwidth;
        rl.window_start = now_us();
        qemu_file_set_write_hook(f, rate_limit_hook, &rl);
        migration_publish_file(s, f);
        /* A cancel that came while we connected did not see the file. */
        if (migration_cancel_requested(s)) {
            qemu_file_cancel(f);
        }
        ok = migration_run(s, &f, &rl, &stopped_from, &err);
    }
    if (f) {
        migration_publish_file(s, NULL);
        qemu_file_abort(f);
    }

    g_mutex_lock(&s->lock);
    s->stats.total_time = g_get_real_time() / 1000 - s->stats.start_ms;
    MigrationStatus final;
    if (ok) {
        final = MIGRATION_STATUS_COMPLETED;
    } else if (s->status == MIGRATION_STATUS_CANCELLING) {
        final = MIGRATION_STATUS_CANCELLED;
    } else {
        final = MIGRATION_STATUS_FAILED;
    }
    error_free(s->error);
    s->error = NULL;
    if (final == MIGRATION_STATUS_FAILED) {
        s->error = err;
        err = NULL;
    } else if (final == MIGRATION_STATUS_CANCELLED) {
        error_free(err);
        err = NULL;
        error_setg(&s->error, "Migration cancelled by the user");
    }
    g_mutex_unlock(&s->lock);

    /*
     * As QEMU: the source stays paused after a completed migration; a
     * background snapshot leaves it as it was.
     */
    if (ok && !s->stats.background_snapshot) {
        runstate_set(ms, RUN_STATE_POSTMIGRATE);
    } else if (runstate_get(ms) == RUN_STATE_FINISH_MIGRATE) {
        if (stopped_from == RUN_STATE_RUNNING) {
            vm_start(ms);
        } else {
            runstate_set(ms, stopped_from);
        }
    }
    error_free(err);
    migration_set_status(s, final);
    return NULL;
}

static void migration_join(MigrationState *s)
{
    if (s->thread) {
        g_thread_join(s->thread);
        s->thread = NULL;
    }
}

bool migration_start(MigrationState *s, const char *uri, Error **errp)
{
    if (runstate_get(s->machine) == RUN_STATE_INMIGRATE) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (migration_is_running(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (!mig_uri_check(uri, s->fds, errp) ||
        !mapped_ram_check_uri(uri,
                              s->options.caps[MIGRATION_CAPABILITY_MAPPED_RAM],
                              s->options.params.direct_io, errp)) {
        return false;
    }
    migration_join(s);

    g_mutex_lock(&s->lock);
    memset(&s->stats, 0, sizeof(s->stats));
    s->stats.start_ms = g_get_real_time() / 1000;
    s->stats.ram_total = machine_ram_size(s->machine);
    error_free(s->error);
    s->error = NULL;
    g_free(s->uri);
    s->uri = g_strdup(uri);
    g_mutex_unlock(&s->lock);
    migration_set_status(s, MIGRATION_STATUS_SETUP);
    s->thread = g_thread_new("migration", migration_thread, s);
    return true;
}

/* ---- set-up and shutdown ---- */

MigrationState *migration_init(MachineState *ms, Error **errp)
{
    MigrationState *s = g_new0(MigrationState, 1);

    /*
     * A target that goes away (exec: command that exits, a closed socket)
     * must be an EPIPE that fails the migration, not a signal that kills
     * snapvm.
     */
    signal(SIGPIPE, SIG_IGN);
    s->machine = ms;
    s->fds = mig_fd_store_new();
    migration_options_init(&s->options);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->status = MIGRATION_STATUS_NONE;
    return s;
}

void migration_shutdown(MigrationState *s)
{
    if (!s) {
        return;
    }
    migration_cancel(s);
    migration_join(s);
    migration_incoming_join(s);
    error_free(s->error);
    g_free(s->uri);
    mig_fd_store_free(s->fds);
    g_cond_clear(&s->cond);
    g_mutex_clear(&s->lock);
    g_free(s);
}
