/*
 * file:PATH.  An outgoing stream is written to a temporary name in the
 * same directory, fsync'ed and renamed over PATH only when it is complete;
 * an aborted one is removed.  So a snapshot to file: is complete or absent,
 * and a crash never leaves half a file under the real name.
 *
 * file:/dev/fdset/N writes into a descriptor of an add-fd set instead:
 * there is no name to rename to, so it is fsync'ed on close and cut back
 * to where the stream started on abort.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "channel-fd.h"
#include "migration/fdset.h"
#include <sys/stat.h>

typedef struct FileChannel {
    FdChannel fdc;
    char *path;         /* final name */
    char *tmp_path;     /* where we write; NULL for incoming and fdsets */
    /* Outgoing into an fdset's descriptor. */
    bool fdset_out;
    uint64_t start;     /* where the stream starts in the file */
    /*
     * The same file opened O_DIRECT, for mapped-ram page writes only: the
     * stream's small unaligned writes keep going through fdc.fd.
     */
    int direct_fd;
} FileChannel;

static void file_free(FileChannel *f)
{
    if (f->direct_fd >= 0) {
        close(f->direct_fd);
    }
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
    if (f->fdset_out && f->fdc.fd >= 0 && ftruncate(f->fdc.fd, f->start)) {
        /* Best effort: the migration has failed already. */
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

    if (f->fdset_out) {
        if (fault_inject(FAULT_CHANNEL_FSYNC) || fsync(f->fdc.fd) < 0) {
            error_setg_errno(errp, errno, "%s: fsync failed",
                             ch->description);
            file_abort(ch);
            return false;
        }
    }
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

/* ---- positional I/O (mapped-ram) ---- */

static bool file_pwritev_all(MigChannel *ch, const struct iovec *iov,
                             int iovcnt, uint64_t offset, bool direct,
                             Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);
    int fd = direct ? f->direct_fd : f->fdc.fd;
    g_autofree struct iovec *local = g_memdup2(iov, sizeof(*iov) * iovcnt);
    struct iovec *cur = local;

    g_assert(fd >= 0);
    while (iovcnt > 0) {
        if (fd_channel_is_cancelled(&f->fdc)) {
            error_setg(errp, "%s: channel cancelled", ch->description);
            return false;
        }
        ssize_t n = fault_inject(FAULT_CHANNEL_PWRITE) ? -1 :
                    pwritev(fd, cur, MIN(iovcnt, IOV_MAX), offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "%s: write at "
                             "offset %" PRIu64 " failed", ch->description,
                             offset);
            return false;
        }
        offset += n;
        fd_channel_iov_consume(&cur, &iovcnt, n);
    }
    return true;
}

static bool file_pread_all(MigChannel *ch, void *buf, size_t len,
                           uint64_t offset, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);
    uint8_t *p = buf;

    while (len) {
        ssize_t n = pread(f->fdc.fd, p, len, offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "%s: read at offset %" PRIu64
                             " failed", ch->description, offset);
            return false;
        }
        if (n == 0) {
            error_setg(errp, "%s: unexpected end of file at offset %" PRIu64,
                       ch->description, offset);
            return false;
        }
        p += n;
        len -= n;
        offset += n;
    }
    return true;
}

static bool file_discard(MigChannel *ch, uint64_t offset, uint64_t len,
                         Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (fallocate(f->fdc.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  offset, len) < 0) {
        error_setg_errno(errp, errno, "%s: cannot punch a hole at offset %"
                         PRIu64, ch->description, offset);
        return false;
    }
    return true;
}

static bool file_seek(MigChannel *ch, uint64_t offset, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (lseek(f->fdc.fd, offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "%s: cannot seek to offset %" PRIu64,
                         ch->description, offset);
        return false;
    }
    return true;
}

static bool file_get_size(MigChannel *ch, uint64_t *size, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);
    struct stat st;

    if (fstat(f->fdc.fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s: cannot stat", ch->description);
        return false;
    }
    *size = st.st_size;
    return true;
}

static bool file_next_hole(MigChannel *ch, uint64_t offset, uint64_t *hole,
                           Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);
    off_t r = lseek(f->fdc.fd, offset, SEEK_HOLE);

    if (r < 0) {
        error_setg_errno(errp, errno, "%s: cannot look for a hole after "
                         "offset %" PRIu64, ch->description, offset);
        return false;
    }
    *hole = r;
    return true;
}

static bool file_truncate(MigChannel *ch, uint64_t size, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (ftruncate(f->fdc.fd, size) < 0) {
        error_setg_errno(errp, errno, "%s: cannot set the size to %" PRIu64,
                         ch->description, size);
        return false;
    }
    return true;
}

static bool file_enable_direct_io(MigChannel *ch, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);

    if (!f->tmp_path) {
        error_setg(errp, "%s: direct-io is for writing a snapshot",
                   ch->description);
        return false;
    }
    if (f->direct_fd >= 0) {
        return true;
    }
    f->direct_fd = fault_inject(FAULT_DIRECT_IO_OPEN) ? -1 :
                   open(f->tmp_path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (f->direct_fd < 0) {
        error_setg_errno(errp, errno, "%s: the filesystem refuses O_DIRECT "
                         "(direct-io)", ch->description);
        return false;
    }
    return true;
}

static int file_dup_fd(MigChannel *ch, Error **errp)
{
    FileChannel *f = container_of(ch, FileChannel, fdc.parent);
    int fd = fcntl(f->fdc.fd, F_DUPFD_CLOEXEC, 0);

    if (fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot duplicate its descriptor",
                         ch->description);
    }
    return fd;
}

static const MigChannelOps file_ops = {
    .writev_all = fd_channel_writev_all,
    .read = fd_channel_read,
    .close = file_close,
    .abort = file_abort,
    .cancel = fd_channel_cancel,
    .pwritev_all = file_pwritev_all,
    .pread_all = file_pread_all,
    .discard = file_discard,
    .seek = file_seek,
    .get_size = file_get_size,
    .next_hole = file_next_hole,
    .truncate = file_truncate,
    .enable_direct_io = file_enable_direct_io,
    .dup_fd = file_dup_fd,
};

/*
 * The stream of a file: URI with an offset starts there: no positional
 * I/O, whose offsets would be the stream's and not the file's.
 */
static const MigChannelOps file_at_offset_ops = {
    .writev_all = fd_channel_writev_all,
    .read = fd_channel_read,
    .close = file_close,
    .abort = file_abort,
    .cancel = fd_channel_cancel,
};

/*
 * The channel around @fd, which it takes over (closed on failure too), for
 * the stream at @offset of @path.  @tmp_path (taken over, or NULL) is the
 * temporary name an outgoing stream is written to, removed on failure;
 * @fdset_out: @fd is an fdset's descriptor being written.
 */
static MigChannel *file_channel_new(int fd, const char *path, char *tmp_path,
                                    bool fdset_out, uint64_t offset,
                                    const char *desc, Error **errp)
{
    FileChannel *f = g_new0(FileChannel, 1);

    f->direct_fd = -1;
    f->path = g_strdup(path);
    f->tmp_path = tmp_path;
    f->fdset_out = fdset_out;
    f->start = offset;
    if (!fd_channel_init(&f->fdc, offset ? &file_at_offset_ops : &file_ops,
                         fd, desc, errp)) {
        if (tmp_path) {
            unlink(tmp_path);
        }
        file_free(f);
        return NULL;
    }
    return &f->fdc.parent;
}

static char *file_description(const char *path, uint64_t offset)
{
    return offset ? g_strdup_printf("file:%s,offset=%" PRIu64, path, offset)
                  : g_strdup_printf("file:%s", path);
}

/*
 * Give the new file @fd the first @offset bytes of the file being
 * replaced (zeros past its end, or without one), and put the stream
 * after them, as QEMU does when it truncates the file to the offset.
 */
static bool file_keep_head(int fd, const char *path, uint64_t offset,
                           const char *desc, Error **errp)
{
    int old = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t done = 0;
    char buf[64 * 1024];

    while (old >= 0 && done < offset) {
        ssize_t n = pread(old, buf, MIN(sizeof(buf), offset - done), done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;      /* its end: the rest of the head stays zero */
        }
        if (pwrite(fd, buf, n, done) != n) {
            error_setg_errno(errp, errno, "%s: cannot keep the bytes before "
                             "the offset", desc);
            close(old);
            return false;
        }
        done += n;
    }
    if (old >= 0) {
        close(old);
    }
    if (ftruncate(fd, offset) < 0 || lseek(fd, offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "%s: cannot start the stream at the "
                         "offset", desc);
        return false;
    }
    return true;
}

static MigChannel *file_fdset_outgoing(const char *path, int64_t set_id,
                                       uint64_t offset, MigFdSets *fdsets,
                                       Error **errp)
{
    g_autofree char *desc = file_description(path, offset);
    int fd = fdsets ? mig_fdsets_dup(fdsets, set_id, O_WRONLY, errp) : -1;

    if (!fdsets) {
        error_setg(errp, "%s: no descriptor sets here", desc);
    }
    if (fd < 0) {
        return NULL;
    }
    /* As QEMU: the file ends where the stream starts. */
    if (ftruncate(fd, offset) < 0 || lseek(fd, offset, SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "%s: cannot start the stream at "
                         "offset %" PRIu64, desc, offset);
        close(fd);
        return NULL;
    }
    return file_channel_new(fd, path, NULL, true, offset, desc, errp);
}

MigChannel *mig_channel_file_outgoing(const char *path, uint64_t offset,
                                      MigFdSets *fdsets, Error **errp)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *desc = file_description(path, offset);
    int64_t set_id;

    if (mig_fdset_path_id(path, &set_id)) {
        return file_fdset_outgoing(path, set_id, offset, fdsets, errp);
    }

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
    if (offset && !file_keep_head(fd, path, offset, desc, errp)) {
        close(fd);
        unlink(tmp_path);
        g_free(tmp_path);
        return NULL;
    }
    return file_channel_new(fd, path, tmp_path, false, offset, desc, errp);
}

MigChannel *mig_channel_file_incoming(const char *path, uint64_t offset,
                                      MigFdSets *fdsets, Error **errp)
{
    g_autofree char *desc = file_description(path, offset);
    struct stat st;
    int64_t set_id;
    int fd;

    if (mig_fdset_path_id(path, &set_id)) {
        if (!fdsets) {
            error_setg(errp, "%s: no descriptor sets here", desc);
            return NULL;
        }
        fd = mig_fdsets_dup(fdsets, set_id, O_RDONLY, errp);
        if (fd < 0) {
            return NULL;
        }
        /* Its position is shared with the set's copy: start from 0. */
        if (!offset && lseek(fd, 0, SEEK_SET) < 0) {
            error_setg_errno(errp, errno, "%s: cannot seek", desc);
            close(fd);
            return NULL;
        }
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "%s: cannot open", desc);
            return NULL;
        }
    }
    if (offset && (fstat(fd, &st) < 0 || (uint64_t)st.st_size < offset ||
                   lseek(fd, offset, SEEK_SET) < 0)) {
        error_setg(errp, "%s: the offset is past the end of the file", desc);
        close(fd);
        return NULL;
    }
    return file_channel_new(fd, path, NULL, false, offset, desc, errp);
}
