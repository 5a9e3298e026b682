/*
 * Small utilities.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"
#include "qapi/error.h"

/*
 * True if @len bytes at @buf are all zero.  @buf and @len must be
 * multiples of 8; it runs over every page of RAM a save sends, so it is
 * written to vectorise and to leave at the first non-zero chunk.
 */
bool buffer_is_zero(const void *buf, size_t len);

/*
 * The names of a C enum's values, indexed by value, with the enum's name
 * in the qapi/ schema (the build checks that the two agree:
 * qapi-schema-check).  One table per enum, and these two lookups for all
 * of them.
 */
typedef struct QEnumLookup {
    const char *name;
    const char *const *array;
    int size;
} QEnumLookup;

/* The name of @val, which must be a value of the enum. */
const char *qapi_enum_lookup(const QEnumLookup *lookup, int val);
/*
 * The value named @name; -1 with QEMU's error for a parameter that does
 * not take it ("Parameter '@param' does not accept value '@name'"), or
 * quietly with a NULL @errp.
 */
int qapi_enum_parse(const QEnumLookup *lookup, const char *name,
                    const char *param, Error **errp);

/*
 * pread()/pwrite() until all @len bytes at @offset are done, retrying
 * EINTR and short transfers.  False with errno set (EIO for an end of
 * file before @len bytes) on failure.
 */
bool qemu_pread_all(int fd, void *buf, size_t len, uint64_t offset);
bool qemu_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
