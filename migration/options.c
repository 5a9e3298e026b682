/*
 * Capabilities and parameters (include/migration/options.h).
 */
#include "qemu/osdep.h"
#include "migration/background-snapshot.h"
#include "migration/bg-methods.h"
#include "migration/options.h"
#include "qemu/cutils.h"

static const char *const capability_names[MIGRATION_CAPABILITY__MAX] = {
    [MIGRATION_CAPABILITY_EVENTS] = "events",
    [MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT] = "background-snapshot",
    [MIGRATION_CAPABILITY_MAPPED_RAM] = "mapped-ram",
};

static const char *const dirty_tracking_names[DIRTY_TRACKING__MAX] = {
    [DIRTY_TRACKING_PAGEMAP_SCAN] = "pagemap-scan",
    [DIRTY_TRACKING_SOFT_DIRTY] = "soft-dirty",
};

static const char *const bg_method_names[BG_SNAPSHOT_METHOD__MAX] = {
    [BG_SNAPSHOT_METHOD_USERFAULTFD] = "userfaultfd",
    [BG_SNAPSHOT_METHOD_FORK] = "fork",
    [BG_SNAPSHOT_METHOD_MPROTECT] = "mprotect",
};

const QEnumLookup MigrationCapability_lookup = {
    "MigrationCapability", capability_names, MIGRATION_CAPABILITY__MAX,
};
const QEnumLookup DirtyTrackingMethod_lookup = {
    "DirtyTrackingMethod", dirty_tracking_names, DIRTY_TRACKING__MAX,
};
const QEnumLookup BackgroundSnapshotMethod_lookup = {
    "BackgroundSnapshotMethod", bg_method_names, BG_SNAPSHOT_METHOD__MAX,
};

void migration_options_init(MigrationOptions *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->params.max_bandwidth = MIGRATION_DEFAULT_MAX_BANDWIDTH;
    opts->params.downtime_limit = MIGRATION_DEFAULT_DOWNTIME_LIMIT;
    opts->params.x_dirty_tracking = DIRTY_TRACKING_PAGEMAP_SCAN;
    opts->params.background_snapshot_buffer_size =
        BACKGROUND_SNAPSHOT_DEFAULT_BUFFER;
    opts->params.multifd_channels = MAPPED_RAM_DEFAULT_CHANNELS;
    opts->params.x_mapped_ram_restore = MAPPED_RAM_RESTORE_EAGER;
    opts->params.x_checksums = true;
}

const char *migration_capability_name(MigrationCapability cap)
{
    return qapi_enum_lookup(&MigrationCapability_lookup, cap);
}

/*
 * QEMU's capabilities (10.0, plus the removed 'block' and 'compress')
 * that snapvm does not implement.  A client that turns a list of them
 * off must not fail: off is accepted and changes nothing; on is refused
 * by name.
 */
static const char *const qemu_only_capabilities[] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks",
    "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps",
    "postcopy-blocktime", "late-block-activate", "x-ignore-shared",
    "validate-uuid", "zero-copy-send", "postcopy-preempt", "switchover-ack",
    "dirty-limit", "compress",
};

bool migration_capability_check_unknown(const char *name, bool on,
                                        Error **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(qemu_only_capabilities); i++) {
        if (!strcmp(qemu_only_capabilities[i], name)) {
            if (on) {
                error_setg(errp, "Capability '%s' is not implemented by "
                           "snapvm: it can only be turned off", name);
                return false;
            }
            return true;
        }
    }
    error_setg(errp, "Parameter 'capability' does not accept value '%s'",
               name);
    return false;
}

const char *dirty_tracking_method_name(DirtyTrackingMethod method)
{
    return qapi_enum_lookup(&DirtyTrackingMethod_lookup, method);
}

const char *background_snapshot_method_name(BackgroundSnapshotMethod m)
{
    return qapi_enum_lookup(&BackgroundSnapshotMethod_lookup, m);
}

/*
 * background-snapshot works with every other capability snapvm has
 * ("events" and "mapped-ram"; only its "fork" method refuses mapped-ram,
 * migration_caps_check_method()).  What it needs is the host's:
 * userfaultfd write-protect for every RAMBlock.  Asked of the kernel when
 * the capability is turned on, so that a "migrate" never fails for that
 * reason later.
 */
bool migration_caps_check(MachineState *ms, const bool *caps, Error **errp)
{
    /*
     * mapped-ram works with every other capability snapvm has: pages
     * written by a background snapshot, a stop-and-copy or a live
     * pre-copy all go to their one place.  What it needs, a file:
     * target, is known at "migrate" (mapped_ram_check_uri()).
     */
    /*
     * Write-protect cannot register RAM that a lazy restore is still
     * filling (it is registered with another userfaultfd): wait until
     * it is whole.
     */
    if (caps[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT]) {
        mapped_ram_lazy_finish(ms);
        if (!background_snapshot_check(ms, errp)) {
            return false;
        }
    }
    return true;
}

bool migration_caps_check_method(MachineState *ms, const bool *caps,
                                 const MigrationParameters *params,
                                 Error **errp)
{
    if (params->x_background_snapshot_method == BG_SNAPSHOT_METHOD_USERFAULTFD
        || !caps[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT]) {
        return migration_caps_check(ms, caps, errp);
    }
    /*
     * The fork child has one thread: mapped-ram's writer threads would not
     * exist there, and it would wait for them for ever.
     */
    if (params->x_background_snapshot_method == BG_SNAPSHOT_METHOD_FORK &&
        caps[MIGRATION_CAPABILITY_MAPPED_RAM]) {
        error_setg(errp, "x-background-snapshot-method 'fork' cannot be "
                   "used with capability 'mapped-ram' (its writer threads "
                   "do not survive fork()): use another method or turn "
                   "mapped-ram off");
        return false;
    }
    /* The others as usual; the method's own needs instead of userfaultfd. */
    bool others[MIGRATION_CAPABILITY__MAX];
    memcpy(others, caps, sizeof(others));
    others[MIGRATION_CAPABILITY_BACKGROUND_SNAPSHOT] = false;
    return migration_caps_check(ms, others, errp) &&
           background_snapshot_method_check(
               ms, params->x_background_snapshot_method, errp);
}

bool migration_params_check(const MigrationParameters *params, Error **errp)
{
    if (params->downtime_limit > MIGRATION_MAX_DOWNTIME_LIMIT) {
        error_setg(errp, "Parameter 'downtime_limit' expects an integer in "
                   "the range of 0 to %d milliseconds",
                   MIGRATION_MAX_DOWNTIME_LIMIT);
        return false;
    }
    if (params->max_bandwidth > SIZE_MAX) {
        error_setg(errp, "Parameter 'max_bandwidth' expects an integer in "
                   "the range of 0 to %zu bytes/second", SIZE_MAX);
        return false;
    }
    if (params->background_snapshot_buffer_size > 64 * GiB) {
        error_setg(errp, "Parameter 'background-snapshot-buffer-size' "
                   "expects an integer in the range of 0 to 64 GiB");
        return false;
    }
    if (params->multifd_channels < 1 ||
        params->multifd_channels > MAPPED_RAM_MAX_CHANNELS) {
        error_setg(errp, "Parameter 'multifd-channels' expects a value "
                   "between 1 and %d", MAPPED_RAM_MAX_CHANNELS);
        return false;
    }
    if (params->x_dirty_tracking >= DIRTY_TRACKING__MAX) {
        error_setg(errp, "Parameter 'x-dirty-tracking' expects "
                   "'pagemap-scan' or 'soft-dirty'");
        return false;
    }
    if (params->x_background_snapshot_method >= BG_SNAPSHOT_METHOD__MAX) {
        error_setg(errp, "Parameter 'x-background-snapshot-method' expects "
                   "'userfaultfd', 'fork' or 'mprotect'");
        return false;
    }
    return true;
}
