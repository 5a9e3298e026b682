/*
 * Bitmaps: arrays of unsigned long holding @nbits bits (see qemu/bitops.h
 * for the bit layout and single-bit operations).
 *
 * Whole-bitmap functions look only at the first @nbits bits; bits past
 * @nbits in the last word are left alone by the writers (except
 * bitmap_copy(), which copies whole words) and ignored by the readers.
 *
 * Range functions take a first bit @start and a count @nr; nr == 0 is a
 * no-op.  The _atomic range functions are atomic per word, not over the
 * whole range: a concurrent reader may see part of a range changed.
 */
#ifndef QEMU_BITMAP_H
#define QEMU_BITMAP_H

#include <glib.h>
#include <string.h>
#include "qemu/bitops.h"

/* Mask of the bits of the last word that belong to an @nbits bitmap. */
#define BITMAP_LAST_WORD_MASK(nbits) \
    (~0UL >> (-(nbits) & (BITS_PER_LONG - 1)))
/* Mask of the bits of the word holding @start, from @start upwards. */
#define BITMAP_FIRST_WORD_MASK(start) \
    (~0UL << ((start) & (BITS_PER_LONG - 1)))

/* A zeroed bitmap of @nbits bits; free with g_free(). */
static inline unsigned long *bitmap_new(long nbits)
{
    return g_new0(unsigned long, BITS_TO_LONGS(nbits));
}

static inline void bitmap_zero(unsigned long *dst, long nbits)
{
    memset(dst, 0, BITS_TO_LONGS(nbits) * sizeof(unsigned long));
}

static inline void bitmap_copy(unsigned long *dst, const unsigned long *src,
                               long nbits)
{
    memcpy(dst, src, BITS_TO_LONGS(nbits) * sizeof(unsigned long));
}

/* Set the first @nbits bits; the rest of the last word is untouched. */
void bitmap_fill(unsigned long *dst, long nbits);
bool bitmap_empty(const unsigned long *map, long nbits);
bool bitmap_full(const unsigned long *map, long nbits);
/* Number of set bits among the first @nbits. */
long bitmap_count_one(const unsigned long *map, long nbits);
/* Number of set bits in [start, start + nr). */
long bitmap_count_one_range(const unsigned long *map, long start, long nr);

/* Set or clear the bits [start, start + nr). */
void bitmap_set(unsigned long *map, long start, long nr);
void bitmap_clear(unsigned long *map, long start, long nr);
void bitmap_set_atomic(unsigned long *map, long start, long nr);
void bitmap_clear_atomic(unsigned long *map, long start, long nr);

/*
 * Clear the bits [start, start + nr) atomically, one word at a time, and
 * return whether any of them was set.  The RAM save thread uses it to
 * claim a whole aligned range (a 2 MiB huge page) at once.
 */
bool bitmap_test_and_clear_atomic(unsigned long *map, long start, long nr);

/*
 * Like bitmap_test_and_clear_atomic(), and also say which bits this call
 * cleared: bit (start + i) cleared here sets bit i of @claimed (which must
 * hold @nr bits and is only ever set, never cleared, so zero it first).
 * Returns how many bits this call cleared.  A bit that another thread
 * cleared first is not in @claimed: with racing claimers, each set bit
 * ends up in exactly one claimer's result.
 */
long bitmap_fetch_and_clear_atomic(unsigned long *map, long start, long nr,
                                   unsigned long *claimed);

#endif
