/*
 * File descriptor sets (add-fd, remove-fd, query-fdsets), as QEMU has
 * them: a client passes descriptors with SCM_RIGHTS into numbered sets,
 * and a path "/dev/fdset/N" then means "a duplicate of a descriptor of
 * set N opened for the access wanted".  This is how libvirt hands a
 * migration a file that QEMU itself may not open.  See
 * include/migration/fdset.h.
 */
#include "qemu/osdep.h"
#include "migration/fdset.h"

typedef struct FdSetEntry {
    int64_t set_id;
    int fd;
    char *opaque;
} FdSetEntry;

struct MigFdSets {
    GMutex lock;        /* the migration thread opens /dev/fdset/N */
    GArray *entries;    /* FdSetEntry, ordered by set id, then fd */
};

MigFdSets *mig_fdsets_new(void)
{
    MigFdSets *sets = g_new0(MigFdSets, 1);

    g_mutex_init(&sets->lock);
    sets->entries = g_array_new(FALSE, FALSE, sizeof(FdSetEntry));
    return sets;
}

static void entry_release(FdSetEntry *e)
{
    close(e->fd);
    g_free(e->opaque);
}

void mig_fdsets_free(MigFdSets *sets)
{
    if (!sets) {
        return;
    }
    for (guint i = 0; i < sets->entries->len; i++) {
        entry_release(&g_array_index(sets->entries, FdSetEntry, i));
    }
    g_array_free(sets->entries, TRUE);
    g_mutex_clear(&sets->lock);
    g_free(sets);
}

static bool set_exists(MigFdSets *sets, int64_t id)
{
    for (guint i = 0; i < sets->entries->len; i++) {
        if (g_array_index(sets->entries, FdSetEntry, i).set_id == id) {
            return true;
        }
    }
    return false;
}

bool mig_fdsets_has(MigFdSets *sets, int64_t set_id)
{
    g_mutex_lock(&sets->lock);
    bool found = set_exists(sets, set_id);
    g_mutex_unlock(&sets->lock);
    return found;
}

int64_t mig_fdsets_add(MigFdSets *sets, bool has_set_id, int64_t set_id,
                       const char *opaque, int fd, Error **errp)
{
    FdSetEntry e = { .fd = fd, .opaque = g_strdup(opaque) };
    guint at;

    if (has_set_id && set_id < 0) {
        error_setg(errp, "Parameter 'fdset-id' expects a non-negative "
                   "value");
        g_free(e.opaque);
        return -1;
    }
    g_mutex_lock(&sets->lock);
    if (!has_set_id) {
        /* As QEMU: the lowest id that no set has. */
        for (set_id = 0; set_exists(sets, set_id); set_id++) {
        }
    }
    e.set_id = set_id;
    for (at = 0; at < sets->entries->len; at++) {
        FdSetEntry *o = &g_array_index(sets->entries, FdSetEntry, at);
        if (o->set_id > set_id || (o->set_id == set_id && o->fd > fd)) {
            break;
        }
    }
    g_array_insert_val(sets->entries, at, e);
    g_mutex_unlock(&sets->lock);
    return set_id;
}

bool mig_fdsets_remove(MigFdSets *sets, int64_t set_id, bool has_fd,
                       int64_t fd, Error **errp)
{
    bool found = false;

    g_mutex_lock(&sets->lock);
    for (guint i = 0; i < sets->entries->len;) {
        FdSetEntry *e = &g_array_index(sets->entries, FdSetEntry, i);

        if (e->set_id == set_id && (!has_fd || e->fd == fd)) {
            entry_release(e);
            g_array_remove_index(sets->entries, i);
            found = true;
        } else {
            i++;
        }
    }
    g_mutex_unlock(&sets->lock);
    if (!found) {
        if (has_fd) {
            error_setg(errp, "File descriptor named 'fdset-id:%" PRId64
                       ", fd:%" PRId64 "' not found", set_id, fd);
        } else {
            error_setg(errp, "File descriptor named 'fdset-id:%" PRId64
                       "' not found", set_id);
        }
    }
    return found;
}

void mig_fdsets_foreach(MigFdSets *sets, MigFdSetsFunc fn, void *opaque)
{
    g_mutex_lock(&sets->lock);
    for (guint i = 0; i < sets->entries->len; i++) {
        FdSetEntry *e = &g_array_index(sets->entries, FdSetEntry, i);
        fn(e->set_id, e->fd, e->opaque, opaque);
    }
    g_mutex_unlock(&sets->lock);
}

bool mig_fdset_path_id(const char *path, int64_t *set_id)
{
    const char *num;
    guint64 n;

    if (!g_str_has_prefix(path, "/dev/fdset/")) {
        return false;
    }
    num = path + strlen("/dev/fdset/");
    if (!g_ascii_string_to_unsigned(num, 10, 0, INT64_MAX, &n, NULL)) {
        return false;
    }
    *set_id = n;
    return true;
}

int mig_fdsets_dup(MigFdSets *sets, int64_t set_id, int accmode,
                   Error **errp)
{
    int exact = -1, rdwr = -1, dup_fd;

    g_mutex_lock(&sets->lock);
    for (guint i = 0; i < sets->entries->len; i++) {
        FdSetEntry *e = &g_array_index(sets->entries, FdSetEntry, i);
        int flags;

        if (e->set_id != set_id) {
            continue;
        }
        flags = fcntl(e->fd, F_GETFL);
        if (flags < 0) {
            continue;
        }
        if ((flags & O_ACCMODE) == accmode && exact < 0) {
            exact = e->fd;
        } else if ((flags & O_ACCMODE) == O_RDWR && rdwr < 0) {
            rdwr = e->fd;
        }
    }
    /* An exact match first, as QEMU; one opened read-write also serves. */
    dup_fd = exact >= 0 ? exact : rdwr;
    if (dup_fd >= 0) {
        dup_fd = fcntl(dup_fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0) {
            error_setg_errno(errp, errno, "/dev/fdset/%" PRId64
                             ": cannot duplicate its descriptor", set_id);
        }
    } else {
        error_setg(errp, "/dev/fdset/%" PRId64 ": %s", set_id,
                   set_exists(sets, set_id) ?
                   "no descriptor in the set has the access mode needed "
                   "(opened for reading or writing as the migration "
                   "needs, or read-write)" :
                   "no such file descriptor set (add-fd)");
    }
    g_mutex_unlock(&sets->lock);
    return dup_fd;
}
