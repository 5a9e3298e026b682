/*
 * Searching bit arrays (see include/qemu/bitops.h).
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitops.h"
#include "qemu/bitmap.h"

/*
 * First bit at or after @offset, among the first @size, that differs
 * from the background: @invert == 0 looks for a set bit, ~0UL for a clear
 * one (the words are flipped as they are read, so one loop serves both).
 * Each word is read once, with a relaxed atomic load: another thread may
 * be changing the bitmap with the _atomic bit operations (bitops.h).
 */
static unsigned long find_next_differing(const unsigned long *addr,
                                         unsigned long size,
                                         unsigned long offset,
                                         unsigned long invert)
{
    if (offset >= size) {
        return size;
    }

    unsigned long idx = BIT_WORD(offset);
    unsigned long last = BIT_WORD(size - 1);
    unsigned long word = (qatomic_read(&addr[idx]) ^ invert) &
                         BITMAP_FIRST_WORD_MASK(offset);

    for (;;) {
        if (idx == last) {
            /* Whatever lies past @size must not be found. */
            word &= BITMAP_LAST_WORD_MASK(size);
        }
        if (word) {
            return idx * BITS_PER_LONG + __builtin_ctzl(word);
        }
        if (idx == last) {
            return size;
        }
        word = qatomic_read(&addr[++idx]) ^ invert;
    }
}

unsigned long find_next_bit(const unsigned long *addr, unsigned long size,
                            unsigned long offset)
{
    return find_next_differing(addr, size, offset, 0);
}

unsigned long find_next_zero_bit(const unsigned long *addr,
                                 unsigned long size, unsigned long offset)
{
    return find_next_differing(addr, size, offset, ~0UL);
}

unsigned long find_last_bit(const unsigned long *addr, unsigned long size)
{
    if (size == 0) {
        return 0;
    }

    unsigned long idx = BIT_WORD(size - 1);
    unsigned long word = addr[idx] & BITMAP_LAST_WORD_MASK(size);

    for (;;) {
        if (word) {
            return idx * BITS_PER_LONG + (BITS_PER_LONG - 1) -
                   __builtin_clzl(word);
        }
        if (idx == 0) {
            return size;
        }
        word = addr[--idx];
    }
}
