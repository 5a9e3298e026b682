/*
 * A RAMBlock is one contiguous piece of guest RAM: a host mapping we own,
 * placed at a guest physical address.  A machine has one per memory
 * backend (one "pc.ram" without -numa, one per -numa node otherwise); the
 * blocks tile guest physical memory from address 0 with no holes.
 */
#ifndef EXEC_RAMBLOCK_H
#define EXEC_RAMBLOCK_H

#include "qemu/osdep.h"

typedef enum RAMBackendKind {
    RAM_BACKEND_ANON,   /* memory-backend-ram, and the default pc.ram */
    RAM_BACKEND_MEMFD,  /* memory-backend-memfd */
    RAM_BACKEND_FILE,   /* memory-backend-file (tmpfs, hugetlbfs, disk) */
} RAMBackendKind;

typedef struct RAMBlock {
    char idstr[256];        /* "pc.ram" or the memdev id; names it in streams */
    RAMBackendKind backend;
    uint8_t *host;          /* host mapping, aligned to 2 MiB */
    uint64_t offset;        /* guest physical address of the first byte */
    uint64_t used_length;   /* bytes, a multiple of TARGET_PAGE_SIZE */
    size_t page_size;       /* host page size backing it: 4 KiB, or 2 MiB
                             * on hugetlbfs */
    bool shared;            /* MAP_SHARED: memfd, or share=on */
    int fd;                 /* memfd or file backing it, -1 for anonymous */
    char *mem_path;         /* memory-backend-file's mem-path, else NULL */

    /*
     * Owned by migration while a save runs: one bit per target page,
     * set = still to be sent.  NULL otherwise.
     */
    unsigned long *bmap;
    /*
     * Owned by migration while a save runs, like bmap: the raw CRC32C of
     * each page as saved (0: zero page), for the checksums section
     * (include/migration/checksums.h).  NULL when checksums are off.
     */
    uint32_t *page_crc;

    /*
     * Set while a lazy restore of a mapped-ram file is filling the block
     * on first touch (migration/mapped-ram-load.c), until
     * mapped_ram_lazy_finish() has waited for it to be whole.
     */
    void *mapped_ram_lazy;
} RAMBlock;

static inline uint64_t ramblock_pages(const RAMBlock *rb)
{
    return rb->used_length >> TARGET_PAGE_BITS;
}

static inline bool ramblock_contains_gpa(const RAMBlock *rb, uint64_t gpa)
{
    return gpa >= rb->offset && gpa - rb->offset < rb->used_length;
}

#endif
