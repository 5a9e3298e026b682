/*
 * QMP commands of migration (documented in qapi/migration.json).  Each is
 * a thin shell over migration.c / options.c.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/dirty-tracking.h"
#include "monitor/monitor.h"

static const char *arg_str(JsonObject *args, const char *name)
{
    return json_object_has_member(args, name) ?
           json_object_get_string_member(args, name) : NULL;
}

static JsonNode *qmp_migrate(JsonObject *args, void *opaque, Error **errp)
{
    MigrationState *s = opaque;

    if (json_object_has_member(args, "resume") &&
        json_object_get_boolean_member(args, "resume")) {
        error_setg(errp, "Migration resume is only for a paused postcopy "
                   "migration, which snapvm does not do");
        return NULL;
    }
    /* "detach" is accepted and ignored: QMP migrate always returns at once. */
    migration_start(s, arg_str(args, "uri"), errp);
    return NULL;
}

static JsonNode *qmp_migrate_incoming(JsonObject *args, void *opaque,
                                      Error **errp)
{
    migration_incoming_deferred_start(opaque, arg_str(args, "uri"), errp);
    return NULL;
}

static JsonNode *qmp_migrate_cancel(JsonObject *args, void *opaque,
                                    Error **errp)
{
    migration_cancel(opaque);
    return NULL;
}

JsonObject *migration_info_to_json(MigrationState *s)
{
    MigrationStatus status;
    MigrationStats st;
    g_autofree char *error_desc = NULL;
    JsonObject *info = json_object_new();

    migration_get_stats(s, &status, &st, &error_desc);
    if (status == MIGRATION_STATUS_NONE) {
        return info;    /* QEMU answers {} before the first migration */
    }
    json_object_set_string_member(info, "status",
                                  migration_status_name(status));
    json_object_set_int_member(info, "total-time", st.total_time);
    if (status == MIGRATION_STATUS_COMPLETED ||
        (st.background_snapshot && st.pause_us)) {
        json_object_set_int_member(info, "downtime", st.downtime);
    } else if (status == MIGRATION_STATUS_ACTIVE) {
        json_object_set_int_member(info, "expected-downtime",
                                   st.expected_downtime);
    }
    json_object_set_int_member(info, "setup-time", st.setup_time);
    if (status != MIGRATION_STATUS_SETUP) {
        JsonObject *ram = json_object_new();
        json_object_set_int_member(ram, "transferred", st.ram.transferred);
        json_object_set_int_member(ram, "remaining", st.ram_remaining);
        json_object_set_int_member(ram, "total", st.ram_total);
        json_object_set_int_member(ram, "duplicate", st.ram.duplicate);
        json_object_set_int_member(ram, "normal", st.ram.normal);
        json_object_set_int_member(ram, "normal-bytes", st.ram.normal_bytes);
        json_object_set_int_member(ram, "pages-per-second",
                                   st.pages_per_second);
        json_object_set_double_member(ram, "mbps", st.mbps);
        json_object_set_int_member(ram, "dirty-sync-count",
                                   st.dirty_sync_count);
        json_object_set_int_member(ram, "dirty-pages-rate",
                                   st.dirty_pages_rate);
        json_object_set_int_member(ram, "page-size", TARGET_PAGE_SIZE);
        json_object_set_object_member(info, "ram", ram);
        if (st.dirty_sync_count) {
            json_object_set_int_member(info, "x-dirty-sync-time-us",
                                       st.last_sync_us);
            json_object_set_boolean_member(info, "x-precopy-converged",
                                           st.precopy_converged);
        }
    }
    if (st.background_snapshot) {
        JsonObject *bg = json_object_new();
        json_object_set_int_member(bg, "pause-us", st.pause_us);
        json_object_set_int_member(bg, "faults", st.wp.faults);
        json_object_set_int_member(bg, "copied-pages", st.wp.copied_pages);
        json_object_set_int_member(bg, "waited-faults", st.wp.waited_faults);
        json_object_set_int_member(bg, "wait-time-us",
                                   st.wp.wait_time_ns / 1000);
        json_object_set_int_member(bg, "buffer-size", st.wp.buffer_size);
        json_object_set_int_member(bg, "buffer-peak", st.wp.buffer_peak);
        json_object_set_int_member(bg, "unprotect-calls",
                                   st.wp.unprotect_calls);
        json_object_set_boolean_member(bg, "wp-unpopulated",
                                       st.wp.wp_unpopulated);
        json_object_set_string_member(bg, "unpopulated-pages",
                                      wp_unpopulated_method_name(
                                          st.wp.unpopulated));
        json_object_set_object_member(info, "background-snapshot", bg);
    }
    if (error_desc && (status == MIGRATION_STATUS_FAILED ||
                       status == MIGRATION_STATUS_CANCELLED)) {
        json_object_set_string_member(info, "error-desc", error_desc);
    }
    return info;
}

static JsonNode *qmp_query_migrate(JsonObject *args, void *opaque,
                                   Error **errp)
{
    return json_node_from_object(migration_info_to_json(opaque));
}

/*
 * True if capabilities and parameters may change now; false, with
 * QEMU's error, while a migration runs.  True on success, as every other
 * function here that takes an errp.
 */
static bool migration_options_may_change(MigrationState *s, Error **errp)
{
    if (migration_is_running(s)) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    return true;
}

bool migration_set_capability(MigrationState *s, const char *name, bool on,
                              Error **errp)
{
    int cap = qapi_enum_parse(&MigrationCapability_lookup, name, NULL, NULL);

    if (cap < 0) {
        return migration_capability_check_unknown(name, on, errp) &&
               migration_options_may_change(s, errp);
    }
    if (!migration_options_may_change(s, errp)) {
        return false;
    }
    bool caps[MIGRATION_CAPABILITY__MAX];
    memcpy(caps, s->options.caps, sizeof(caps));
    caps[cap] = on;
    if (!migration_caps_check_method(s->machine, caps, &s->options.params,
                                     errp)) {
        return false;
    }
    memcpy(s->options.caps, caps, sizeof(caps));
    return true;
}

static JsonNode *qmp_migrate_set_capabilities(JsonObject *args, void *opaque,
                                              Error **errp)
{
    MigrationState *s = opaque;
    JsonArray *list = json_object_get_array_member(args, "capabilities");
    bool caps[MIGRATION_CAPABILITY__MAX];

    if (!migration_options_may_change(s, errp)) {
        return NULL;
    }
    memcpy(caps, s->options.caps, sizeof(caps));
    /* All or nothing: check every entry before changing anything. */
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonNode *node = json_array_get_element(list, i);
        JsonObject *item = JSON_NODE_HOLDS_OBJECT(node) ?
                           json_node_get_object(node) : NULL;
        JsonNode *name = item ? json_object_get_member(item, "capability")
                              : NULL;
        JsonNode *state = item ? json_object_get_member(item, "state")
                               : NULL;
        if (!name || json_node_get_value_type(name) != G_TYPE_STRING ||
            !state || json_node_get_value_type(state) != G_TYPE_BOOLEAN) {
            error_setg(errp, "Invalid parameter type for 'capabilities', "
                       "expected: MigrationCapabilityStatus "
                       "{capability: str, state: bool}");
            return NULL;
        }
        int cap = qapi_enum_parse(&MigrationCapability_lookup,
                                  json_node_get_string(name), NULL, NULL);
        if (cap < 0) {
            if (!migration_capability_check_unknown(
                    json_node_get_string(name), json_node_get_boolean(state),
                    errp)) {
                return NULL;
            }
            continue;
        }
        caps[cap] = json_node_get_boolean(state);
    }
    if (!migration_caps_check_method(s->machine, caps, &s->options.params,
                                     errp)) {
        return NULL;
    }
    memcpy(s->options.caps, caps, sizeof(caps));
    return NULL;
}

static JsonNode *qmp_query_migrate_capabilities(JsonObject *args,
                                                void *opaque, Error **errp)
{
    MigrationState *s = opaque;
    JsonArray *list = json_array_new();

    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        JsonObject *item = json_object_new();
        json_object_set_string_member(item, "capability",
                                      migration_capability_name(i));
        json_object_set_boolean_member(item, "state", s->options.caps[i]);
        json_array_add_object_element(list, item);
    }
    return json_node_from_array(list);
}

static bool param_uint(JsonObject *args, const char *name, uint64_t *out,
                       Error **errp)
{
    if (!json_object_has_member(args, name)) {
        return true;
    }
    int64_t v = json_object_get_int_member(args, name);
    if (v < 0) {
        error_setg(errp, "Parameter '%s' expects a non-negative integer",
                   name);
        return false;
    }
    *out = v;
    return true;
}

bool migration_set_parameters_json(MigrationState *s, JsonObject *args,
                                   Error **errp)
{
    MigrationParameters params = s->options.params;
    const char *tracking = arg_str(args, "x-dirty-tracking");
    const char *restore = arg_str(args, "x-mapped-ram-restore");

    if (!migration_options_may_change(s, errp)) {
        return false;
    }
    if (!param_uint(args, "max-bandwidth", &params.max_bandwidth, errp) ||
        !param_uint(args, "downtime-limit", &params.downtime_limit, errp) ||
        !param_uint(args, "background-snapshot-buffer-size",
                    &params.background_snapshot_buffer_size, errp) ||
        !param_uint(args, "multifd-channels", &params.multifd_channels,
                    errp)) {
        return false;
    }
    if (json_object_has_member(args, "x-checksums")) {
        params.x_checksums = json_object_get_boolean_member(args,
                                                            "x-checksums");
    }
    if (json_object_has_member(args, "direct-io")) {
        params.direct_io = json_object_get_boolean_member(args, "direct-io");
    }
    if (restore) {
        int m = qapi_enum_parse(&MappedRamRestoreMode_lookup, restore,
                                "x-mapped-ram-restore", errp);
        if (m < 0) {
            return false;
        }
        params.x_mapped_ram_restore = m;
    }
    if (tracking) {
        int m = qapi_enum_parse(&DirtyTrackingMethod_lookup, tracking,
                                "x-dirty-tracking", errp);
        if (m < 0) {
            return false;
        }
        if (!dirty_tracking_supported(m, errp)) {
            return false;
        }
        params.x_dirty_tracking = m;
    }
    const char *bg_method = arg_str(args, "x-background-snapshot-method");
    if (bg_method) {
        int m = qapi_enum_parse(&BackgroundSnapshotMethod_lookup, bg_method,
                                "x-background-snapshot-method", errp);
        if (m < 0) {
            return false;
        }
        params.x_background_snapshot_method = m;
        /* With the capability on, the new method must work here too. */
        if (!migration_caps_check_method(s->machine, s->options.caps,
                                         &params, errp)) {
            return false;
        }
    }
    if (!migration_params_check(&params, errp)) {
        return false;
    }
    s->options.params = params;
    return true;
}

static JsonNode *qmp_migrate_set_parameters(JsonObject *args, void *opaque,
                                            Error **errp)
{
    migration_set_parameters_json(opaque, args, errp);
    return NULL;
}

JsonObject *migration_parameters_to_json(MigrationState *s)
{
    const MigrationParameters *p = &s->options.params;
    JsonObject *obj = json_object_new();

    json_object_set_int_member(obj, "max-bandwidth", p->max_bandwidth);
    json_object_set_int_member(obj, "downtime-limit", p->downtime_limit);
    json_object_set_int_member(obj, "background-snapshot-buffer-size",
                               p->background_snapshot_buffer_size);
    json_object_set_string_member(obj, "x-dirty-tracking",
                                  dirty_tracking_method_name(
                                      p->x_dirty_tracking));
    json_object_set_string_member(obj, "x-background-snapshot-method",
                                  background_snapshot_method_name(
                                      p->x_background_snapshot_method));
    json_object_set_int_member(obj, "multifd-channels", p->multifd_channels);
    json_object_set_boolean_member(obj, "direct-io", p->direct_io);
    json_object_set_boolean_member(obj, "x-checksums", p->x_checksums);
    json_object_set_string_member(obj, "x-mapped-ram-restore",
                                  mapped_ram_restore_mode_name(
                                      p->x_mapped_ram_restore));
    return obj;
}

static JsonNode *qmp_query_migrate_parameters(JsonObject *args, void *opaque,
                                              Error **errp)
{
    return json_node_from_object(migration_parameters_to_json(opaque));
}

static JsonNode *qmp_getfd(JsonObject *args, void *opaque, Error **errp)
{
    MigrationState *s = opaque;
    int fd = monitor_take_passed_fd();

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (!mig_fd_store_add(s->fds, arg_str(args, "fdname"), fd, errp)) {
        close(fd);
    }
    return NULL;
}

static JsonNode *qmp_closefd(JsonObject *args, void *opaque, Error **errp)
{
    MigrationState *s = opaque;

    mig_fd_store_close(s->fds, arg_str(args, "fdname"), errp);
    return NULL;
}

static JsonNode *qmp_add_fd(JsonObject *args, void *opaque, Error **errp)
{
    MigrationState *s = opaque;
    bool has_id = json_object_has_member(args, "fdset-id");
    int64_t id = has_id ? json_object_get_int_member(args, "fdset-id") : 0;
    int fd = monitor_take_passed_fd();

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    id = mig_fdsets_add(mig_fd_store_fdsets(s->fds), has_id, id,
                        arg_str(args, "opaque"), fd, errp);
    if (id < 0) {
        close(fd);
        return NULL;
    }
    JsonObject *ret = json_object_new();
    json_object_set_int_member(ret, "fdset-id", id);
    json_object_set_int_member(ret, "fd", fd);
    return json_node_from_object(ret);
}

static JsonNode *qmp_remove_fd(JsonObject *args, void *opaque, Error **errp)
{
    MigrationState *s = opaque;
    bool has_fd = json_object_has_member(args, "fd");

    mig_fdsets_remove(mig_fd_store_fdsets(s->fds),
                      json_object_get_int_member(args, "fdset-id"), has_fd,
                      has_fd ? json_object_get_int_member(args, "fd") : -1,
                      errp);
    return NULL;
}

/* Builds query-fdsets' list: entries come ordered by set id. */
static void fdset_info_add(int64_t set_id, int fd, const char *opaque,
                           void *data)
{
    JsonArray *list = data;
    guint n = json_array_get_length(list);
    JsonObject *set = n ? json_array_get_object_element(list, n - 1) : NULL;

    if (!set || json_object_get_int_member(set, "fdset-id") != set_id) {
        set = json_object_new();
        json_object_set_int_member(set, "fdset-id", set_id);
        json_object_set_array_member(set, "fds", json_array_new());
        json_array_add_object_element(list, set);
    }
    JsonObject *info = json_object_new();
    json_object_set_int_member(info, "fd", fd);
    if (opaque) {
        json_object_set_string_member(info, "opaque", opaque);
    }
    json_array_add_object_element(json_object_get_array_member(set, "fds"),
                                  info);
}

static JsonNode *qmp_query_fdsets(JsonObject *args, void *opaque,
                                  Error **errp)
{
    MigrationState *s = opaque;
    JsonArray *list = json_array_new();

    mig_fdsets_foreach(mig_fd_store_fdsets(s->fds), fdset_info_add, list);
    return json_node_from_array(list);
}

void migration_register_qmp_commands(MigrationState *s)
{
    static const QmpArgSpec migrate_args[] = {
        { "uri", QMP_ARG_STR },
        { "detach", QMP_ARG_BOOL, true },
        { "resume", QMP_ARG_BOOL, true },
        QMP_ARGS_END
    };
    static const QmpArgSpec uri_args[] = {
        { "uri", QMP_ARG_STR },
        QMP_ARGS_END
    };
    static const QmpArgSpec caps_args[] = {
        { "capabilities", QMP_ARG_ARRAY },
        QMP_ARGS_END
    };
    static const QmpArgSpec params_args[] = {
        /* In qapi/migration.json's order (checked at build time). */
        { "max-bandwidth", QMP_ARG_INT, true },
        { "downtime-limit", QMP_ARG_INT, true },
        { "x-dirty-tracking", QMP_ARG_STR, true },
        { "background-snapshot-buffer-size", QMP_ARG_INT, true },
        { "multifd-channels", QMP_ARG_INT, true },
        { "direct-io", QMP_ARG_BOOL, true },
        { "x-mapped-ram-restore", QMP_ARG_STR, true },
        { "x-background-snapshot-method", QMP_ARG_STR, true },
        { "x-checksums", QMP_ARG_BOOL, true },
        QMP_ARGS_END
    };
    static const QmpArgSpec fdname_args[] = {
        { "fdname", QMP_ARG_STR },
        QMP_ARGS_END
    };
    static const QmpArgSpec add_fd_args[] = {
        { "fdset-id", QMP_ARG_INT, true },
        { "opaque", QMP_ARG_STR, true },
        QMP_ARGS_END
    };
    static const QmpArgSpec remove_fd_args[] = {
        { "fdset-id", QMP_ARG_INT },
        { "fd", QMP_ARG_INT, true },
        QMP_ARGS_END
    };

    qmp_register_command("migrate", migrate_args, qmp_migrate, s,
                         QMP_CMD_NONE);
    qmp_register_command("migrate-incoming", uri_args, qmp_migrate_incoming,
                         s, QMP_CMD_NONE);
    qmp_register_command("migrate_cancel", NULL, qmp_migrate_cancel, s,
                         QMP_CMD_NONE);
    qmp_register_command("query-migrate", NULL, qmp_query_migrate, s,
                         QMP_CMD_NONE);
    qmp_register_command("migrate-set-capabilities", caps_args,
                         qmp_migrate_set_capabilities, s, QMP_CMD_NONE);
    qmp_register_command("query-migrate-capabilities", NULL,
                         qmp_query_migrate_capabilities, s, QMP_CMD_NONE);
    qmp_register_command("migrate-set-parameters", params_args,
                         qmp_migrate_set_parameters, s, QMP_CMD_NONE);
    qmp_register_command("query-migrate-parameters", NULL,
                         qmp_query_migrate_parameters, s, QMP_CMD_NONE);
    qmp_register_command("getfd", fdname_args, qmp_getfd, s, QMP_CMD_NONE);
    qmp_register_command("closefd", fdname_args, qmp_closefd, s,
                         QMP_CMD_NONE);
    qmp_register_command("add-fd", add_fd_args, qmp_add_fd, s, QMP_CMD_NONE);
    qmp_register_command("remove-fd", remove_fd_args, qmp_remove_fd, s,
                         QMP_CMD_NONE);
    qmp_register_command("query-fdsets", NULL, qmp_query_fdsets, s,
                         QMP_CMD_NONE);
}
