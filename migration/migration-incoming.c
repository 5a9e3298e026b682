/*
 * Incoming migration: -incoming URI, -incoming defer + migrate-incoming.
 * The transport is opened in the caller's thread (so a bad URI, a port in
 * use or a missing file is reported at once); the incoming thread accepts
 * or reads and loads.  A guest never runs from half a state: a failed load
 * ends snapvm with status 1, as QEMU does.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/qemu-file.h"
#include "hw/boards.h"
#include "hw/machine-config.h"

static gpointer migration_incoming_thread(gpointer opaque)
{
    MigrationState *s = opaque;
    MachineState *ms = s->machine;
    Error *err = NULL;

    g_mutex_lock(&s->lock);
    QEMUFile *f = s->file;
    g_mutex_unlock(&s->lock);

    migration_advance(s, MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE);
    MappedRamLoadOptions mapped_ram = {
        .mode = s->options.params.x_mapped_ram_restore,
        .threads = s->options.params.multifd_channels,
    };
    bool ok = qemu_loadvm_state_mapped_ram(f, ms, &mapped_ram, &err);
    migration_publish_file(s, NULL);
    if (ok) {
        ok = qemu_fclose(f, &err);
    } else {
        qemu_file_abort(f);
    }

    g_mutex_lock(&s->lock);
    s->stats.total_time = g_get_real_time() / 1000 - s->stats.start_ms;
    error_free(s->error);
    s->error = ok ? NULL : error_copy(err);
    g_mutex_unlock(&s->lock);

    if (ok) {
        mapped_ram_lazy_start(ms);
        /*
         * The run state first, as QEMU: whoever sees "completed" in
         * query-migrate then sees the guest running or paused, never
         * still "inmigrate".
         */
        if (s->incoming_autostart) {
            vm_start(ms);
        } else {
            runstate_set(ms, RUN_STATE_PAUSED);
        }
        migration_set_status(s, MIGRATION_STATUS_COMPLETED);
        return NULL;
    }
    migration_set_status(s, MIGRATION_STATUS_FAILED);
    error_prepend(&err, "load of migration failed: ");
    error_report_err(err);
    qemu_system_shutdown_request(ms, 1);
    return NULL;
}

static bool migration_incoming_begin(MigrationState *s, const char *uri,
                                     Error **errp)
{
    MigChannel *ch = mig_channel_open_incoming(uri, s->fds, errp);

    if (!ch) {
        return false;
    }
    g_mutex_lock(&s->lock);
    memset(&s->stats, 0, sizeof(s->stats));
    s->stats.start_ms = g_get_real_time() / 1000;
    s->stats.ram_total = machine_ram_size(s->machine);
    s->file = qemu_file_new_input(ch);
    g_free(s->uri);
    s->uri = g_strdup(uri);
    g_mutex_unlock(&s->lock);
    s->incoming_deferred = false;
    migration_set_status(s, MIGRATION_STATUS_SETUP);
    s->incoming_thread = g_thread_new("mig/incoming",
                                      migration_incoming_thread, s);
    return true;
}

bool migration_incoming_start(MigrationState *s, const char *uri,
                              bool autostart, Error **errp)
{
    s->incoming = true;
    s->incoming_autostart = autostart;
    runstate_set(s->machine, RUN_STATE_INMIGRATE);
    if (!strcmp(uri, "defer")) {
        s->incoming_deferred = true;
        return true;
    }
    return migration_incoming_begin(s, uri, errp);
}

bool migration_incoming_deferred_start(MigrationState *s, const char *uri,
                                       Error **errp)
{
    if (!s->incoming) {
        error_setg(errp, "'-incoming' was not specified on the command "
                   "line");
        return false;
    }
    if (!s->incoming_deferred) {
        error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    return migration_incoming_begin(s, uri, errp);
}

void migration_incoming_join(MigrationState *s)
{
    if (s->incoming_thread) {
        g_thread_join(s->incoming_thread);
        s->incoming_thread = NULL;
    }
}
