/*
 * Populated-page queries (include/migration/ram-populated.h).
 *
 * Anonymous memory: /proc/self/pagemap, bit 63 (present) and 62 (swapped).
 * File and memfd memory: a page may also hold data that is in the file
 * but not mapped in our page tables (never touched through this mapping,
 * or reclaimed), so SEEK_DATA on the backing fd is asked too.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "qemu/bitmap.h"
#include "qemu/pagemap-scan.h"
#include "qemu/test-switches.h"
#include "migration/ram-populated.h"

#define PAGEMAP_PRESENT (UINT64_C(1) << 63)
#define PAGEMAP_SWAPPED (UINT64_C(1) << 62)
#define POPULATED_MAX_PAGES 512

struct RamPopulatedReader {
    int pagemap_fd;
};

RamPopulatedReader *ram_populated_reader_new(Error **errp)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open /proc/self/pagemap");
        return NULL;
    }
    RamPopulatedReader *r = g_new0(RamPopulatedReader, 1);
    r->pagemap_fd = fd;
    return r;
}

void ram_populated_reader_free(RamPopulatedReader *r)
{
    if (r) {
        close(r->pagemap_fd);
        g_free(r);
    }
}

/* Mark pages of [first_page, +npages) that have data in the backing file. */
static bool file_data_pages(RAMBlock *rb, uint64_t first_page,
                            unsigned npages, bool *out, Error **errp)
{
    off_t start = (off_t)first_page << TARGET_PAGE_BITS;
    off_t end = start + ((off_t)npages << TARGET_PAGE_BITS);
    off_t pos = start;

    while (pos < end) {
        off_t data = lseek(rb->fd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) {
                return true;        /* only holes from pos to EOF */
            }
            /* A filesystem without SEEK_DATA: assume data everywhere. */
            for (unsigned i = 0; i < npages; i++) {
                out[i] = true;
            }
            return true;
        }
        if (data >= end) {
            return true;
        }
        off_t hole = lseek(rb->fd, data, SEEK_HOLE);
        if (hole < 0 || hole > end) {
            hole = end;
        }
        for (off_t p = QEMU_ALIGN_DOWN(data, TARGET_PAGE_SIZE); p < hole;
             p += TARGET_PAGE_SIZE) {
            out[(p - start) >> TARGET_PAGE_BITS] = true;
        }
        pos = QEMU_ALIGN_UP(hole, TARGET_PAGE_SIZE);
    }
    return true;
}

bool ram_populated_read(RamPopulatedReader *r, RAMBlock *rb,
                        uint64_t first_page, unsigned npages, bool *out,
                        Error **errp)
{
    uint64_t entries[POPULATED_MAX_PAGES];

    g_assert(npages <= POPULATED_MAX_PAGES);
    g_assert(first_page + npages <= ramblock_pages(rb));

    uintptr_t vaddr = (uintptr_t)rb->host + (first_page << TARGET_PAGE_BITS);
    off_t off = (off_t)(vaddr / TARGET_PAGE_SIZE) * sizeof(uint64_t);
    size_t want = npages * sizeof(uint64_t);
    ssize_t got = fault_inject(FAULT_PAGEMAP_READ) ? -1 :
                  pread(r->pagemap_fd, entries, want, off);
    if (got != (ssize_t)want) {
        error_setg_errno(errp, got < 0 ? errno : EIO,
                         "reading /proc/self/pagemap failed");
        return false;
    }
    for (unsigned i = 0; i < npages; i++) {
        out[i] = (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) != 0;
    }
    if (rb->fd >= 0) {
        return file_data_pages(rb, first_page, npages, out, errp);
    }
    return true;
}

bool ram_populated_scan_supported(RamPopulatedReader *r)
{
    if (test_switch_no_pagemap_scan()) {
        return false;
    }
    /* An empty range: the kernel checks the arguments and walks nothing. */
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .start = 0,
        .end = 0,
        .category_anyof_mask = PAGE_IS_PRESENT,
        .return_mask = PAGE_IS_PRESENT,
    };
    return ioctl(r->pagemap_fd, PAGEMAP_SCAN, &arg) >= 0;
}

#define SCAN_VEC_LEN 256

bool ram_populated_scan(RamPopulatedReader *r, RAMBlock *rb,
                        unsigned long *map, Error **errp)
{
    struct page_region vec[SCAN_VEC_LEN];
    uint64_t start = (uintptr_t)rb->host;
    uint64_t end = start + rb->used_length;

    bitmap_zero(map, ramblock_pages(rb));
    while (start < end) {
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .start = start,
            .end = end,
            .vec = (uintptr_t)vec,
            .vec_len = SCAN_VEC_LEN,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        };
        int n = fault_inject(FAULT_PAGEMAP_READ) ? -1 :
                ioctl(r->pagemap_fd, PAGEMAP_SCAN, &arg);
        if (n < 0) {
            error_setg_errno(errp, errno, "RAMBlock '%s': PAGEMAP_SCAN of "
                             "/proc/self/pagemap failed", rb->idstr);
            return false;
        }
        for (int i = 0; i < n; i++) {
            uint64_t first = (vec[i].start - (uintptr_t)rb->host) >>
                             TARGET_PAGE_BITS;
            uint64_t npages = (vec[i].end - vec[i].start) >>
                              TARGET_PAGE_BITS;
            bitmap_set(map, first, npages);
        }
        /* A full vector stops the walk early; go on from where it did. */
        if (arg.walk_end <= start) {
            error_setg(errp, "RAMBlock '%s': PAGEMAP_SCAN made no progress",
                       rb->idstr);
            return false;
        }
        start = arg.walk_end;
    }
    return true;
}
