/*
 * Bitmap range and whole-map operations (see include/qemu/bitmap.h).
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"

/*
 * The bits of word @w that fall inside [start, end), for a word between
 * BIT_WORD(start) and BIT_WORD(end - 1).  Every range function walks its
 * words with this, so the edge cases live in one place.
 */
static inline unsigned long range_word_mask(long w, long start, long end)
{
    unsigned long mask = ~0UL;

    if (w == (long)BIT_WORD(start)) {
        mask &= BITMAP_FIRST_WORD_MASK(start);
    }
    if (w == (long)BIT_WORD(end - 1)) {
        mask &= BITMAP_LAST_WORD_MASK(end);
    }
    return mask;
}

/* Declares @w and walks the words that hold [start, start + nr). */
#define FOR_EACH_RANGE_WORD(w, start, nr)                           \
    for (long w = BIT_WORD(start);                                  \
         (nr) > 0 && w <= (long)BIT_WORD((start) + (nr) - 1); w++)

void bitmap_fill(unsigned long *dst, long nbits)
{
    bitmap_set(dst, 0, nbits);
}

bool bitmap_empty(const unsigned long *map, long nbits)
{
    return nbits <= 0 || find_first_bit(map, nbits) == (unsigned long)nbits;
}

bool bitmap_full(const unsigned long *map, long nbits)
{
    FOR_EACH_RANGE_WORD(w, 0, nbits) {
        unsigned long mask = range_word_mask(w, 0, nbits);
        if ((map[w] & mask) != mask) {
            return false;
        }
    }
    return true;
}

long bitmap_count_one(const unsigned long *map, long nbits)
{
    return bitmap_count_one_range(map, 0, nbits);
}

long bitmap_count_one_range(const unsigned long *map, long start, long nr)
{
    long count = 0;

    FOR_EACH_RANGE_WORD(w, start, nr) {
        count += __builtin_popcountl(map[w] & range_word_mask(w, start,
                                                               start + nr));
    }
    return count;
}

void bitmap_set(unsigned long *map, long start, long nr)
{
    FOR_EACH_RANGE_WORD(w, start, nr) {
        map[w] |= range_word_mask(w, start, start + nr);
    }
}

void bitmap_clear(unsigned long *map, long start, long nr)
{
    FOR_EACH_RANGE_WORD(w, start, nr) {
        map[w] &= ~range_word_mask(w, start, start + nr);
    }
}

/* Same ordering as the single-bit atomics; see qemu/bitops.h for why. */
void bitmap_set_atomic(unsigned long *map, long start, long nr)
{
    FOR_EACH_RANGE_WORD(w, start, nr) {
        __atomic_fetch_or(&map[w], range_word_mask(w, start, start + nr),
                          __ATOMIC_SEQ_CST);
    }
}

void bitmap_clear_atomic(unsigned long *map, long start, long nr)
{
    FOR_EACH_RANGE_WORD(w, start, nr) {
        __atomic_fetch_and(&map[w], ~range_word_mask(w, start, start + nr),
                           __ATOMIC_SEQ_CST);
    }
}

bool bitmap_test_and_clear_atomic(unsigned long *map, long start, long nr)
{
    unsigned long any = 0;

    FOR_EACH_RANGE_WORD(w, start, nr) {
        unsigned long mask = range_word_mask(w, start, start + nr);
        /*
         * A word with none of our bits set costs a plain load, not a
         * locked RMW that would bounce the cache line between the
         * threads; nothing is claimed from it, so no ordering is needed.
         */
        if (!(__atomic_load_n(&map[w], __ATOMIC_RELAXED) & mask)) {
            continue;
        }
        any |= __atomic_fetch_and(&map[w], ~mask, __ATOMIC_SEQ_CST) & mask;
    }
    return any != 0;
}

long bitmap_fetch_and_clear_atomic(unsigned long *map, long start, long nr,
                                   unsigned long *claimed)
{
    long count = 0;

    FOR_EACH_RANGE_WORD(w, start, nr) {
        unsigned long mask = range_word_mask(w, start, start + nr);
        if (!(__atomic_load_n(&map[w], __ATOMIC_RELAXED) & mask)) {
            continue;
        }
        unsigned long won = __atomic_fetch_and(&map[w], ~mask,
                                               __ATOMIC_SEQ_CST) & mask;
        count += __builtin_popcountl(won);
        while (won) {
            long bit = w * (long)BITS_PER_LONG + __builtin_ctzl(won);
            set_bit(bit - start, claimed);
            won &= won - 1;
        }
    }
    return count;
}
