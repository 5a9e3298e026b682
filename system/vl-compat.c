/*
 * QEMU options that scripts and management tools (libvirt among them)
 * pass to any emulator: accepted where they mean something for snapvm,
 * refused with a message naming what snapvm has otherwise.
 *
 *   -display none, -nographic, -machine/-M, -nodefaults, -no-user-config,
 *   -chardev socket,... with -mon chardev=...,mode=control|readline,
 *   -pidfile, -daemonize
 */
#include "qemu/osdep.h"
#include "vl-internal.h"

/* The one machine type. */
#define MACHINE_TYPE_NAME "snapvm"

typedef struct Chardev {
    const char *id;
    const char *path;           /* socket,path=PATH */
    int fd;                     /* socket,fd=N; -1 without */
    bool wait;
    bool used;                  /* by a -mon already */
} Chardev;

const char *const compat_flags[] = {
    "nographic", "nodefaults", "no-user-config", "daemonize", NULL
};

const char *const compat_options_with_value[] = {
    "display", "machine", "M", "chardev", "mon", "pidfile", NULL
};

static bool parse_display(const char *value, Error **errp)
{
    /* QEMU's "-display none" may carry options; none of them matter. */
    if (strcmp(value, "none") && !g_str_has_prefix(value, "none,")) {
        error_setg(errp, "-display %s: snapvm has no display; only "
                   "'-display none' is accepted", value);
        return false;
    }
    return true;
}

static CmdlineResult parse_machine(SnapvmOptions *opts, const char *value,
                                   Error **errp)
{
    static const char *const keys[] = { "type", "accel", "memory-backend",
                                        NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-machine", value, "type", errp);
    GHashTableIter it;
    gpointer key;

    if (!kv) {
        return CMDLINE_ERROR;
    }
    const char *type = g_hash_table_lookup(kv, "type");
    if (type && (!strcmp(type, "help") || !strcmp(type, "?"))) {
        printf("Supported machines are:\n"
               "%-20s x86-64 guest programs on Unicorn (default)\n",
               MACHINE_TYPE_NAME);
        return CMDLINE_EXIT;
    }
    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(keys, key)) {
            error_setg(errp, "-machine %s: snapvm's machine has no property "
                       "'%s' (it has type, accel and memory-backend)", value,
                       (const char *)key);
            return CMDLINE_ERROR;
        }
    }
    if (type && strcmp(type, MACHINE_TYPE_NAME)) {
        error_setg(errp, "-machine %s: unsupported machine type '%s'; "
                   "snapvm has one, '" MACHINE_TYPE_NAME "' (-machine help)",
                   value, type);
        return CMDLINE_ERROR;
    }
    const char *accel = g_hash_table_lookup(kv, "accel");
    /* QEMU's "kvm:tcg" is a list to try in order: tcg in it will do. */
    g_auto(GStrv) accels = g_strsplit(accel ? accel : "tcg", ":", -1);
    if (!g_strv_contains((const char *const *)accels, "tcg")) {
        error_setg(errp, "-machine %s: accel '%s' is not supported; only "
                   "'tcg'", value, accel);
        return CMDLINE_ERROR;
    }
    const char *memdev = g_hash_table_lookup(kv, "memory-backend");
    if (memdev) {
        opts->machine_memdev = own(opts, memdev);
    }
    return CMDLINE_RUN;
}

static bool parse_chardev(SnapvmOptions *opts, const char *value,
                          Error **errp)
{
    static const char *const keys[] = { "backend", "id", "path", "fd",
                                        "server", "wait", NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-chardev", value, "backend",
                                            errp);
    bool server = false, wait = true;
    Chardev *chr;

    if (!kv) {
        return false;
    }
    const char *backend = g_hash_table_lookup(kv, "backend");
    if (!backend || strcmp(backend, "socket")) {
        error_setg(errp, "-chardev %s: only the 'socket' backend is "
                   "supported (for -mon)", value);
        return false;
    }
    if (!check_keys(kv, "-chardev", keys, errp)) {
        return false;
    }
    const char *id = g_hash_table_lookup(kv, "id");
    const char *path = g_hash_table_lookup(kv, "path");
    const char *fd = g_hash_table_lookup(kv, "fd");
    const char *s = g_hash_table_lookup(kv, "server");
    const char *w = g_hash_table_lookup(kv, "wait");
    if (!id || !*id) {
        error_setg(errp, "-chardev %s: id=ID is required", value);
        return false;
    }
    if (!path == !fd) {
        error_setg(errp, "-chardev %s: give either path=PATH or fd=N",
                   value);
        return false;
    }
    if ((s && !parse_bool_value("-chardev", "server", s, &server, errp)) ||
        (w && !parse_bool_value("-chardev", "wait", w, &wait, errp))) {
        return false;
    }
    if (!server) {
        error_setg(errp, "-chardev %s: only server=on is supported (snapvm "
                   "does not connect out)", value);
        return false;
    }
    for (guint i = 0; i < opts->chardevs->len; i++) {
        if (!strcmp(((Chardev *)opts->chardevs->pdata[i])->id, id)) {
            error_setg(errp, "-chardev %s: id '%s' is already used", value,
                       id);
            return false;
        }
    }
    chr = g_new0(Chardev, 1);
    chr->id = own(opts, id);
    chr->path = path ? own(opts, path) : NULL;
    chr->fd = -1;
    chr->wait = wait;
    if (fd) {
        guint64 n;

        if (!g_ascii_string_to_unsigned(fd, 10, 0, INT_MAX, &n, NULL) ||
            fcntl(n, F_GETFD) < 0) {
            g_free(chr);
            error_setg(errp, "-chardev %s: fd=%s is not an open descriptor",
                       value, fd);
            return false;
        }
        chr->fd = n;
    }
    g_ptr_array_add(opts->chardevs, chr);
    return true;
}

CmdlineResult compat_parse_option(SnapvmOptions *opts, const char *opt,
                                  const char *value, Error **errp)
{
    if (!strcmp(opt, "nographic")) {
        opts->nographic = true;
    } else if (!strcmp(opt, "daemonize")) {
        opts->daemonize = true;
    } else if (!strcmp(opt, "nodefaults")) {
        /* snapvm's only default device is -nographic's serial on stdio. */
        opts->nodefaults = true;
    } else if (!strcmp(opt, "no-user-config")) {
        /* snapvm reads no configuration file. */
    } else if (!strcmp(opt, "display")) {
        return parse_display(value, errp) ? CMDLINE_RUN : CMDLINE_ERROR;
    } else if (!strcmp(opt, "machine") || !strcmp(opt, "M")) {
        return parse_machine(opts, value, errp);
    } else if (!strcmp(opt, "chardev")) {
        return parse_chardev(opts, value, errp) ? CMDLINE_RUN : CMDLINE_ERROR;
    } else if (!strcmp(opt, "mon")) {
        g_ptr_array_add(opts->mons, (gpointer)value);
    } else if (!strcmp(opt, "pidfile")) {
        if (!*value) {
            error_setg(errp, "-pidfile: a file name is required");
            return CMDLINE_ERROR;
        }
        opts->pidfile = value;
    } else {
        g_assert_not_reached();
    }
    return CMDLINE_RUN;
}

/* -mon chardev=ID[,mode=control|readline][,id=X][,pretty=off] */
static bool resolve_mon(SnapvmOptions *opts, const char *value,
                        Error **errp)
{
    static const char *const keys[] = { "chardev", "mode", "id", "pretty",
                                        NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-mon", value, "chardev", errp);
    bool pretty = false;
    Chardev *chr = NULL;

    if (!kv || !check_keys(kv, "-mon", keys, errp)) {
        return false;
    }
    const char *id = g_hash_table_lookup(kv, "chardev");
    const char *mode = g_hash_table_lookup(kv, "mode");
    const char *p = g_hash_table_lookup(kv, "pretty");
    if (!id) {
        error_setg(errp, "-mon %s: chardev=ID is required", value);
        return false;
    }
    /* QEMU's default mode is readline (HMP). */
    if (mode && strcmp(mode, "control") && strcmp(mode, "readline")) {
        error_setg(errp, "-mon %s: mode must be control or readline", value);
        return false;
    }
    if (p && !parse_bool_value("-mon", "pretty", p, &pretty, errp)) {
        return false;
    }
    if (pretty) {
        error_setg(errp, "-mon %s: pretty=on is not supported (QMP replies "
                   "are one line each)", value);
        return false;
    }
    for (guint i = 0; i < opts->chardevs->len; i++) {
        Chardev *c = opts->chardevs->pdata[i];
        if (!strcmp(c->id, id)) {
            chr = c;
        }
    }
    if (!chr) {
        error_setg(errp, "-mon %s: no -chardev with id '%s'", value, id);
        return false;
    }
    if (chr->used) {
        error_setg(errp, "-mon %s: chardev '%s' is already used by a monitor",
                   value, id);
        return false;
    }
    chr->used = true;
    bool qmp = mode && !strcmp(mode, "control");
    if (chr->fd >= 0) {
        MonitorFdSpec spec = { .qmp = qmp, .fd = chr->fd, .wait = chr->wait };
        g_array_append_val(opts->monitor_fds, spec);
        return true;
    }
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=%s",
                                            chr->path,
                                            chr->wait ? "on" : "off");
    g_ptr_array_add(qmp ? opts->qmp_specs : opts->monitor_specs,
                    (gpointer)own(opts, spec));
    return true;
}

static bool uses_stdio(const SnapvmOptions *opts)
{
    const char *serial = opts->machine.serial;

    if (serial && !strcmp(serial, "stdio")) {
        return true;
    }
    for (guint i = 0; i < opts->qmp_specs->len; i++) {
        if (!strcmp(opts->qmp_specs->pdata[i], "stdio")) {
            return true;
        }
    }
    for (guint i = 0; i < opts->monitor_specs->len; i++) {
        if (!strcmp(opts->monitor_specs->pdata[i], "stdio")) {
            return true;
        }
    }
    return false;
}

void compat_options_init(SnapvmOptions *opts)
{
    opts->chardevs = g_ptr_array_new_with_free_func(g_free);
    opts->mons = g_ptr_array_new();
    opts->monitor_fds = g_array_new(false, true, sizeof(MonitorFdSpec));
}

bool compat_resolve(SnapvmOptions *opts, Error **errp)
{
    {
        for (guint i = 0; i < opts->mons->len; i++) {
            if (!resolve_mon(opts, opts->mons->pdata[i], errp)) {
                return false;
            }
        }
        for (guint i = 0; i < opts->chardevs->len; i++) {
            Chardev *c = opts->chardevs->pdata[i];
            if (!c->used) {
                error_setg(errp, "-chardev id=%s: not used by any -mon "
                           "(snapvm's only use for a chardev)", c->id);
                return false;
            }
        }
    }
    /*
     * As QEMU: -nographic puts the serial port on the terminal only when
     * nothing else says where it goes; only then is it at odds with
     * -daemonize (libvirt passes both, with -nodefaults).
     */
    bool nographic_serial = opts->nographic && !opts->machine.serial &&
                            !opts->nodefaults;
    if (opts->daemonize && nographic_serial) {
        error_setg(errp, "-nographic cannot be used with -daemonize");
        return false;
    }
    if (opts->daemonize && uses_stdio(opts)) {
        error_setg(errp, "-daemonize: stdio cannot be used by -serial, -qmp "
                   "or -monitor once snapvm is in the background");
        return false;
    }
    /*
     * QEMU's -nographic sends the serial port to the terminal (QEMU would
     * also multiplex its monitor there; snapvm does not).
     */
    if (nographic_serial && !uses_stdio(opts)) {
        opts->machine.serial = "stdio";
    }
    if (opts->machine_memdev) {
        if (opts->nodes->len) {
            error_setg(errp, "-machine memory-backend=%s: cannot be used "
                       "with -numa (name the backend in -numa node,memdev= "
                       "instead)", opts->machine_memdev);
            return false;
        }
        /* The same as one NUMA node on that backend. */
        MemoryBackendConfig node = { .id = opts->machine_memdev };
        g_array_append_val(opts->nodes, node);
    }
    return true;
}

void compat_options_clear(SnapvmOptions *opts)
{
    if (opts->chardevs) {
        g_ptr_array_free(opts->chardevs, true);
    }
    if (opts->mons) {
        g_ptr_array_free(opts->mons, true);
    }
    if (opts->monitor_fds) {
        g_array_free(opts->monitor_fds, true);
    }
}
