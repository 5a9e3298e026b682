/*
 * Small utilities (include/qemu/cutils.h).
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"

bool buffer_is_zero(const void *buf, size_t len)
{
    const uint64_t *p = buf;
    size_t n = len / sizeof(uint64_t);

    g_assert(((uintptr_t)buf | len) % sizeof(uint64_t) == 0);
    /* Most non-zero pages differ within the first words: look there first. */
    if (n >= 4 && (p[0] | p[1] | p[2] | p[3])) {
        return false;
    }
    /* The inner loop has no branch, so the compiler vectorises it. */
    for (size_t i = 0; i + 32 <= n; i += 32) {
        uint64_t acc = 0;
        for (size_t j = 0; j < 32; j++) {
            acc |= p[i + j];
        }
        if (acc) {
            return false;
        }
    }
    for (size_t i = n - n % 32; i < n; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

const char *qapi_enum_lookup(const QEnumLookup *lookup, int val)
{
    g_assert(val >= 0 && val < lookup->size);
    return lookup->array[val];
}

int qapi_enum_parse(const QEnumLookup *lookup, const char *name,
                    const char *param, Error **errp)
{
    for (int i = 0; i < lookup->size; i++) {
        if (!g_strcmp0(lookup->array[i], name)) {
            return i;
        }
    }
    if (errp) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'", param,
                   name);
    }
    return -1;
}

/* The loop of qemu_pread_all() and qemu_pwrite_all(). */
static bool pio_all(int fd, uint8_t *p, size_t len, uint64_t offset,
                    bool write)
{
    while (len) {
        ssize_t n = write ? pwrite(fd, p, len, offset)
                          : pread(fd, p, len, offset);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (!n) {
                errno = EIO;
            }
            return false;
        }
        p += n;
        len -= n;
        offset += n;
    }
    return true;
}

bool qemu_pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
    return pio_all(fd, buf, len, offset, false);
}

bool qemu_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    /* pio_all() only reads through @p when writing. */
    return pio_all(fd, (uint8_t *)buf, len, offset, true);
}
