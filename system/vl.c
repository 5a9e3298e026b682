/*
 * Command line parsing: QEMU's option names and value syntax, turned into
 * a MachineConfig and the list of monitors to open.
 */
#include "qemu/osdep.h"
#include "sysemu/cmdline.h"
#include "vl-internal.h"

static const char usage_text[] =
"usage: snapvm [options]\n"
"\n"
"Machine:\n"
"  -m SIZE            guest RAM (default unit MiB; K, M, G, T suffixes;\n"
"                     default 128M, at most 64G)\n"
"  -smp N             number of vCPUs (1 to 32)\n"
"  -accel tcg         CPU accelerator (tcg, run by the Unicorn engine)\n"
"  -kernel FILE       freestanding x86-64 ELF to load and run\n"
"  -object memory-backend-ram,id=ID,size=SIZE[,share=on|off]\n"
"  -object memory-backend-memfd,id=ID,size=SIZE\n"
"  -object memory-backend-file,id=ID,size=SIZE,mem-path=PATH"
"[,share=on|off]\n"
"                     a memory backend (size in bytes unless suffixed)\n"
"  -numa node,memdev=ID\n"
"                     a RAM block backed by memory backend ID; blocks\n"
"                     follow each other in guest physical memory in\n"
"                     command line order and must add up to -m\n"
"  -name NAME         name of the guest (query-name)\n"
"  -machine [type=]snapvm[,accel=tcg][,memory-backend=ID]\n"
"                     the one machine type (-M too; -machine help);\n"
"                     memory-backend=ID: guest RAM from that -object\n"
"\n"
"Devices and monitors:\n"
"  -serial file:PATH|stdio|none\n"
"                     where the serial port's output goes (default none)\n"
"  -qmp SPEC          a QMP monitor: stdio or unix:PATH,server=on,wait=off\n"
"  -monitor SPEC      a human monitor (HMP): stdio or unix:PATH,...\n"
"  -chardev socket,id=ID,path=PATH|fd=N,server=on[,wait=off]\n"
"  -mon chardev=ID[,mode=control|readline]\n"
"                     a QMP (control) or HMP (readline) monitor on a\n"
"                     listening socket, as libvirt passes it\n"
"  -display none      accepted: snapvm has no display\n"
"  -nographic         no display; the serial port on stdio unless\n"
"                     -serial or a stdio monitor says otherwise\n"
"  -nodefaults, -no-user-config\n"
"                     accepted: snapvm has no default devices or\n"
"                     config files\n"
"\n"
"Run:\n"
"  -S                 do not start the vCPUs (use 'cont')\n"
"  -incoming URI      wait for a migration stream from URI, or 'defer'\n"
"  -D LOGFILE         write snapvm's log to LOGFILE\n"
"  -pidfile FILE      write snapvm's pid to FILE (locked; removed at exit)\n"
"  -daemonize         run in the background once the monitors listen\n"
"  -version           print the version and exit\n"
"  -help              print this help and exit\n";

bool parse_size(const char *str, unsigned default_shift, uint64_t *size)
{
    char *end;
    unsigned shift;

    if (!g_ascii_isdigit(*str)) {
        return false;
    }
    errno = 0;
    uint64_t n = g_ascii_strtoull(str, &end, 10);
    if (errno) {
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0': shift = default_shift; break;
    case 'B': shift = 0; break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return false;
    }
    if (*end && end[1] != '\0') {
        return false;
    }
    if (shift && n > (UINT64_MAX >> shift)) {
        return false;
    }
    *size = n << shift;
    return true;
}

/*
 * Split "a=1,b=2" into a table.  @implied_key names a first element
 * without '=' (QEMU's "-m 1G" is "-m size=1G").
 */
GHashTable *parse_keyval(const char *opt, const char *value,
                         const char *implied_key, Error **errp)
{
    g_autoptr(GHashTable) kv = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                     g_free, g_free);
    g_auto(GStrv) parts = g_strsplit(value, ",", -1);

    for (int i = 0; parts[i]; i++) {
        char *eq = strchr(parts[i], '=');
        g_autofree char *key = NULL;
        char *val;

        if (eq) {
            key = g_strndup(parts[i], eq - parts[i]);
            val = eq + 1;
        } else if (i == 0 && implied_key && parts[i][0]) {
            key = g_strdup(implied_key);
            val = parts[i];
        } else {
            error_setg(errp, "%s %s: expected key=value, got '%s'",
                       opt, value, parts[i]);
            return NULL;
        }
        if (g_hash_table_contains(kv, key)) {
            error_setg(errp, "%s %s: '%s' given twice", opt, value, key);
            return NULL;
        }
        g_hash_table_insert(kv, g_steal_pointer(&key), g_strdup(val));
    }
    return g_steal_pointer(&kv);
}

/* Refuse keys other than @allowed (NULL-terminated). */
bool check_keys(GHashTable *kv, const char *opt,
                const char *const *allowed, Error **errp)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(allowed, key)) {
            error_setg(errp, "%s: unknown parameter '%s'", opt,
                       (const char *)key);
            return false;
        }
    }
    return true;
}

const char *own(SnapvmOptions *opts, const char *s)
{
    char *copy = g_strdup(s);
    g_ptr_array_add(opts->owned, copy);
    return copy;
}

bool parse_bool_value(const char *opt, const char *key,
                      const char *val, bool *out, Error **errp)
{
    if (!strcmp(val, "on") || !strcmp(val, "yes") || !strcmp(val, "true")) {
        *out = true;
    } else if (!strcmp(val, "off") || !strcmp(val, "no") ||
               !strcmp(val, "false")) {
        *out = false;
    } else {
        error_setg(errp, "%s: %s must be on or off, not '%s'", opt, key, val);
        return false;
    }
    return true;
}

static bool parse_opt_m(SnapvmOptions *opts, const char *value, Error **errp)
{
    static const char *const keys[] = { "size", NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-m", value, "size", errp);
    uint64_t size;

    if (!kv || !check_keys(kv, "-m", keys, errp)) {
        return false;
    }
    const char *s = g_hash_table_lookup(kv, "size");
    if (!s || !parse_size(s, 20, &size)) {
        error_setg(errp, "-m %s: invalid RAM size", value);
        return false;
    }
    if (size > MACHINE_MAX_RAM_SIZE) {
        error_setg(errp, "-m %s: at most 64G of RAM is supported", value);
        return false;
    }
    opts->machine.ram_size = QEMU_ALIGN_UP(size, TARGET_PAGE_SIZE);
    return true;
}

static bool parse_opt_smp(SnapvmOptions *opts, const char *value,
                          Error **errp)
{
    static const char *const keys[] = { "cpus", "maxcpus", NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-smp", value, "cpus", errp);
    char *end;

    if (!kv || !check_keys(kv, "-smp", keys, errp)) {
        return false;
    }
    const char *s = g_hash_table_lookup(kv, "cpus");
    const char *max = g_hash_table_lookup(kv, "maxcpus");
    unsigned long n = s ? strtoul(s, &end, 10) : 0;
    if (!s || !*s || *end || n < 1 || n > MACHINE_MAX_CPUS) {
        error_setg(errp, "-smp %s: the number of vCPUs must be 1 to %d",
                   value, MACHINE_MAX_CPUS);
        return false;
    }
    if (max && (strtoul(max, &end, 10) != n || *end)) {
        error_setg(errp, "-smp %s: CPU hotplug is not supported, maxcpus "
                   "must equal cpus", value);
        return false;
    }
    opts->machine.smp = n;
    return true;
}

static bool parse_opt_object(SnapvmOptions *opts, const char *value,
                             Error **errp)
{
    static const char *const keys[] = {
        "qom-type", "id", "size", "mem-path", "share", NULL
    };
    g_autoptr(GHashTable) kv = parse_keyval("-object", value, "qom-type",
                                            errp);
    MemoryBackendConfig be = { 0 };

    if (!kv || !check_keys(kv, "-object", keys, errp)) {
        return false;
    }
    const char *type = g_hash_table_lookup(kv, "qom-type");
    const char *id = g_hash_table_lookup(kv, "id");
    const char *size = g_hash_table_lookup(kv, "size");
    const char *mem_path = g_hash_table_lookup(kv, "mem-path");
    const char *share = g_hash_table_lookup(kv, "share");

    if (!g_strcmp0(type, "memory-backend-ram")) {
        be.kind = RAM_BACKEND_ANON;
    } else if (!g_strcmp0(type, "memory-backend-memfd")) {
        be.kind = RAM_BACKEND_MEMFD;
        be.share = true;
    } else if (!g_strcmp0(type, "memory-backend-file")) {
        be.kind = RAM_BACKEND_FILE;
    } else {
        error_setg(errp, "-object %s: unknown object type (memory-backend-"
                   "ram, memory-backend-memfd or memory-backend-file)", value);
        return false;
    }
    if (!id || !*id) {
        error_setg(errp, "-object %s: parameter 'id' is missing", value);
        return false;
    }
    if (!size || !parse_size(size, 0, &be.size) || be.size == 0) {
        error_setg(errp, "-object %s: parameter 'size' is missing or "
                   "invalid", value);
        return false;
    }
    if (mem_path && be.kind != RAM_BACKEND_FILE) {
        error_setg(errp, "-object %s: mem-path is only for "
                   "memory-backend-file", value);
        return false;
    }
    if (be.kind == RAM_BACKEND_FILE && !mem_path) {
        error_setg(errp, "-object %s: parameter 'mem-path' is missing",
                   value);
        return false;
    }
    if (share && !parse_bool_value("-object", "share", share, &be.share,
                                   errp)) {
        return false;
    }
    if (be.kind == RAM_BACKEND_MEMFD && !be.share) {
        error_setg(errp, "-object %s: memory-backend-memfd is always "
                   "shared here", value);
        return false;
    }
    for (unsigned i = 0; i < opts->backends->len; i++) {
        if (!strcmp(g_array_index(opts->backends, MemoryBackendConfig,
                                  i).id, id)) {
            error_setg(errp, "-object %s: duplicate id '%s'", value, id);
            return false;
        }
    }
    be.id = own(opts, id);
    be.mem_path = mem_path ? own(opts, mem_path) : NULL;
    g_array_append_val(opts->backends, be);
    return true;
}

static bool parse_opt_numa(SnapvmOptions *opts, const char *value,
                           Error **errp)
{
    static const char *const keys[] = { "type", "memdev", "nodeid", NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-numa", value, "type", errp);

    if (!kv || !check_keys(kv, "-numa", keys, errp)) {
        return false;
    }
    if (g_strcmp0(g_hash_table_lookup(kv, "type"), "node")) {
        error_setg(errp, "-numa %s: only 'node' is supported", value);
        return false;
    }
    const char *memdev = g_hash_table_lookup(kv, "memdev");
    if (!memdev) {
        error_setg(errp, "-numa %s: memdev=ID is required", value);
        return false;
    }
    /* Resolved against -object after the whole command line is read. */
    MemoryBackendConfig node = { .id = own(opts, memdev) };
    g_array_append_val(opts->nodes, node);
    return true;
}

static bool resolve_numa_nodes(SnapvmOptions *opts, Error **errp)
{
    for (unsigned n = 0; n < opts->nodes->len; n++) {
        MemoryBackendConfig *node = &g_array_index(opts->nodes,
                                                   MemoryBackendConfig, n);
        const MemoryBackendConfig *be = NULL;

        for (unsigned i = 0; i < opts->backends->len; i++) {
            if (!strcmp(g_array_index(opts->backends, MemoryBackendConfig,
                                      i).id, node->id)) {
                be = &g_array_index(opts->backends, MemoryBackendConfig, i);
            }
        }
        if (!be) {
            error_setg(errp, "-numa node,memdev=%s: no -object with id '%s'",
                       node->id, node->id);
            return false;
        }
        for (unsigned m = 0; m < n; m++) {
            if (!strcmp(g_array_index(opts->nodes, MemoryBackendConfig,
                                      m).id, node->id)) {
                error_setg(errp, "-numa node,memdev=%s: memory backend is "
                           "already used by another node", node->id);
                return false;
            }
        }
        *node = *be;
    }
    opts->machine.numa_nodes = (MemoryBackendConfig *)opts->nodes->data;
    opts->machine.nr_numa_nodes = opts->nodes->len;
    return true;
}

static bool parse_opt_accel(const char *value, Error **errp)
{
    if (strcmp(value, "tcg") && !g_str_has_prefix(value, "tcg,")) {
        error_setg(errp, "-accel %s: only 'tcg' is supported", value);
        return false;
    }
    return true;
}

static bool parse_opt_name(SnapvmOptions *opts, const char *value,
                           Error **errp)
{
    static const char *const keys[] = { "guest", "process", "debug-threads",
                                        NULL };
    g_autoptr(GHashTable) kv = parse_keyval("-name", value, "guest", errp);

    if (!kv || !check_keys(kv, "-name", keys, errp)) {
        return false;
    }
    const char *guest = g_hash_table_lookup(kv, "guest");
    opts->machine.name = guest ? own(opts, guest) : NULL;
    return true;
}

/* Returns false with errp set for an unknown option. */
static bool parse_one_option(SnapvmOptions *opts, const char *opt,
                             const char *value, Error **errp)
{
    if (!strcmp(opt, "m")) {
        return parse_opt_m(opts, value, errp);
    } else if (!strcmp(opt, "smp")) {
        return parse_opt_smp(opts, value, errp);
    } else if (!strcmp(opt, "accel")) {
        return parse_opt_accel(value, errp);
    } else if (!strcmp(opt, "kernel")) {
        opts->machine.kernel = value;
    } else if (!strcmp(opt, "object")) {
        return parse_opt_object(opts, value, errp);
    } else if (!strcmp(opt, "numa")) {
        return parse_opt_numa(opts, value, errp);
    } else if (!strcmp(opt, "name")) {
        return parse_opt_name(opts, value, errp);
    } else if (!strcmp(opt, "serial")) {
        if (strcmp(value, "stdio") && strcmp(value, "none") &&
            !(g_str_has_prefix(value, "file:") && value[5])) {
            error_setg(errp, "-serial %s: expected file:PATH, stdio or none",
                       value);
            return false;
        }
        opts->machine.serial = value;
    } else if (!strcmp(opt, "qmp")) {
        g_ptr_array_add(opts->qmp_specs, (gpointer)value);
    } else if (!strcmp(opt, "monitor")) {
        g_ptr_array_add(opts->monitor_specs, (gpointer)value);
    } else if (!strcmp(opt, "incoming")) {
        opts->incoming = value;
    } else if (!strcmp(opt, "D")) {
        opts->logfile = value;
    } else {
        g_assert_not_reached();
    }
    return true;
}

static const char *const options_with_value[] = {
    "m", "smp", "accel", "kernel", "object", "numa", "name", "serial",
    "qmp", "monitor", "incoming", "D", NULL
};

CmdlineResult snapvm_parse_cmdline(int argc, char **argv,
                                   SnapvmOptions *opts, Error **errp)
{
    opts->backends = g_array_new(false, true, sizeof(MemoryBackendConfig));
    opts->nodes = g_array_new(false, true, sizeof(MemoryBackendConfig));
    opts->qmp_specs = g_ptr_array_new();
    opts->monitor_specs = g_ptr_array_new();
    opts->owned = g_ptr_array_new_with_free_func(g_free);
    compat_options_init(opts);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (arg[0] != '-' || arg[1] == '\0') {
            error_setg(errp, "%s: unexpected argument (options start with "
                       "'-'; see -help)", arg);
            return CMDLINE_ERROR;
        }
        /* QEMU takes --opt as well as -opt. */
        const char *opt = arg + (arg[1] == '-' ? 2 : 1);

        if (!strcmp(opt, "help") || !strcmp(opt, "h")) {
            fputs(usage_text, stdout);
            return CMDLINE_EXIT;
        } else if (!strcmp(opt, "version")) {
            printf("snapvm version %s\n", SNAPVM_VERSION);
            return CMDLINE_EXIT;
        } else if (!strcmp(opt, "S")) {
            opts->start_paused = true;
        } else if (g_strv_contains(compat_flags, opt)) {
            compat_parse_option(opts, opt, NULL, errp);
        } else if (g_strv_contains(compat_options_with_value, opt)) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", arg);
                return CMDLINE_ERROR;
            }
            CmdlineResult r = compat_parse_option(opts, opt, argv[++i], errp);
            if (r != CMDLINE_RUN) {
                return r;
            }
        } else if (g_strv_contains(options_with_value, opt)) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", arg);
                return CMDLINE_ERROR;
            }
            if (!parse_one_option(opts, opt, argv[++i], errp)) {
                return CMDLINE_ERROR;
            }
        } else {
            error_setg(errp, "%s: invalid option (see -help)", arg);
            return CMDLINE_ERROR;
        }
    }
    if (!compat_resolve(opts, errp)) {
        return CMDLINE_ERROR;
    }
    if (opts->backends->len && !opts->nodes->len) {
        /* QEMU would let them sit unused; here that is always a mistake. */
        error_setg(errp, "-object memory-backend-*: a memory backend is "
                   "only used through -numa node,memdev=ID");
        return CMDLINE_ERROR;
    }
    if (!resolve_numa_nodes(opts, errp)) {
        return CMDLINE_ERROR;
    }
    return CMDLINE_RUN;
}

void snapvm_options_clear(SnapvmOptions *opts)
{
    if (opts->backends) {
        g_array_free(opts->backends, true);
    }
    if (opts->nodes) {
        g_array_free(opts->nodes, true);
    }
    if (opts->qmp_specs) {
        g_ptr_array_free(opts->qmp_specs, true);
    }
    if (opts->monitor_specs) {
        g_ptr_array_free(opts->monitor_specs, true);
    }
    compat_options_clear(opts);
    if (opts->owned) {
        g_ptr_array_free(opts->owned, true);
    }
    memset(opts, 0, sizeof(*opts));
}

static void log_to_file(const gchar *domain, GLogLevelFlags level,
                        const gchar *message, gpointer opaque)
{
    FILE *f = opaque;
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *stamp = g_date_time_format(now, "%F %T.%f");

    fprintf(f, "%s %s\n", stamp, message);
    fflush(f);
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL |
                 G_LOG_LEVEL_WARNING)) {
        g_log_default_handler(domain, level, message, NULL);
    }
}

bool snapvm_log_open(const char *path, Error **errp)
{
    FILE *f = fopen(path, "a");

    if (!f) {
        error_setg_errno(errp, errno, "-D: cannot open '%s'", path);
        return false;
    }
    /* Kept open for the life of the process. */
    g_log_set_default_handler(log_to_file, f);
    return true;
}
