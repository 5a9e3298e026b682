/*
 * file:PATH.  An outgoing stream is written to a temporary name in the
 * same directory, fsync'ed and renamed over PATH only when it is complete;
 * an aborted one is removed.  So a snapshot to file: is complete or absent,
 * and a crash never leaves half a file under the real name.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "channel-fd.h"

typedef struct FileChannel {
    FdChannel fdc;
    char *path;         /* final name */
    char *tmp_path;     /* where we write; NULL for incoming */
} FileChannel;

static void file_free(FileChannel *f)
{
    fd_channel_cleanup(&f->fdc);
    g_free(f->path);
    g_free(f->tmp_path);
    g_free(f);
}

static void file_abort(MigChannel *ch)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (f->tmp_path) {
        unlink(f->tmp_path);
    }
    file_free(f);
}

/* Make the rename itself durable. */
static void file_sync_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static bool file_close(MigChannel *ch, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (!f->tmp_path) {
        file_free(f);
        return true;
    }
    if (fault_inject(FAULT_CHANNEL_FSYNC) || fsync(f->fdc.fd) < 0) {
        error_setg_errno(errp, errno, "%s: fsync failed", ch->description);
        file_abort(ch);
        return false;
    }
    int ret = close(f->fdc.fd);
    f->fdc.fd = -1;
    if (ret < 0) {
        error_setg_errno(errp, errno, "%s: close failed", ch->description);
        file_abort(ch);
        return false;
    }
    if (rename(f->tmp_path, f->path) < 0) {
        error_setg_errno(errp, errno, "%s: cannot rename %s to %s",
                         ch->description, f->tmp_path, f->path);
        file_abort(ch);
        return false;
    }
    file_sync_dir(f->path);
    file_free(f);
    return true;
}

static const MigChannelOps file_ops = {
    .writev_all = fd_channel_writev_all,
    .read = fd_channel_read,
    .close = file_close,
    .abort = file_abort,
    .cancel = fd_channel_cancel,
};

MigChannel *mig_channel_file_outgoing(const char *path, Error **errp)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *desc = g_strdup_printf("file:%s", path);

    if (!*path) {
        error_setg(errp, "file: needs a path");
        return NULL;
    }
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        error_setg(errp, "%s: is a directory", desc);
        return NULL;
    }
    /* Guest memory is private: the file is readable by its owner only. */
    char *tmp_path = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
    int fd = mkostemp(tmp_path, O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot create a file in %s",
                         desc, dir);
        g_free(tmp_path);
        return NULL;
    }
    FileChannel *f = g_new0(FileChannel, 1);
    f->path = g_strdup(path);
    f->tmp_path = tmp_path;
    if (!fd_channel_init(&f->fdc, &file_ops, fd, desc, errp)) {
        unlink(tmp_path);
        file_free(f);
        return NULL;
    }
    return &f->fdc.parent;
}

MigChannel *mig_channel_file_incoming(const char *path, Error **errp)
{
    g_autofree char *desc = g_strdup_printf("file:%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot open", desc);
        return NULL;
    }
    FileChannel *f = g_new0(FileChannel, 1);
    f->path = g_strdup(path);
    if (!fd_channel_init(&f->fdc, &file_ops, fd, desc, errp)) {
        file_free(f);
        return NULL;
    }
    return &f->fdc.parent;
}
