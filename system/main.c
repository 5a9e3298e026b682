/*
 * snapvm's main(): read the command line, bring the subsystems up in
 * order, run the GLib main loop until shutdown, tear down in reverse.
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "migration/mapped-ram.h"
#include "migration/migration.h"
#include "migration/misc.h"
#include "monitor/monitor.h"
#include "sysemu/cmdline.h"
#include "sysemu/commands.h"
#include "sysemu/daemon.h"

#include <glib-unix.h>

typedef struct MainLoopState {
    GMainLoop *loop;
    int exit_status;
} MainLoopState;

static void main_loop_shutdown(MachineState *ms, int status, void *opaque)
{
    MainLoopState *mls = opaque;

    mls->exit_status = status;
    g_main_loop_quit(mls->loop);
}

/*
 * Before the vCPUs stop: a vCPU blocked on a page a rate-limited
 * background snapshot has not saved yet would hold the exit up for as
 * long as the saver takes; cancelled, the snapshot lets it go at once.
 */
static void main_loop_shutdown_prepare(MachineState *ms, int status,
                                       void *opaque)
{
    migration_cancel(opaque);
}

static gboolean main_loop_signal(gpointer opaque)
{
    qemu_system_shutdown_request_cause(opaque, 0, SHUTDOWN_CAUSE_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

static bool monitors_init(const SnapvmOptions *opts, MachineState *ms,
                          Error **errp)
{
    for (unsigned i = 0; i < opts->qmp_specs->len; i++) {
        if (!monitor_init_qmp(opts->qmp_specs->pdata[i], ms, errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < opts->monitor_specs->len; i++) {
        if (!monitor_init_hmp(opts->monitor_specs->pdata[i], ms, errp)) {
            return false;
        }
    }
    for (unsigned i = 0; i < opts->monitor_fds->len; i++) {
        const MonitorFdSpec *m = &g_array_index(opts->monitor_fds,
                                                MonitorFdSpec, i);
        if (!monitor_init_listen_fd(m->qmp, m->fd, m->wait, ms, errp)) {
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    SnapvmOptions opts = { 0 };
    MainLoopState mls = { 0 };
    MigrationState *mig = NULL;
    MachineState *ms = NULL;
    Error *err = NULL;

    switch (snapvm_parse_cmdline(argc, argv, &opts, &err)) {
    case CMDLINE_EXIT:
        snapvm_options_clear(&opts);
        return 0;
    case CMDLINE_ERROR:
        error_report_err(err);
        snapvm_options_clear(&opts);
        return 1;
    case CMDLINE_RUN:
        break;
    }
    /* A closed monitor socket must not kill us; write() reports it. */
    signal(SIGPIPE, SIG_IGN);

    /* Before any thread exists: fork() keeps only the caller's. */
    if (opts.daemonize && !daemonize_start(&err)) {
        goto fail;
    }
    if (opts.pidfile && !pidfile_create(opts.pidfile, &err)) {
        goto fail;
    }
    if (opts.logfile && !snapvm_log_open(opts.logfile, &err)) {
        goto fail;
    }
    ms = machine_create(&opts.machine, &err);
    if (!ms) {
        goto fail;
    }
    mig = migration_init(ms, &err);
    if (!mig) {
        goto fail;
    }
    snapvm_register_commands(ms, mig);
    if (!monitors_init(&opts, ms, &err)) {
        goto fail;
    }
    mls.loop = g_main_loop_new(NULL, false);
    machine_set_shutdown_handler(ms, main_loop_shutdown, &mls);
    machine_set_shutdown_prepare(ms, main_loop_shutdown_prepare, mig);
    g_unix_signal_add(SIGINT, main_loop_signal, ms);
    g_unix_signal_add(SIGTERM, main_loop_signal, ms);
    g_unix_signal_add(SIGHUP, main_loop_signal, ms);

    if (opts.incoming) {
        runstate_set(ms, RUN_STATE_INMIGRATE);
        if (!migration_incoming_start(mig, opts.incoming,
                                      !opts.start_paused, &err)) {
            goto fail;
        }
    } else if (!opts.start_paused) {
        vm_start(ms);
    }
    /* The monitors listen: a daemon's parent may return now. */
    daemonize_done();

    g_main_loop_run(mls.loop);

    migration_shutdown(mig);
    mapped_ram_lazy_cancel(ms);
    monitor_cleanup();
    machine_free(ms);
    g_main_loop_unref(mls.loop);
    snapvm_options_clear(&opts);
    pidfile_remove();
    return mls.exit_status;

fail:
    error_report_err(err);
    if (mig) {
        migration_shutdown(mig);
    }
    monitor_cleanup();
    machine_free(ms);
    if (mls.loop) {
        g_main_loop_unref(mls.loop);
    }
    snapvm_options_clear(&opts);
    pidfile_remove();
    return 1;
}
