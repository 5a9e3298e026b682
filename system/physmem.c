/*
 * Guest RAM backends (memory-backend-ram, -memfd, -file).
 *
 * Every block is mapped at a host address aligned to 2 MiB (or to the
 * backend's huge page size) so that transparent huge pages, hugetlbfs
 * pages and the migration code's whole-huge-page ranges line up with guest
 * physical addresses.  Nothing here touches guest memory: the kernel
 * supplies zero pages on first access.
 */
#include "qemu/osdep.h"
#include "sysemu/hostmem.h"

#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define RAM_HOST_ALIGN (2 * MiB)

/*
 * Reserve size + align bytes of address space, then map the backing
 * memory with MAP_FIXED over an aligned part of the reservation and give
 * back the rest.
 */
static void *ram_mmap_aligned(size_t size, size_t align, int flags, int fd,
                              Error **errp)
{
    size_t total = size + align;
    uint8_t *guard = mmap(NULL, total, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (guard == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot reserve %zu bytes of address "
                         "space for guest RAM", size);
        return NULL;
    }
    uint8_t *aligned = (uint8_t *)QEMU_ALIGN_UP((uintptr_t)guard, align);
    void *ptr = mmap(aligned, size, PROT_READ | PROT_WRITE,
                     flags | MAP_FIXED | MAP_NORESERVE, fd, 0);
    if (ptr == MAP_FAILED) {
        int err = errno;
        munmap(guard, total);
        error_setg_errno(errp, err, "cannot map %zu bytes of guest RAM", size);
        return NULL;
    }
    if (aligned > guard) {
        munmap(guard, aligned - guard);
    }
    size_t tail = (guard + total) - (aligned + size);
    if (tail) {
        munmap(aligned + size, tail);
    }
    return ptr;
}

static int ram_file_open(const MemoryBackendConfig *cfg, Error **errp)
{
    struct stat st;
    int fd;

    if (!cfg->mem_path) {
        error_setg(errp, "memory-backend-file '%s' needs mem-path", cfg->id);
        return -1;
    }
    if (stat(cfg->mem_path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A directory (hugetlbfs, tmpfs): private, nameless backing. */
        g_autofree char *tmpl = g_build_filename(cfg->mem_path,
                                                 "snapvm.XXXXXX", NULL);
        fd = mkstemp(tmpl);
        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot create a file in '%s'",
                             cfg->mem_path);
            return -1;
        }
        unlink(tmpl);
    } else {
        fd = open(cfg->mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "cannot open '%s'", cfg->mem_path);
            return -1;
        }
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "cannot stat '%s'", cfg->mem_path);
        close(fd);
        return -1;
    }
    /* Like QEMU: a file smaller than the backend is refused, not grown. */
    if (st.st_size > 0 && (uint64_t)st.st_size < cfg->size) {
        error_setg(errp, "backing store '%s' is %" PRIu64 " bytes, smaller "
                   "than the size of memory backend '%s' (%" PRIu64 ")",
                   cfg->mem_path, (uint64_t)st.st_size, cfg->id, cfg->size);
        close(fd);
        return -1;
    }
    return fd;
}

static size_t ram_fd_page_size(int fd)
{
    struct statfs fs;

    if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC) {
        return fs.f_bsize;
    }
    return getpagesize();
}

RAMBlock *ram_block_new(const MemoryBackendConfig *cfg, Error **errp)
{
    g_autofree RAMBlock *rb = g_new0(RAMBlock, 1);
    int fd = -1;
    int flags;

    if (!cfg->id || strlen(cfg->id) >= sizeof(rb->idstr)) {
        error_setg(errp, "a memory backend needs an id of 1 to %zu characters",
                   sizeof(rb->idstr) - 1);
        return NULL;
    }
    if (cfg->size == 0 || !QEMU_IS_ALIGNED(cfg->size, TARGET_PAGE_SIZE)) {
        error_setg(errp, "memory backend '%s': size %" PRIu64 " is not a "
                   "non-zero multiple of 4 KiB", cfg->id, cfg->size);
        return NULL;
    }

    g_strlcpy(rb->idstr, cfg->id, sizeof(rb->idstr));
    rb->backend = cfg->kind;
    rb->used_length = cfg->size;
    rb->page_size = getpagesize();

    switch (cfg->kind) {
    case RAM_BACKEND_ANON:
        rb->shared = cfg->share;
        flags = MAP_ANONYMOUS | (cfg->share ? MAP_SHARED : MAP_PRIVATE);
        break;
    case RAM_BACKEND_MEMFD:
        fd = memfd_create(cfg->id, MFD_CLOEXEC);
        if (fd < 0) {
            error_setg_errno(errp, errno, "memory backend '%s': memfd_create",
                             cfg->id);
            return NULL;
        }
        /* memory-backend-memfd is share=on unless told otherwise in QEMU;
         * here it always is. */
        rb->shared = true;
        flags = MAP_SHARED;
        break;
    case RAM_BACKEND_FILE:
        fd = ram_file_open(cfg, errp);
        if (fd < 0) {
            error_prepend(errp, "memory backend '%s': ", cfg->id);
            return NULL;
        }
        rb->page_size = ram_fd_page_size(fd);
        rb->shared = cfg->share;
        rb->mem_path = g_strdup(cfg->mem_path);
        flags = cfg->share ? MAP_SHARED : MAP_PRIVATE;
        break;
    default:
        g_assert_not_reached();
    }

    if (!QEMU_IS_ALIGNED(cfg->size, rb->page_size)) {
        error_setg(errp, "memory backend '%s': size %" PRIu64 " is not a "
                   "multiple of its page size %zu", cfg->id, cfg->size,
                   rb->page_size);
        goto fail;
    }
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < cfg->size &&
            ftruncate(fd, cfg->size) < 0) {
            error_setg_errno(errp, errno, "memory backend '%s': cannot size "
                             "its backing to %" PRIu64 " bytes",
                             cfg->id, cfg->size);
            goto fail;
        }
    }

    rb->host = ram_mmap_aligned(cfg->size, MAX(RAM_HOST_ALIGN, rb->page_size),
                                flags, fd, errp);
    if (!rb->host) {
        error_prepend(errp, "memory backend '%s': ", cfg->id);
        goto fail;
    }
    if (cfg->kind == RAM_BACKEND_ANON && !cfg->share) {
        /* Only a hint: THP may be disabled on this host. */
        madvise(rb->host, cfg->size, MADV_HUGEPAGE);
    }
    rb->fd = fd;
    return g_steal_pointer(&rb);

fail:
    if (fd >= 0) {
        close(fd);
    }
    g_free(rb->mem_path);
    return NULL;
}

void ram_block_free(RAMBlock *rb)
{
    if (!rb) {
        return;
    }
    munmap(rb->host, rb->used_length);
    if (rb->fd >= 0) {
        close(rb->fd);
    }
    g_free(rb->mem_path);
    g_free(rb);
}
