/*
 * ThreadSanitizer annotations for hand-overs TSan cannot see: ones the
 * kernel orders (a userfaultfd fault is read only after the write-protect
 * that caused it) or uninstrumented libraries do.  They compile to
 * nothing unless the build has -fsanitize=thread (run-tests.sh's third
 * build); see docs/devel/testing.md.
 *
 * tsan_release(addr) in the thread that hands over, before the hand-over;
 * tsan_acquire(addr) in the one that receives, after it: TSan then
 * orders everything before the release before everything after the
 * acquire, as it would for an unlock and a lock of @addr.
 */
#ifndef QEMU_TSAN_H
#define QEMU_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define SNAPVM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SNAPVM_TSAN 1
#endif
#endif

#ifdef SNAPVM_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_release(addr) __tsan_release((void *)(addr))
#define tsan_acquire(addr) __tsan_acquire((void *)(addr))
#else
#define tsan_release(addr) ((void)(addr))
#define tsan_acquire(addr) ((void)(addr))
#endif

#endif
