/*
 * From a migration URI to a channel, and the named descriptors that
 * getfd/closefd manage for the fd: transport.
 */
#include "qemu/osdep.h"
#include "channel-fd.h"
#include "migration/migration.h"

struct MigFdStore {
    GMutex lock;            /* the migration thread takes fds too */
    GHashTable *fds;        /* name -> GINT_TO_POINTER(fd) */
    MigFdSets *fdsets;      /* add-fd's sets, for file:/dev/fdset/N */
};

MigFdStore *mig_fd_store_new(void)
{
    MigFdStore *store = g_new0(MigFdStore, 1);

    g_mutex_init(&store->lock);
    store->fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    store->fdsets = mig_fdsets_new();
    return store;
}

static void mig_fd_close_entry(gpointer key, gpointer value, gpointer opaque)
{
    close(GPOINTER_TO_INT(value));
}

void mig_fd_store_free(MigFdStore *store)
{
    if (!store) {
        return;
    }
    g_hash_table_foreach(store->fds, mig_fd_close_entry, NULL);
    g_hash_table_destroy(store->fds);
    mig_fdsets_free(store->fdsets);
    g_mutex_clear(&store->lock);
    g_free(store);
}

bool mig_fd_store_add(MigFdStore *store, const char *name, int fd,
                      Error **errp)
{
    if (!*name || g_ascii_isdigit(name[0])) {
        /* A digit would read as "fd:N", a raw descriptor number. */
        error_setg(errp, "Parameter 'fdname' must not start with a digit "
                   "or be empty");
        return false;
    }
    g_mutex_lock(&store->lock);
    gpointer old;
    if (g_hash_table_lookup_extended(store->fds, name, NULL, &old)) {
        /* QEMU replaces a descriptor of the same name. */
        close(GPOINTER_TO_INT(old));
    }
    g_hash_table_insert(store->fds, g_strdup(name), GINT_TO_POINTER(fd));
    g_mutex_unlock(&store->lock);
    return true;
}

int mig_fd_store_take(MigFdStore *store, const char *name, Error **errp)
{
    gpointer fd;
    bool found;

    g_mutex_lock(&store->lock);
    found = g_hash_table_lookup_extended(store->fds, name, NULL, &fd);
    if (found) {
        g_hash_table_remove(store->fds, name);
    }
    g_mutex_unlock(&store->lock);
    if (!found) {
        error_setg(errp, "File descriptor named '%s' has not been found",
                   name);
        return -1;
    }
    return GPOINTER_TO_INT(fd);
}

bool mig_fd_store_close(MigFdStore *store, const char *name, Error **errp)
{
    int fd = mig_fd_store_take(store, name, NULL);

    if (fd < 0) {
        /* closefd's own wording, as QEMU's. */
        error_setg(errp, "File descriptor named '%s' not found", name);
        return false;
    }
    close(fd);
    return true;
}

MigFdSets *mig_fd_store_fdsets(MigFdStore *store)
{
    return store->fdsets;
}

bool mig_fd_store_has(MigFdStore *store, const char *name)
{
    g_mutex_lock(&store->lock);
    bool found = g_hash_table_contains(store->fds, name);
    g_mutex_unlock(&store->lock);
    return found;
}

/* fd:NAME (from getfd) or fd:N (a descriptor snapvm inherited). */
static MigChannel *fd_uri_open(const char *arg, MigFdStore *fds,
                               Error **errp)
{
    g_autofree char *desc = g_strdup_printf("fd:%s", arg);
    int fd;

    if (g_ascii_isdigit(arg[0])) {
        guint64 n;
        if (!g_ascii_string_to_unsigned(arg, 10, 0, INT_MAX, &n, NULL)) {
            error_setg(errp, "%s: not a descriptor number", desc);
            return NULL;
        }
        fd = n;
        if (fcntl(fd, F_GETFD) < 0) {
            error_setg_errno(errp, errno, "%s: not an open descriptor", desc);
            return NULL;
        }
    } else {
        if (!fds) {
            error_setg(errp, "%s: no named descriptors here", desc);
            return NULL;
        }
        fd = mig_fd_store_take(fds, arg, errp);
        if (fd < 0) {
            return NULL;
        }
    }
    return mig_channel_new_fd(fd, desc, errp);
}

static const char *uri_strip(const char *uri, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(uri, prefix, n) ? NULL : uri + n;
}

/*
 * file:PATH[,offset=N], as QEMU 8.2+ reads it: the stream starts N bytes
 * into the file.  N is decimal or 0x-hexadecimal.  Any other ",KEY=" in
 * the path is refused rather than taken as part of the file name.
 */
bool mig_uri_parse_file(const char *spec, char **path, uint64_t *offset,
                        Error **errp)
{
    const char *opts = NULL;

    *offset = 0;
    for (const char *c = strchr(spec, ','); c; c = strchr(c + 1, ',')) {
        size_t key = strspn(c + 1, "abcdefghijklmnopqrstuvwxyz-_");

        if (key && c[1 + key] == '=') {
            opts = c;
            break;
        }
    }
    if (!opts) {
        *path = g_strdup(spec);
        return true;
    }
    g_auto(GStrv) items = g_strsplit(opts + 1, ",", -1);
    for (char **it = items; *it; it++) {
        const char *val = g_str_has_prefix(*it, "offset=") ? *it + 7 : NULL;
        char *end;

        if (!val) {
            g_autofree char *key = g_strndup(*it, strcspn(*it, "="));
            error_setg(errp, "file: migration URI option '%s' is not "
                       "supported (only offset=N)", key);
            return false;
        }
        errno = 0;
        *offset = g_ascii_strtoull(val, &end, 0);
        if (!g_ascii_isdigit(*val) || *end || errno) {
            error_setg(errp, "file: migration URI option 'offset' expects "
                       "a number of bytes (decimal or 0x hexadecimal), not "
                       "'%s'", val);
            return false;
        }
    }
    *path = g_strndup(spec, opts - spec);
    return true;
}

bool mig_uri_check(const char *uri, MigFdStore *fds, Error **errp)
{
    const char *arg;

    if ((arg = uri_strip(uri, "file:"))) {
        g_autofree char *path = NULL;
        uint64_t offset;

        int64_t set_id;

        if (!mig_uri_parse_file(arg, &path, &offset, errp)) {
            return false;
        }
        if (mig_fdset_path_id(path, &set_id) &&
            (!fds || !mig_fdsets_has(fds->fdsets, set_id))) {
            error_setg(errp, "File descriptor set %" PRId64 " has not been "
                       "found (add-fd)", set_id);
            return false;
        }
    }

    if ((arg = uri_strip(uri, "exec:")) || (arg = uri_strip(uri, "file:")) ||
        (arg = uri_strip(uri, "unix:")) || (arg = uri_strip(uri, "tcp:"))) {
        if (!*arg) {
            error_setg(errp, "Migration URI '%s' has nothing after the "
                       "transport", uri);
            return false;
        }
        return true;
    }
    if ((arg = uri_strip(uri, "fd:"))) {
        if (!g_ascii_isdigit(arg[0]) && (!fds || !mig_fd_store_has(fds, arg))) {
            error_setg(errp, "File descriptor named '%s' has not been found",
                       arg);
            return false;
        }
        return true;
    }
    error_setg(errp, "Unknown migration protocol: '%s' (expected exec:, "
               "file:, unix:, tcp: or fd:)", uri);
    return false;
}

/*
 * file:PATH[,offset=N], read by the one parser whichever way the stream
 * goes.
 */
static MigChannel *file_uri_open(const char *spec, bool outgoing,
                                 MigFdStore *fds, Error **errp)
{
    g_autofree char *path = NULL;
    MigFdSets *fdsets = fds ? fds->fdsets : NULL;
    uint64_t offset;

    if (!mig_uri_parse_file(spec, &path, &offset, errp)) {
        return NULL;
    }
    return outgoing ? mig_channel_file_outgoing(path, offset, fdsets, errp)
                    : mig_channel_file_incoming(path, offset, fdsets, errp);
}

/* One dispatcher for both directions: each transport has a pair. */
static MigChannel *uri_open(const char *uri, bool outgoing, MigFdStore *fds,
                            Error **errp)
{
    const char *arg;

    if (!mig_uri_check(uri, fds, errp)) {
        return NULL;
    }
    if ((arg = uri_strip(uri, "exec:"))) {
        return outgoing ? mig_channel_exec_outgoing(arg, errp)
                        : mig_channel_exec_incoming(arg, errp);
    }
    if ((arg = uri_strip(uri, "file:"))) {
        return file_uri_open(arg, outgoing, fds, errp);
    }
    if ((arg = uri_strip(uri, "unix:"))) {
        return outgoing ? mig_channel_unix_outgoing(arg, errp)
                        : mig_channel_unix_incoming(arg, errp);
    }
    if ((arg = uri_strip(uri, "tcp:"))) {
        return outgoing ? mig_channel_tcp_outgoing(arg, errp)
                        : mig_channel_tcp_incoming(arg, errp);
    }
    return fd_uri_open(uri_strip(uri, "fd:"), fds, errp);
}

MigChannel *mig_channel_open_outgoing(const char *uri, MigFdStore *fds,
                                      Error **errp)
{
    return uri_open(uri, true, fds, errp);
}

MigChannel *mig_channel_open_file(const char *path, Error **errp)
{
    return mig_channel_file_incoming(path, 0, NULL, errp);
}

MigChannel *mig_channel_open_incoming(const char *uri, MigFdStore *fds,
                                      Error **errp)
{
    return uri_open(uri, false, fds, errp);
}
