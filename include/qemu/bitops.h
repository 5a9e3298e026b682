/*
 * Single-bit operations on arrays of unsigned long, and searching them.
 *
 * Bit @nr lives in word nr / BITS_PER_LONG at position nr % BITS_PER_LONG,
 * least significant first, so bit order matches a little-endian byte view.
 *
 * The plain forms are not atomic: use them on bitmaps only one thread
 * touches at that time.  The _atomic forms may race with each other and
 * with other _atomic calls on the same word from any thread.
 */
#ifndef QEMU_BITOPS_H
#define QEMU_BITOPS_H

#include <limits.h>
#include <stdbool.h>

#define BITS_PER_BYTE       CHAR_BIT
#define BITS_PER_LONG       (sizeof(unsigned long) * BITS_PER_BYTE)

#define BIT(nr)             (1UL << (nr))
#define BIT_ULL(nr)         (1ULL << (nr))
#define BIT_MASK(nr)        (1UL << ((nr) % BITS_PER_LONG))
#define BIT_WORD(nr)        ((nr) / BITS_PER_LONG)
#define BITS_TO_LONGS(nr)   (((nr) + BITS_PER_LONG - 1) / BITS_PER_LONG)

/* ---- non-atomic ---- */

static inline void set_bit(long nr, unsigned long *addr)
{
    addr[BIT_WORD(nr)] |= BIT_MASK(nr);
}

static inline void clear_bit(long nr, unsigned long *addr)
{
    addr[BIT_WORD(nr)] &= ~BIT_MASK(nr);
}

static inline void change_bit(long nr, unsigned long *addr)
{
    addr[BIT_WORD(nr)] ^= BIT_MASK(nr);
}

static inline bool test_bit(long nr, const unsigned long *addr)
{
    return (addr[BIT_WORD(nr)] & BIT_MASK(nr)) != 0;
}

/* Set bit @nr and return whether it was set before. */
static inline bool test_and_set_bit(long nr, unsigned long *addr)
{
    unsigned long *p = addr + BIT_WORD(nr);
    unsigned long old = *p;

    *p = old | BIT_MASK(nr);
    return (old & BIT_MASK(nr)) != 0;
}

/* Clear bit @nr and return whether it was set before. */
static inline bool test_and_clear_bit(long nr, unsigned long *addr)
{
    unsigned long *p = addr + BIT_WORD(nr);
    unsigned long old = *p;

    *p = old & ~BIT_MASK(nr);
    return (old & BIT_MASK(nr)) != 0;
}

/* ---- atomic ---- */

/*
 * Every atomic bit operation is one read-modify-write instruction on the
 * word (lock or / lock and on x86), never a load followed by a store: two
 * threads that race on neighbouring bits of one word must not lose each
 * other's update, and two threads that race on the same bit must see it
 * change exactly once.
 *
 * They are sequentially consistent, which makes each one a full barrier.
 * The background snapshot relies on this: the fault-handler thread and
 * the RAM save thread both claim a page with test_and_clear_bit_atomic(),
 * and only the winner then reads the page and removes its protection.
 * The single RMW makes the winner unique; acquire ordering keeps the
 * winner's reads of the page after its claim, release ordering keeps
 * whatever a thread did before clearing a bit (queueing the copy) visible
 * to a thread that sees the bit clear.  acq_rel would be enough; seq_cst
 * costs the same on x86 (a locked instruction either way) and leaves no
 * subtle case to reason about.
 */
static inline void set_bit_atomic(long nr, unsigned long *addr)
{
    __atomic_fetch_or(addr + BIT_WORD(nr), BIT_MASK(nr), __ATOMIC_SEQ_CST);
}

static inline void clear_bit_atomic(long nr, unsigned long *addr)
{
    __atomic_fetch_and(addr + BIT_WORD(nr), ~BIT_MASK(nr), __ATOMIC_SEQ_CST);
}

static inline bool test_bit_atomic(long nr, const unsigned long *addr)
{
    return (__atomic_load_n(addr + BIT_WORD(nr), __ATOMIC_ACQUIRE) &
            BIT_MASK(nr)) != 0;
}

/* Returns whether the bit was set before: true for exactly one caller of
 * a racing group once the bit is clear. */
static inline bool test_and_set_bit_atomic(long nr, unsigned long *addr)
{
    unsigned long old = __atomic_fetch_or(addr + BIT_WORD(nr), BIT_MASK(nr),
                                          __ATOMIC_SEQ_CST);
    return (old & BIT_MASK(nr)) != 0;
}

/*
 * Clear bit @nr; returns true iff this call cleared it.  Of any number of
 * threads racing on a set bit, exactly one gets true: that is how a page
 * is claimed for saving exactly once.
 */
static inline bool test_and_clear_bit_atomic(long nr, unsigned long *addr)
{
    unsigned long old = __atomic_fetch_and(addr + BIT_WORD(nr),
                                           ~BIT_MASK(nr), __ATOMIC_SEQ_CST);
    return (old & BIT_MASK(nr)) != 0;
}

/* ---- searching (util/bitops.c) ---- */

/*
 * The index of the first set (or clear) bit at or after @offset among the
 * first @size bits of @addr, or @size if there is none.  Bits past @size
 * in the last word are ignored, whatever they hold.  The two may run while
 * other threads change the bitmap with the _atomic forms: the answer is
 * then only a hint (a claim must still be made with an _atomic test).
 */
unsigned long find_next_bit(const unsigned long *addr, unsigned long size,
                            unsigned long offset);
unsigned long find_next_zero_bit(const unsigned long *addr,
                                 unsigned long size, unsigned long offset);

/* The index of the last set bit among the first @size, or @size if none. */
unsigned long find_last_bit(const unsigned long *addr, unsigned long size);

static inline unsigned long find_first_bit(const unsigned long *addr,
                                           unsigned long size)
{
    return find_next_bit(addr, size, 0);
}

static inline unsigned long find_first_zero_bit(const unsigned long *addr,
                                                unsigned long size)
{
    return find_next_zero_bit(addr, size, 0);
}

/* Iterate @bit over the set bits among the first @size of @addr. */
#define for_each_set_bit(bit, addr, size)                           \
    for ((bit) = find_first_bit((addr), (size));                    \
         (bit) < (size);                                            \
         (bit) = find_next_bit((addr), (size), (bit) + 1))

#endif
