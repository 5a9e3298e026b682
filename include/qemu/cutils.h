/*
 * Small utilities.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"

/*
 * True if @len bytes at @buf are all zero.  @buf and @len must be
 * multiples of 8; it runs over every page of RAM a save sends, so it is
 * written to vectorise and to leave at the first non-zero chunk.
 */
bool buffer_is_zero(const void *buf, size_t len);

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
