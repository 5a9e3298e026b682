/*
 * Bit operations and bitmaps: ranges across word boundaries, searching,
 * counting, and the atomic claim that the background snapshot relies on
 * (every set bit claimed by exactly one of several racing threads).
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"

#define BPL ((long)BITS_PER_LONG)

/* The reference model: one bool per bit, checked against the bitmap. */
static void assert_bitmap_matches(const unsigned long *map, const bool *model,
                                  long nbits)
{
    for (long i = 0; i < nbits; i++) {
        if (test_bit(i, map) != model[i]) {
            g_error("bit %ld is %d, expected %d", i, test_bit(i, map),
                    model[i]);
        }
    }
}

static void test_single_bits(void)
{
    g_autofree unsigned long *map = bitmap_new(3 * BPL);

    g_assert_cmpuint(BITS_TO_LONGS(0), ==, 0);
    g_assert_cmpuint(BITS_TO_LONGS(1), ==, 1);
    g_assert_cmpuint(BITS_TO_LONGS(BPL), ==, 1);
    g_assert_cmpuint(BITS_TO_LONGS(BPL + 1), ==, 2);
    g_assert_cmpuint(BIT_WORD(BPL - 1), ==, 0);
    g_assert_cmpuint(BIT_WORD(BPL), ==, 1);
    g_assert_cmpuint(BIT_MASK(BPL + 3), ==, 8);

    set_bit(BPL - 1, map);
    set_bit(BPL, map);
    g_assert_cmphex(map[0], ==, 1UL << (BPL - 1));
    g_assert_cmphex(map[1], ==, 1);
    g_assert_true(test_bit(BPL - 1, map));
    g_assert_false(test_bit(BPL - 2, map));

    g_assert_true(test_and_clear_bit(BPL, map));
    g_assert_false(test_and_clear_bit(BPL, map));
    g_assert_false(test_and_set_bit(2 * BPL + 5, map));
    g_assert_true(test_and_set_bit(2 * BPL + 5, map));
    clear_bit(BPL - 1, map);
    g_assert_cmphex(map[0], ==, 0);
    change_bit(7, map);
    g_assert_cmphex(map[0], ==, 0x80);

    g_assert_false(test_and_set_bit_atomic(3, map));
    g_assert_true(test_and_set_bit_atomic(3, map));
    g_assert_true(test_and_clear_bit_atomic(3, map));
    g_assert_false(test_and_clear_bit_atomic(3, map));
    set_bit_atomic(2 * BPL, map);
    g_assert_true(test_bit_atomic(2 * BPL, map));
    clear_bit_atomic(2 * BPL, map);
    g_assert_false(test_bit(2 * BPL, map));
    g_assert_cmphex(map[2], ==, 1UL << 5);
}

/*
 * Every (start, nr) pair on a 4-word bitmap, so that ranges begin and end
 * at, just before and just after each word boundary, for each range
 * function, against a model.  The bitmap starts half full so that a
 * function touching bits outside its range shows.
 */
typedef void RangeFunc(unsigned long *map, long start, long nr);

static void check_range_func(RangeFunc *fn, bool value)
{
    const long nbits = 4 * BPL;
    g_autofree unsigned long *map = bitmap_new(nbits);
    g_autofree bool *model = g_new(bool, nbits);

    for (long start = 0; start <= nbits; start++) {
        for (long nr = 0; start + nr <= nbits; nr++) {
            for (long i = 0; i < nbits; i++) {
                /* A pattern with runs of both values around boundaries. */
                model[i] = (i * 7 / 5) % 3 == 0;
                if (model[i]) {
                    set_bit(i, map);
                } else {
                    clear_bit(i, map);
                }
            }
            fn(map, start, nr);
            for (long i = start; i < start + nr; i++) {
                model[i] = value;
            }
            assert_bitmap_matches(map, model, nbits);
        }
    }
}

static void test_range_set(void)
{
    check_range_func(bitmap_set, true);
}

static void test_range_clear(void)
{
    check_range_func(bitmap_clear, false);
}

static void test_range_set_atomic(void)
{
    check_range_func(bitmap_set_atomic, true);
}

static void test_range_clear_atomic(void)
{
    check_range_func(bitmap_clear_atomic, false);
}

static void test_range_test_and_clear(void)
{
    const long nbits = 3 * BPL;
    g_autofree unsigned long *map = bitmap_new(nbits);

    g_assert_false(bitmap_test_and_clear_atomic(map, 0, nbits));

    set_bit(BPL, map);
    /* Ranges that end just before and start just after the bit. */
    g_assert_false(bitmap_test_and_clear_atomic(map, 0, BPL));
    g_assert_false(bitmap_test_and_clear_atomic(map, BPL + 1, BPL));
    g_assert_true(test_bit(BPL, map));
    g_assert_true(bitmap_test_and_clear_atomic(map, BPL - 3, 4));
    g_assert_true(bitmap_empty(map, nbits));
    g_assert_false(bitmap_test_and_clear_atomic(map, BPL - 3, 4));

    bitmap_set(map, 10, 2 * BPL);
    g_assert_true(bitmap_test_and_clear_atomic(map, 5, 2 * BPL));
    /* Only the bits past the range are left. */
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, 5);
    g_assert_cmpuint(find_first_bit(map, nbits), ==, 2 * BPL + 5);
    g_assert_true(bitmap_test_and_clear_atomic(map, 0, nbits));
    g_assert_true(bitmap_empty(map, nbits));
}

static void test_range_fetch_and_clear(void)
{
    const long nbits = 4 * BPL;
    g_autofree unsigned long *map = bitmap_new(nbits);
    g_autofree unsigned long *claimed = bitmap_new(nbits);

    bitmap_set(map, 3, 2 * BPL);
    clear_bit(BPL, map);
    /* An unaligned range that covers part of the set bits. */
    long start = BPL - 2, nr = 2 * BPL;
    long got = bitmap_fetch_and_clear_atomic(map, start, nr, claimed);
    /* Set were [3, 2*BPL+3) minus BPL; the range holds [BPL-2, 2*BPL+3). */
    g_assert_cmpint(got, ==, BPL + 5 - 1);
    for (long i = 0; i < nr; i++) {
        bool was_set = start + i >= 3 && start + i < 2 * BPL + 3 &&
                       start + i != BPL;
        g_assert_cmpint(test_bit(i, claimed), ==, was_set);
    }
    g_assert_cmpint(bitmap_count_one(claimed, nbits), ==, got);
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, BPL - 5);
    g_assert_cmpuint(find_last_bit(map, nbits), ==, BPL - 3);

    bitmap_zero(claimed, nbits);
    g_assert_cmpint(bitmap_fetch_and_clear_atomic(map, start, nr, claimed),
                    ==, 0);
    g_assert_true(bitmap_empty(claimed, nbits));
}

static void test_find(void)
{
    const long nbits = 3 * BPL + 10;
    g_autofree unsigned long *map = bitmap_new(nbits + BPL);

    g_assert_cmpuint(find_first_bit(map, nbits), ==, nbits);
    g_assert_cmpuint(find_first_zero_bit(map, nbits), ==, 0);
    g_assert_cmpuint(find_last_bit(map, nbits), ==, nbits);
    g_assert_cmpuint(find_next_bit(map, 0, 0), ==, 0);
    g_assert_cmpuint(find_last_bit(map, 0), ==, 0);

    /* Bits past the size, in the last word and beyond, are never found. */
    set_bit(nbits, map);
    set_bit(nbits + 3, map);
    g_assert_cmpuint(find_first_bit(map, nbits), ==, nbits);
    g_assert_cmpuint(find_last_bit(map, nbits), ==, nbits);
    bitmap_fill(map, nbits);
    g_assert_true(test_bit(nbits, map));
    g_assert_cmpuint(find_first_zero_bit(map, nbits), ==, nbits);
    clear_bit(nbits, map);
    clear_bit(nbits + 3, map);
    g_assert_cmpuint(find_next_zero_bit(map, nbits + 1, 0), ==, nbits);
    bitmap_zero(map, nbits + BPL);

    set_bit(0, map);
    set_bit(BPL - 1, map);
    set_bit(BPL, map);
    set_bit(3 * BPL + 9, map);
    g_assert_cmpuint(find_first_bit(map, nbits), ==, 0);
    g_assert_cmpuint(find_next_bit(map, nbits, 1), ==, BPL - 1);
    g_assert_cmpuint(find_next_bit(map, nbits, BPL - 1), ==, BPL - 1);
    g_assert_cmpuint(find_next_bit(map, nbits, BPL + 1), ==, 3 * BPL + 9);
    g_assert_cmpuint(find_next_bit(map, nbits, 3 * BPL + 10), ==, nbits);
    g_assert_cmpuint(find_next_bit(map, nbits, nbits + 100), ==, nbits);
    g_assert_cmpuint(find_next_bit(map, 3 * BPL + 9, BPL + 1), ==,
                     3 * BPL + 9);
    g_assert_cmpuint(find_last_bit(map, nbits), ==, 3 * BPL + 9);
    g_assert_cmpuint(find_last_bit(map, 3 * BPL + 9), ==, BPL);
    g_assert_cmpuint(find_last_bit(map, BPL), ==, BPL - 1);

    g_assert_cmpuint(find_next_zero_bit(map, nbits, 0), ==, 1);
    g_assert_cmpuint(find_next_zero_bit(map, nbits, BPL - 1), ==, BPL + 1);
    bitmap_fill(map, nbits);
    clear_bit(2 * BPL, map);
    g_assert_cmpuint(find_next_zero_bit(map, nbits, 5), ==, 2 * BPL);
    g_assert_cmpuint(find_next_zero_bit(map, nbits, 2 * BPL + 1), ==, nbits);

    /* for_each_set_bit visits exactly the set bits, in order. */
    bitmap_zero(map, nbits);
    long expect[] = { 1, BPL - 1, BPL, 2 * BPL + 17, nbits - 1 };
    for (unsigned i = 0; i < ARRAY_SIZE(expect); i++) {
        set_bit(expect[i], map);
    }
    unsigned long bit;
    unsigned n = 0;
    for_each_set_bit(bit, map, nbits) {
        g_assert_cmpuint(n, <, ARRAY_SIZE(expect));
        g_assert_cmpuint(bit, ==, expect[n]);
        n++;
    }
    g_assert_cmpuint(n, ==, ARRAY_SIZE(expect));
}

static void test_whole_map(void)
{
    const long nbits = 2 * BPL + 1;
    g_autofree unsigned long *map = bitmap_new(nbits);
    g_autofree unsigned long *copy = bitmap_new(nbits);

    g_assert_true(bitmap_empty(map, nbits));
    g_assert_false(bitmap_full(map, nbits));
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, 0);
    g_assert_true(bitmap_empty(map, 0));
    g_assert_true(bitmap_full(map, 0));

    bitmap_fill(map, nbits);
    g_assert_true(bitmap_full(map, nbits));
    g_assert_false(bitmap_empty(map, nbits));
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, nbits);
    /* Nothing past nbits was set in the last word. */
    g_assert_cmphex(map[2], ==, 1);

    clear_bit(nbits - 1, map);
    g_assert_false(bitmap_full(map, nbits));
    g_assert_true(bitmap_full(map, nbits - 1));
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, nbits - 1);
    /* Garbage past nbits changes neither count, emptiness nor fullness. */
    map[2] |= ~1UL;
    g_assert_cmpint(bitmap_count_one(map, nbits), ==, nbits - 1);
    g_assert_false(bitmap_full(map, nbits));

    bitmap_copy(copy, map, nbits);
    g_assert_cmpmem(copy, sizeof(unsigned long) * BITS_TO_LONGS(nbits),
                    map, sizeof(unsigned long) * BITS_TO_LONGS(nbits));

    bitmap_zero(map, nbits);
    g_assert_true(bitmap_empty(map, nbits));
    set_bit(BPL, map);
    g_assert_false(bitmap_empty(map, nbits));
    g_assert_cmpint(bitmap_count_one_range(map, BPL, 1), ==, 1);
    g_assert_cmpint(bitmap_count_one_range(map, 0, BPL), ==, 0);
    g_assert_cmpint(bitmap_count_one_range(copy, 3, 2 * BPL - 3), ==,
                    2 * BPL - 3);
    g_assert_cmpint(bitmap_count_one_range(copy, 3, 0), ==, 0);
}

static void test_atomic_wrappers(void)
{
    int counter = 5;
    unsigned long word = 0;

    g_assert_cmpint(qatomic_read(&counter), ==, 5);
    qatomic_set(&counter, 7);
    qatomic_inc(&counter);
    g_assert_cmpint(counter, ==, 8);
    qatomic_dec(&counter);
    qatomic_add(&counter, 10);
    g_assert_cmpint(qatomic_fetch_add(&counter, 3), ==, 17);
    g_assert_cmpint(qatomic_inc_fetch(&counter), ==, 21);
    g_assert_cmpint(qatomic_xchg(&counter, 1), ==, 21);
    g_assert_cmpint(qatomic_cmpxchg(&counter, 2, 9), ==, 1);
    g_assert_cmpint(counter, ==, 1);
    g_assert_cmpint(qatomic_cmpxchg(&counter, 1, 9), ==, 1);
    g_assert_cmpint(counter, ==, 9);
    qatomic_or(&word, 0x30);
    qatomic_and(&word, 0x10);
    g_assert_cmphex(qatomic_load_acquire(&word), ==, 0x10);
    qatomic_store_release(&word, 3);
    smp_mb();
    g_assert_cmphex(word, ==, 3);
}

/* ---- racing claims ---- */

#define RACE_BITS   (1000 * 1000 + 37)      /* not a multiple of a word */
#define RACE_RANGE  512                     /* 2 MiB of 4 KiB pages */

typedef struct RaceState {
    unsigned long *map;
    /* Who claimed each bit: 0 = nobody, else thread index + 1. */
    uint8_t *claimer;
    long double_claims;
    int start;              /* set to 1 to let every thread go at once */
    int ready;
} RaceState;

typedef struct RaceThread {
    RaceState *rs;
    int index;
    bool ranges;            /* claim whole RACE_RANGE ranges */
    long claimed;
} RaceThread;

static void race_record(RaceThread *t, long bit)
{
    uint8_t prev = qatomic_cmpxchg(&t->rs->claimer[bit], 0,
                                   (uint8_t)(t->index + 1));
    if (prev != 0) {
        qatomic_inc(&t->rs->double_claims);
    }
    t->claimed++;
}

static void race_wait_start(RaceState *rs)
{
    qatomic_inc(&rs->ready);
    while (!qatomic_load_acquire(&rs->start)) {
        /* spin: a condition variable would stagger the start */
    }
}

static gpointer race_single_bits(gpointer opaque)
{
    RaceThread *t = opaque;

    race_wait_start(t->rs);
    /*
     * Half the threads walk up and half walk down, so that they meet in
     * every word, both in step and crossing over.
     */
    for (long i = 0; i < RACE_BITS; i++) {
        long bit = t->index % 2 ? RACE_BITS - 1 - i : i;
        if (test_and_clear_bit_atomic(bit, t->rs->map)) {
            race_record(t, bit);
        }
    }
    return NULL;
}

static gpointer race_ranges(gpointer opaque)
{
    RaceThread *t = opaque;
    g_autofree unsigned long *won = bitmap_new(RACE_RANGE);

    race_wait_start(t->rs);
    /* Unaligned ranges (offset by the thread index) cross word edges. */
    for (long start = -t->index * 3; start < RACE_BITS; start += RACE_RANGE) {
        long first = MAX(start, 0);
        long nr = MIN(start + RACE_RANGE, RACE_BITS) - first;
        bitmap_zero(won, RACE_RANGE);
        long got = bitmap_fetch_and_clear_atomic(t->rs->map, first, nr, won);
        g_assert_cmpint(got, ==, bitmap_count_one(won, nr));
        unsigned long bit;
        for_each_set_bit(bit, won, nr) {
            race_record(t, first + bit);
        }
    }
    return NULL;
}

static void run_race(int nthreads, int nranges)
{
    RaceState rs = {
        .map = bitmap_new(RACE_BITS),
        .claimer = g_new0(uint8_t, RACE_BITS),
    };
    g_autofree RaceThread *threads = g_new0(RaceThread, nthreads);
    g_autofree GThread **handles = g_new0(GThread *, nthreads);

    bitmap_fill(rs.map, RACE_BITS);
    for (int i = 0; i < nthreads; i++) {
        threads[i] = (RaceThread) {
            .rs = &rs, .index = i, .ranges = i < nranges,
        };
        handles[i] = g_thread_new("race",
                                  threads[i].ranges ? race_ranges
                                                    : race_single_bits,
                                  &threads[i]);
    }
    while (qatomic_read(&rs.ready) < nthreads) {
        g_thread_yield();
    }
    qatomic_store_release(&rs.start, 1);

    long total = 0;
    for (int i = 0; i < nthreads; i++) {
        g_thread_join(handles[i]);
        total += threads[i].claimed;
        if (g_test_verbose()) {
            g_test_message("thread %d (%s) claimed %ld", i,
                           threads[i].ranges ? "ranges" : "bits",
                           threads[i].claimed);
        }
    }

    g_assert_cmpint(rs.double_claims, ==, 0);
    g_assert_cmpint(total, ==, RACE_BITS);
    g_assert_true(bitmap_empty(rs.map, RACE_BITS));
    for (long i = 0; i < RACE_BITS; i++) {
        if (rs.claimer[i] == 0) {
            g_error("bit %ld was cleared but nobody claimed it", i);
        }
    }
    g_free(rs.map);
    g_free(rs.claimer);
}

static int race_thread_count(void)
{
    /* At least 4 even on 2 cores: preemption mid-walk is a race too. */
    return MAX(4, MIN((int)g_get_num_processors(), 8));
}

/* A lost race shows only sometimes; a few rounds make it show. */
#define RACE_ROUNDS 4

static void test_race_single_bits(void)
{
    for (int round = 0; round < RACE_ROUNDS; round++) {
        run_race(race_thread_count(), 0);
    }
}

static void test_race_ranges_and_bits(void)
{
    int n = race_thread_count();

    for (int round = 0; round < RACE_ROUNDS; round++) {
        run_race(n, n / 2);
    }
}

/*
 * Concurrent atomic set and clear of different bits of the same words:
 * a non-atomic read-modify-write would lose updates here.
 */
typedef struct NeighbourThread {
    unsigned long *map;
    long parity;
} NeighbourThread;

#define NEIGHBOUR_BITS (64 * 1024)

static gpointer neighbour_set(gpointer opaque)
{
    NeighbourThread *t = opaque;

    for (int round = 0; round < 8; round++) {
        for (long i = t->parity; i < NEIGHBOUR_BITS; i += 2) {
            set_bit_atomic(i, t->map);
        }
        for (long i = t->parity; i < NEIGHBOUR_BITS; i += 2) {
            clear_bit_atomic(i, t->map);
        }
    }
    for (long i = t->parity; i < NEIGHBOUR_BITS; i += 4) {
        set_bit_atomic(i, t->map);
    }
    return NULL;
}

static void test_race_neighbours(void)
{
    g_autofree unsigned long *map = bitmap_new(NEIGHBOUR_BITS);
    NeighbourThread even = { map, 0 }, odd = { map, 1 };
    GThread *a = g_thread_new("even", neighbour_set, &even);
    GThread *b = g_thread_new("odd", neighbour_set, &odd);

    g_thread_join(a);
    g_thread_join(b);
    for (long i = 0; i < NEIGHBOUR_BITS; i++) {
        g_assert_cmpint(test_bit(i, map), ==, i % 4 < 2);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/bitops/single-bits", test_single_bits);
    g_test_add_func("/bitops/find/edges", test_find);
    g_test_add_func("/bitmap/range/set", test_range_set);
    g_test_add_func("/bitmap/range/clear", test_range_clear);
    g_test_add_func("/bitmap/range/set-atomic", test_range_set_atomic);
    g_test_add_func("/bitmap/range/clear-atomic", test_range_clear_atomic);
    g_test_add_func("/bitmap/range/test-and-clear-atomic",
                    test_range_test_and_clear);
    g_test_add_func("/bitmap/range/fetch-and-clear-atomic",
                    test_range_fetch_and_clear);
    g_test_add_func("/bitmap/whole-map", test_whole_map);
    g_test_add_func("/atomic/wrappers", test_atomic_wrappers);
    g_test_add_func("/bitmap/race/each-bit-claimed-once",
                    test_race_single_bits);
    g_test_add_func("/bitmap/race/ranges-and-bits-claimed-once",
                    test_race_ranges_and_bits);
    g_test_add_func("/bitmap/race/neighbour-bits-not-lost",
                    test_race_neighbours);
    return g_test_run();
}
