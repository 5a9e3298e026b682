/*
 * HMP commands of migration: the same functions as QMP, with QEMU's
 * human-readable output.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "monitor/monitor.h"

/* The URI is the rest of the line: "migrate exec:cat > vm.snap". */
static char *hmp_join_args(int first, int argc, char **argv)
{
    GString *joined = g_string_new(NULL);

    for (int i = first; i < argc; i++) {
        g_string_append_printf(joined, "%s%s", i > first ? " " : "",
                               argv[i]);
    }
    return g_string_free(joined, false);
}

static void hmp_migrate(Monitor *mon, int argc, char **argv, void *opaque)
{
    MigrationState *s = opaque;
    Error *err = NULL;
    int first = 1;

    /*
     * QEMU's HMP migrate without -d blocks the monitor until the end; ours
     * always returns at once (the monitor must keep serving QMP and the
     * events), so -d is accepted and changes nothing.  "info migrate"
     * follows the progress.
     */
    if (first < argc && !strcmp(argv[first], "-d")) {
        first++;
    }
    if (first >= argc) {
        monitor_printf(mon, "migrate: missing URI\n");
        return;
    }
    g_autofree char *uri = hmp_join_args(first, argc, argv);
    if (!migration_start(s, uri, &err)) {
        hmp_handle_error(mon, err);
    }
}

static void hmp_migrate_cancel(Monitor *mon, int argc, char **argv,
                               void *opaque)
{
    migration_cancel(opaque);
}

static void hmp_migrate_incoming(Monitor *mon, int argc, char **argv,
                                 void *opaque)
{
    Error *err = NULL;

    if (argc < 2) {
        monitor_printf(mon, "migrate_incoming: missing URI\n");
        return;
    }
    g_autofree char *uri = hmp_join_args(1, argc, argv);
    if (!migration_incoming_deferred_start(opaque, uri, &err)) {
        hmp_handle_error(mon, err);
    }
}

static void hmp_migrate_set_capability(Monitor *mon, int argc, char **argv,
                                       void *opaque)
{
    Error *err = NULL;

    if (argc != 3 || (strcmp(argv[2], "on") && strcmp(argv[2], "off"))) {
        monitor_printf(mon, "usage: migrate_set_capability NAME on|off\n");
        return;
    }
    if (!migration_set_capability(opaque, argv[1], !strcmp(argv[2], "on"),
                                  &err)) {
        hmp_handle_error(mon, err);
    }
}

/* QEMU's HMP reads a bare max-bandwidth number as MiB/s. */
static bool hmp_parse_size(const char *str, uint64_t default_unit,
                           uint64_t *out)
{
    char *end;
    errno = 0;
    double v = g_ascii_strtod(str, &end);
    uint64_t unit = default_unit;

    if (errno || end == str || v < 0) {
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0':
        break;
    case 'B': unit = 1; end++; break;
    case 'K': unit = KiB; end++; break;
    case 'M': unit = MiB; end++; break;
    case 'G': unit = GiB; end++; break;
    case 'T': unit = 1024 * GiB; end++; break;
    default:
        return false;
    }
    if (*end || v * unit > (double)UINT64_MAX) {
        return false;
    }
    *out = (uint64_t)(v * unit);
    return true;
}

static void hmp_migrate_set_parameter(Monitor *mon, int argc, char **argv,
                                      void *opaque)
{
    g_autoptr(JsonObject) args = json_object_new();
    Error *err = NULL;
    uint64_t v;

    if (argc != 3) {
        monitor_printf(mon, "usage: migrate_set_parameter NAME VALUE\n");
        return;
    }
    if (!strcmp(argv[1], "max-bandwidth") ||
        !strcmp(argv[1], "background-snapshot-buffer-size")) {
        if (!hmp_parse_size(argv[2], MiB, &v) || v > INT64_MAX) {
            monitor_printf(mon, "Error: invalid size '%s'\n", argv[2]);
            return;
        }
        json_object_set_int_member(args, argv[1], v);
    } else if (!strcmp(argv[1], "downtime-limit") ||
               !strcmp(argv[1], "multifd-channels")) {
        if (!hmp_parse_size(argv[2], 1, &v) || v > INT64_MAX) {
            monitor_printf(mon, "Error: invalid number '%s'\n", argv[2]);
            return;
        }
        json_object_set_int_member(args, argv[1], v);
    } else if (!strcmp(argv[1], "x-dirty-tracking") ||
               !strcmp(argv[1], "x-mapped-ram-restore") ||
               !strcmp(argv[1], "x-background-snapshot-method")) {
        json_object_set_string_member(args, argv[1], argv[2]);
    } else if (!strcmp(argv[1], "direct-io") ||
               !strcmp(argv[1], "x-checksums")) {
        if (strcmp(argv[2], "on") && strcmp(argv[2], "off")) {
            monitor_printf(mon, "Error: expected on or off, not '%s'\n",
                           argv[2]);
            return;
        }
        json_object_set_boolean_member(args, argv[1], !strcmp(argv[2], "on"));
    } else {
        monitor_printf(mon, "Error: Invalid parameter '%s'\n", argv[1]);
        return;
    }
    if (!migration_set_parameters_json(opaque, args, &err)) {
        hmp_handle_error(mon, err);
    }
}

static uint64_t json_uint(JsonObject *o, const char *name)
{
    return json_object_has_member(o, name) ?
           json_object_get_int_member(o, name) : 0;
}

static void hmp_info_migrate(Monitor *mon, int argc, char **argv,
                             void *opaque)
{
    g_autoptr(JsonObject) info = migration_info_to_json(opaque);

    if (!json_object_has_member(info, "status")) {
        return;     /* as QEMU: nothing before the first migration */
    }
    monitor_printf(mon, "Migration status: %s\n",
                   json_object_get_string_member(info, "status"));
    monitor_printf(mon, "total time: %" PRIu64 " ms\n",
                   json_uint(info, "total-time"));
    if (json_object_has_member(info, "expected-downtime")) {
        monitor_printf(mon, "expected downtime: %" PRIu64 " ms\n",
                       json_uint(info, "expected-downtime"));
    }
    if (json_object_has_member(info, "downtime")) {
        monitor_printf(mon, "downtime: %" PRIu64 " ms\n",
                       json_uint(info, "downtime"));
    }
    monitor_printf(mon, "setup: %" PRIu64 " ms\n",
                   json_uint(info, "setup-time"));
    if (json_object_has_member(info, "ram")) {
        JsonObject *ram = json_object_get_object_member(info, "ram");
        monitor_printf(mon, "transferred ram: %" PRIu64 " kbytes\n",
                       json_uint(ram, "transferred") >> 10);
        monitor_printf(mon, "throughput: %0.2f mbps\n",
                       json_object_get_double_member(ram, "mbps"));
        monitor_printf(mon, "remaining ram: %" PRIu64 " kbytes\n",
                       json_uint(ram, "remaining") >> 10);
        monitor_printf(mon, "total ram: %" PRIu64 " kbytes\n",
                       json_uint(ram, "total") >> 10);
        monitor_printf(mon, "duplicate: %" PRIu64 " pages\n",
                       json_uint(ram, "duplicate"));
        monitor_printf(mon, "normal: %" PRIu64 " pages\n",
                       json_uint(ram, "normal"));
        monitor_printf(mon, "normal bytes: %" PRIu64 " kbytes\n",
                       json_uint(ram, "normal-bytes") >> 10);
        monitor_printf(mon, "dirty sync count: %" PRIu64 "\n",
                       json_uint(ram, "dirty-sync-count"));
        monitor_printf(mon, "page size: %" PRIu64 " kbytes\n",
                       json_uint(ram, "page-size") >> 10);
        monitor_printf(mon, "pages-per-second: %" PRIu64 "\n",
                       json_uint(ram, "pages-per-second"));
        if (json_uint(ram, "dirty-pages-rate")) {
            monitor_printf(mon, "dirty pages rate: %" PRIu64 " pages\n",
                           json_uint(ram, "dirty-pages-rate"));
        }
    }
    if (json_object_has_member(info, "background-snapshot")) {
        JsonObject *bg = json_object_get_object_member(info,
                                                       "background-snapshot");
        monitor_printf(mon, "background snapshot pause: %" PRIu64 " us\n",
                       json_uint(bg, "pause-us"));
        monitor_printf(mon, "write faults: %" PRIu64 "\n",
                       json_uint(bg, "faults"));
        monitor_printf(mon, "pages copied by the fault handler: %" PRIu64
                       "\n", json_uint(bg, "copied-pages"));
        monitor_printf(mon, "faults that waited for the write: %" PRIu64
                       " (%" PRIu64 " us in all)\n",
                       json_uint(bg, "waited-faults"),
                       json_uint(bg, "wait-time-us"));
        monitor_printf(mon, "copy buffer peak: %" PRIu64 " of %" PRIu64
                       " kbytes\n", json_uint(bg, "buffer-peak") >> 10,
                       json_uint(bg, "buffer-size") >> 10);
    }
    if (json_object_has_member(info, "error-desc")) {
        monitor_printf(mon, "error description: %s\n",
                       json_object_get_string_member(info, "error-desc"));
    }
}

static void hmp_info_migrate_capabilities(Monitor *mon, int argc,
                                          char **argv, void *opaque)
{
    MigrationState *s = opaque;

    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        monitor_printf(mon, "%s: %s\n", migration_capability_name(i),
                       s->options.caps[i] ? "on" : "off");
    }
}

static void hmp_info_migrate_parameters(Monitor *mon, int argc, char **argv,
                                        void *opaque)
{
    MigrationState *s = opaque;
    const MigrationParameters *p = &s->options.params;

    monitor_printf(mon, "max-bandwidth: %" PRIu64 " bytes/second\n",
                   p->max_bandwidth);
    monitor_printf(mon, "downtime-limit: %" PRIu64 " ms\n",
                   p->downtime_limit);
    monitor_printf(mon, "background-snapshot-buffer-size: %" PRIu64
                   " bytes\n", p->background_snapshot_buffer_size);
    monitor_printf(mon, "x-dirty-tracking: %s\n",
                   dirty_tracking_method_name(p->x_dirty_tracking));
    monitor_printf(mon, "x-background-snapshot-method: %s\n",
                   background_snapshot_method_name(
                       p->x_background_snapshot_method));
    monitor_printf(mon, "multifd-channels: %" PRIu64 "\n",
                   p->multifd_channels);
    monitor_printf(mon, "direct-io: %s\n", p->direct_io ? "on" : "off");
    monitor_printf(mon, "x-checksums: %s\n", p->x_checksums ? "on" : "off");
    monitor_printf(mon, "x-mapped-ram-restore: %s\n",
                   mapped_ram_restore_mode_name(p->x_mapped_ram_restore));
}

void migration_register_hmp_commands(MigrationState *s)
{
    hmp_register_command("migrate", "[-d] uri",
                         "migrate to URI (exec:, file:, unix:, tcp:, fd:); "
                         "returns at once, see 'info migrate'",
                         hmp_migrate, s);
    hmp_register_command("migrate_cancel", "",
                         "cancel the current migration", hmp_migrate_cancel,
                         s);
    hmp_register_command("migrate_incoming", "uri",
                         "start an incoming migration (-incoming defer)",
                         hmp_migrate_incoming, s);
    hmp_register_command("migrate_set_capability", "capability state",
                         "turn a migration capability on or off",
                         hmp_migrate_set_capability, s);
    hmp_register_command("migrate_set_parameter", "parameter value",
                         "set a migration parameter",
                         hmp_migrate_set_parameter, s);
    hmp_register_info("migrate", "show migration status",
                      hmp_info_migrate, s);
    hmp_register_info("migrate_capabilities",
                      "show current migration capabilities",
                      hmp_info_migrate_capabilities, s);
    hmp_register_info("migrate_parameters",
                      "show current migration parameters",
                      hmp_info_migrate_parameters, s);
}
