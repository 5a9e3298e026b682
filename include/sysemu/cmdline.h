/*
 * snapvm's command line, with QEMU's option names (see snapvm -help and
 * README.md).
 */
#ifndef SYSEMU_CMDLINE_H
#define SYSEMU_CMDLINE_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/machine-config.h"

typedef struct SnapvmOptions {
    MachineConfig machine;      /* numa_nodes points into @nodes */
    GArray *backends;           /* MemoryBackendConfig, one per -object */
    GArray *nodes;              /* MemoryBackendConfig, one per -numa node */
    GPtrArray *qmp_specs;       /* -qmp, in order */
    GPtrArray *monitor_specs;   /* -monitor, in order */
    const char *incoming;       /* -incoming URI|defer */
    const char *logfile;        /* -D */
    bool start_paused;          /* -S */
    GPtrArray *owned;           /* strings parsed out of option values */

    /* QEMU options for management tools (system/vl-compat.c). */
    bool nographic;             /* -nographic */
    bool nodefaults;            /* -nodefaults */
    bool daemonize;             /* -daemonize */
    const char *pidfile;        /* -pidfile */
    const char *machine_memdev; /* -machine memory-backend=ID */
    GPtrArray *chardevs;        /* Chardev *, one per -chardev */
    GPtrArray *mons;            /* char *, the value of each -mon */
    /* Listening sockets inherited with -chardev socket,fd=N. */
    GArray *monitor_fds;        /* MonitorFdSpec */
} SnapvmOptions;

/* A monitor on a listening socket snapvm inherited (-chardev ...,fd=N). */
typedef struct MonitorFdSpec {
    bool qmp;                   /* mode=control; else HMP (readline) */
    int fd;
    bool wait;
} MonitorFdSpec;

typedef enum CmdlineResult {
    CMDLINE_ERROR,              /* errp is set */
    CMDLINE_RUN,
    CMDLINE_EXIT,               /* -help or -version was printed */
} CmdlineResult;

/*
 * Fill @opts (which must be zeroed) from argv.  Strings point into argv
 * or are owned by @opts.
 */
CmdlineResult snapvm_parse_cmdline(int argc, char **argv,
                                   SnapvmOptions *opts, Error **errp);
void snapvm_options_clear(SnapvmOptions *opts);

/*
 * -D: send every log message of snapvm (run state changes, vCPU errors)
 * to @path as well.
 */
bool snapvm_log_open(const char *path, Error **errp);

/*
 * QEMU's size syntax: a number with an optional K/M/G/T suffix (powers of
 * 1024) or B; with no suffix the number is in units of 2^default_shift.
 */
bool parse_size(const char *str, unsigned default_shift, uint64_t *size);

#endif
