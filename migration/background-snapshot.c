/*
 * The background snapshot in the migration thread
 * (include/migration/background-snapshot.h).
 *
 * The write tracker (wp-tracker.c) decides which pages go out when; this
 * file orders the steps around it and hands its runs to the RAM section
 * writer through ram.c's page-source seam.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/cutils.h"
#include "hw/boards.h"
#include "migration/background-snapshot.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "sysemu/runstate.h"

/* RAM written per iterate call: small enough to notice a cancel soon. */
#define BG_ITERATE_BYTES (64 * MiB)

struct BackgroundSnapshot {
    MachineState *ms;
    WPTracker *tracker;
    WPRun run;              /* the one run between next() and done() */
    GMutex lock;            /* guards @tracker against stats readers */
    WPTrackerStats final;   /* the tracker's figures once it is gone */
    bool cancelled;
};

static unsigned machine_blocks(MachineState *ms, RAMBlock **blocks)
{
    RAMBlock *rb;
    unsigned n = 0;

    RAMBLOCK_FOREACH(ms, rb) {
        blocks[n++] = rb;
    }
    return n;
}

bool background_snapshot_check(MachineState *ms, Error **errp)
{
    g_autofree RAMBlock **blocks =
        g_new(RAMBlock *, machine_ram_block_count(ms));
    unsigned n = machine_blocks(ms, blocks);

    return wp_tracker_check_support(blocks, n, errp);
}

BackgroundSnapshot *background_snapshot_new(MachineState *ms,
                                            uint64_t buffer_bytes,
                                            Error **errp)
{
    return background_snapshot_new_method(ms, BG_SNAPSHOT_METHOD_USERFAULTFD,
                                          buffer_bytes, errp);
}

BackgroundSnapshot *background_snapshot_new_method(
    MachineState *ms, BackgroundSnapshotMethod method, uint64_t buffer_bytes,
    Error **errp)
{
    g_autofree RAMBlock **blocks =
        g_new(RAMBlock *, machine_ram_block_count(ms));
    unsigned n = machine_blocks(ms, blocks);

    g_assert(method == BG_SNAPSHOT_METHOD_USERFAULTFD ||
             method == BG_SNAPSHOT_METHOD_MPROTECT);
    if (method == BG_SNAPSHOT_METHOD_MPROTECT &&
        !wp_tracker_check_mprotect(blocks, n, errp)) {
        return NULL;
    }
    WPTracker *t = method == BG_SNAPSHOT_METHOD_MPROTECT ?
        wp_tracker_new_mprotect(blocks, n, buffer_bytes, errp) :
        wp_tracker_new(blocks, n, buffer_bytes, errp);
    if (!t) {
        return NULL;
    }
    BackgroundSnapshot *bs = g_new0(BackgroundSnapshot, 1);
    bs->ms = ms;
    bs->tracker = t;
    g_mutex_init(&bs->lock);
    return bs;
}

static int bg_source_next(void *opaque, RAMPageRun *run, Error **errp)
{
    BackgroundSnapshot *bs = opaque;
    int ret = wp_tracker_next(bs->tracker, &bs->run, errp);

    if (ret == 1) {
        *run = (RAMPageRun) {
            .rb = bs->run.rb,
            .first_page = bs->run.first_page,
            .npages = bs->run.npages,
            .in_guest_ram = bs->run.in_guest_ram,
            .page = bs->run.page,
            .priv = &bs->run,
        };
    }
    return ret;
}

static bool bg_source_done(void *opaque, RAMPageRun *run, Error **errp)
{
    BackgroundSnapshot *bs = opaque;

    return wp_tracker_done(bs->tracker, run->priv, errp);
}

static const RAMPageSourceOps bg_source_ops = {
    .next = bg_source_next,
    .done = bg_source_done,
};

bool background_snapshot_save(BackgroundSnapshot *bs, QEMUFile *f,
                              RAMSaveState *rs, int64_t *pause_ns,
                              Error **errp)
{
    MachineState *ms = bs->ms;
    g_autoptr(GByteArray) devices = g_byte_array_new();
    bool ok = false, was_running, started;
    int64_t pause_start;

    /* The header and block list do not depend on the instant: not paused. */
    if (!qemu_savevm_state_begin(f, ms, rs, errp)) {
        goto out;
    }

    was_running = runstate_is_running(ms);
    pause_start = now_ns();
    if (was_running) {
        vm_stop(ms, RUN_STATE_PAUSED);
    }
    started = qemu_savevm_device_state_to_buffer(ms, rs, devices, errp) &&
              wp_tracker_start(bs->tracker, errp);
    if (was_running) {
        vm_start(ms);
    }
    *pause_ns = now_ns() - pause_start;
    if (!started) {
        goto out;
    }

    ram_save_set_page_source(rs, &bg_source_ops, bs);
    for (bool done = false; !done;) {
        if (qatomic_load_acquire(&bs->cancelled)) {
            error_setg(errp, "background snapshot cancelled");
            goto out;
        }
        if (!qemu_savevm_state_iterate(f, rs, BG_ITERATE_BYTES, &done,
                                       errp)) {
            goto out;
        }
    }
    ok = qemu_savevm_ram_complete(f, rs, errp) &&
         qemu_savevm_state_finish(f, ms, rs, devices, errp);

out:
    /*
     * Success or not, lift every protection now rather than when the
     * caller gets round to freeing us; keep the figures for query-migrate.
     */
    g_mutex_lock(&bs->lock);
    WPTracker *t = g_steal_pointer(&bs->tracker);
    wp_tracker_get_stats(t, &bs->final);
    g_mutex_unlock(&bs->lock);
    wp_tracker_free(t);
    return ok;
}

void background_snapshot_cancel(BackgroundSnapshot *bs)
{
    qatomic_store_release(&bs->cancelled, true);
    g_mutex_lock(&bs->lock);
    if (bs->tracker) {
        wp_tracker_cancel(bs->tracker);
    }
    g_mutex_unlock(&bs->lock);
}

void background_snapshot_get_stats(BackgroundSnapshot *bs,
                                   WPTrackerStats *stats)
{
    g_mutex_lock(&bs->lock);
    if (bs->tracker) {
        wp_tracker_get_stats(bs->tracker, stats);
    } else {
        *stats = bs->final;
    }
    g_mutex_unlock(&bs->lock);
}

void background_snapshot_free(BackgroundSnapshot *bs)
{
    if (!bs) {
        return;
    }
    g_mutex_lock(&bs->lock);
    WPTracker *t = g_steal_pointer(&bs->tracker);
    g_mutex_unlock(&bs->lock);
    wp_tracker_free(t);
    g_mutex_clear(&bs->lock);
    g_free(bs);
}
