/*
 * Fault injection (include/qemu/fault-inject.h).
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/fault-inject.h"

typedef struct FaultKindInfo {
    const char *name;
    int err;                /* what the real call reports most plausibly */
} FaultKindInfo;

static const FaultKindInfo fault_kinds[FAULT__MAX] = {
    [FAULT_UFFD_OPEN] = { "uffd-open", EMFILE },
    [FAULT_UFFD_IOCTL] = { "uffd-ioctl", ENOMEM },
    [FAULT_UFFD_READ] = { "uffd-read", EIO },
    [FAULT_CHANNEL_WRITE] = { "channel-write", EIO },
    [FAULT_CHANNEL_FSYNC] = { "channel-fsync", EIO },
    [FAULT_FORK] = { "fork", EAGAIN },
    [FAULT_THREAD_CREATE] = { "thread-create", EAGAIN },
    [FAULT_ALLOC] = { "alloc", ENOMEM },
    [FAULT_PAGEMAP_READ] = { "pagemap-read", EIO },
    /* What open(2) says where the filesystem refuses O_DIRECT. */
    [FAULT_DIRECT_IO_OPEN] = { "direct-io-open", EINVAL },
    [FAULT_CHANNEL_PWRITE] = { "channel-pwrite", EIO },
};

bool fault_inject_armed;

/* Which call of each kind fails (0: none), and the counts so far. */
static uint64_t fail_at[FAULT__MAX];
static uint64_t calls[FAULT__MAX];
static uint64_t injected[FAULT__MAX];
static char *log_path;

const char *fault_kind_name(FaultKind kind)
{
    return kind < FAULT__MAX ? fault_kinds[kind].name : NULL;
}

FaultKind fault_kind_from_name(const char *name)
{
    for (int k = 0; k < FAULT__MAX; k++) {
        if (!strcmp(fault_kinds[k].name, name)) {
            return k;
        }
    }
    return FAULT__MAX;
}

int fault_inject_errno(FaultKind kind)
{
    g_assert(kind < FAULT__MAX);
    return fault_kinds[kind].err;
}

uint64_t fault_inject_calls(FaultKind kind)
{
    return qatomic_read(&calls[kind]);
}

uint64_t fault_inject_injected(FaultKind kind)
{
    return qatomic_read(&injected[kind]);
}

/* One line per injected failure; rare, so open and close each time. */
static void fault_inject_log(FaultKind kind, uint64_t n)
{
    const char *errname = strerrorname_np(fault_kinds[kind].err);
    g_autofree char *line = g_strdup_printf("%s %" PRIu64 " %s\n",
                                            fault_kinds[kind].name, n,
                                            errname ? errname : "?");

    fprintf(stderr, "snapvm: fault-inject: failing call %s", line);
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                      0600);
        if (fd >= 0) {
            if (write(fd, line, strlen(line)) < 0) {
                /* The stderr line above is the record then. */
            }
            close(fd);
        }
    }
}

bool fault_inject_check(FaultKind kind)
{
    g_assert(kind < FAULT__MAX);
    uint64_t n = qatomic_inc_fetch(&calls[kind]);

    if (n != fail_at[kind]) {
        return false;
    }
    qatomic_inc(&injected[kind]);
    fault_inject_log(kind, n);
    errno = fault_kinds[kind].err;
    return true;
}

bool fault_inject_gerror(FaultKind kind, GError **gerr)
{
    if (!fault_inject(kind)) {
        return false;
    }
    int err = errno;
    g_set_error(gerr, G_FILE_ERROR, g_file_error_from_errno(err),
                "%s", g_strerror(err));
    errno = err;
    return true;
}

bool fault_inject_configure(const char *spec, Error **errp)
{
    uint64_t want[FAULT__MAX] = { 0 };
    bool any = false;

    if (spec && *spec) {
        g_auto(GStrv) items = g_strsplit(spec, ",", -1);
        for (char **it = items; *it; it++) {
            g_auto(GStrv) kv = g_strsplit(g_strstrip(*it), ":", 2);
            guint64 n;
            FaultKind kind = kv[0] ? fault_kind_from_name(kv[0]) : FAULT__MAX;

            if (kind == FAULT__MAX || !kv[1] ||
                !g_ascii_string_to_unsigned(kv[1], 10, 1, G_MAXUINT64, &n,
                                            NULL)) {
                g_autofree char *kinds = NULL;
                GString *s = g_string_new(NULL);
                for (int k = 0; k < FAULT__MAX; k++) {
                    g_string_append_printf(s, "%s%s", k ? ", " : "",
                                           fault_kinds[k].name);
                }
                kinds = g_string_free(s, false);
                error_setg(errp, "fault injection: '%s' is not KIND:N with "
                           "N >= 1 and KIND one of %s", *it, kinds);
                return false;
            }
            want[kind] = n;
            any = true;
        }
    }
    for (int k = 0; k < FAULT__MAX; k++) {
        fail_at[k] = want[k];
        qatomic_set(&calls[k], 0);
        qatomic_set(&injected[k], 0);
    }
    fault_inject_armed = any;
    return true;
}

/*
 * Before main(), so that no thread exists yet and every call of the
 * process is counted.  A malformed spec would silently test nothing: stop.
 */
__attribute__((constructor))
static void fault_inject_init_from_env(void)
{
    const char *spec = getenv("SNAPVM_FAULT_INJECT");
    Error *err = NULL;

    if (!spec || !*spec) {
        return;
    }
    log_path = g_strdup(getenv("SNAPVM_FAULT_INJECT_LOG"));
    if (!fault_inject_configure(spec, &err)) {
        fprintf(stderr, "snapvm: SNAPVM_FAULT_INJECT: %s\n",
                error_get_pretty(err));
        exit(1);
    }
}
