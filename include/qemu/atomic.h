/*
 * Atomic operations on plain C objects, QEMU-style names over the GCC
 * __atomic builtins.
 *
 * Ordering: qatomic_read()/qatomic_set() are relaxed (they only promise
 * that the access is not torn and not optimised away); every
 * read-modify-write (inc, dec, add, fetch_*, xchg, cmpxchg) is sequentially
 * consistent, so it is also a full barrier.  Use the _acquire/_release
 * forms, or smp_mb() and friends, where a relaxed access must be ordered
 * against others.
 */
#ifndef QEMU_ATOMIC_H
#define QEMU_ATOMIC_H

/* Relaxed loads and stores: no tearing, no compiler caching. */
#define qatomic_read(ptr)       __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, val)   __atomic_store_n(ptr, val, __ATOMIC_RELAXED)

/* A load that later accesses cannot move above, a store earlier ones
 * cannot move below: the publish/consume pair. */
#define qatomic_load_acquire(ptr)     __atomic_load_n(ptr, __ATOMIC_ACQUIRE)
#define qatomic_store_release(ptr, v) __atomic_store_n(ptr, v, __ATOMIC_RELEASE)

/* Return the old value. */
#define qatomic_fetch_add(ptr, n) __atomic_fetch_add(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_sub(ptr, n) __atomic_fetch_sub(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_and(ptr, n) __atomic_fetch_and(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_or(ptr, n)  __atomic_fetch_or(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_fetch_inc(ptr)    qatomic_fetch_add(ptr, 1)
#define qatomic_fetch_dec(ptr)    qatomic_fetch_sub(ptr, 1)

/* Return the new value. */
#define qatomic_add_fetch(ptr, n) __atomic_add_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_sub_fetch(ptr, n) __atomic_sub_fetch(ptr, n, __ATOMIC_SEQ_CST)
#define qatomic_inc_fetch(ptr)    qatomic_add_fetch(ptr, 1)
#define qatomic_dec_fetch(ptr)    qatomic_sub_fetch(ptr, 1)

/* Result ignored. */
#define qatomic_add(ptr, n) ((void)qatomic_fetch_add(ptr, n))
#define qatomic_sub(ptr, n) ((void)qatomic_fetch_sub(ptr, n))
#define qatomic_inc(ptr)    ((void)qatomic_fetch_add(ptr, 1))
#define qatomic_dec(ptr)    ((void)qatomic_fetch_sub(ptr, 1))
#define qatomic_and(ptr, n) ((void)qatomic_fetch_and(ptr, n))
#define qatomic_or(ptr, n)  ((void)qatomic_fetch_or(ptr, n))

#define qatomic_xchg(ptr, val) __atomic_exchange_n(ptr, val, __ATOMIC_SEQ_CST)

/*
 * If *ptr == old, store new.  Returns the value *ptr held before, so the
 * swap happened iff the result equals @old (QEMU's convention).
 */
#define qatomic_cmpxchg(ptr, old, new) ({                                   \
    __typeof__(*(ptr)) _old = (old);                                        \
    (void)__atomic_compare_exchange_n(ptr, &_old, new, false,               \
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);  \
    _old;                                                                   \
})

/* Compiler-only barrier: stops reordering by the compiler, not the CPU. */
#define barrier()   __atomic_signal_fence(__ATOMIC_SEQ_CST)

/* CPU barriers between relaxed accesses. */
#define smp_mb()    __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_mb_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_mb_release() __atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_rmb()   smp_mb_acquire()
#define smp_wmb()   smp_mb_release()

#endif
