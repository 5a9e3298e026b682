/*
 * PAGEMAP_SCAN (Linux 6.7): one ioctl on /proc/self/pagemap that reports
 * ranges of pages by category.  Debian 12's UAPI headers are 6.1, so the
 * kernel's definitions are restated here.
 */
#ifndef QEMU_PAGEMAP_SCAN_H
#define QEMU_PAGEMAP_SCAN_H

#include <linux/types.h>
#include <sys/ioctl.h>

#ifndef PAGEMAP_SCAN
struct page_region {
    __u64 start;
    __u64 end;
    __u64 categories;
};

struct pm_scan_arg {
    __u64 size;
    __u64 flags;
    __u64 start;
    __u64 end;
    __u64 walk_end;
    __u64 vec;
    __u64 vec_len;
    __u64 max_pages;
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#define PM_SCAN_WP_MATCHING     (1 << 0)
#define PM_SCAN_CHECK_WPASYNC   (1 << 1)

#define PAGE_IS_WPALLOWED       (1 << 0)
#define PAGE_IS_WRITTEN         (1 << 1)
#define PAGE_IS_FILE            (1 << 2)
#define PAGE_IS_PRESENT         (1 << 3)
#define PAGE_IS_SWAPPED         (1 << 4)
#define PAGE_IS_PFNZERO         (1 << 5)
#define PAGE_IS_HUGE            (1 << 6)
#define PAGE_IS_SOFT_DIRTY      (1 << 7)
#endif

#endif
