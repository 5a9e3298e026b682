/*
 * Fault injection: make the Nth call of one kind of system call or
 * allocation on the migration and snapshot path fail, the way SQLite's
 * tests make the Nth malloc fail, so that tests can walk every error path
 * (see docs/devel/testing.md).
 *
 *   SNAPVM_FAULT_INJECT="uffd-ioctl:3,channel-write:1" snapvm ...
 *
 * fails the 3rd userfaultfd ioctl and the 1st channel write of the
 * process, and nothing else.  Calls are counted per kind from the start
 * of the process, across every migration it runs.  Each injected failure
 * is reported on stderr and, if SNAPVM_FAULT_INJECT_LOG names a file,
 * appended to it as one line "KIND N ERRNO-NAME" (tests read it to know
 * whether the fault was reached).
 *
 * A failure looks like the real one: the hooked call is skipped and
 * reports failure with the kind's errno (fault_inject_errno()), so the
 * caller takes its real error path and writes its real message.  A hook
 * is one line at the call site:
 *
 *   ret = fault_inject(FAULT_UFFD_IOCTL) ? -1 : ioctl(fd, ...);
 *
 * Why a global: the switch is read once, before main() and before any
 * thread exists, and never changes afterwards; it is a property of the
 * process like SNAPVM_TEST_UFFD_HIDE_FEATURES, not state that an object
 * owns.  Passing it down to every syscall site would change a dozen
 * signatures for a test-only feature.  When it is off, a hook costs one
 * load of a read-mostly byte and a branch predicted not taken.
 */
#ifndef QEMU_FAULT_INJECT_H
#define QEMU_FAULT_INJECT_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef enum FaultKind {
    FAULT_UFFD_OPEN,        /* userfaultfd(2) / /dev/userfaultfd */
    FAULT_UFFD_IOCTL,       /* UFFDIO_REGISTER, _WRITEPROTECT, _UNREGISTER */
    FAULT_UFFD_READ,        /* read(2) of fault events */
    FAULT_CHANNEL_WRITE,    /* writev(2) of a descriptor channel */
    FAULT_CHANNEL_FSYNC,    /* fsync(2) of a file: or fd: target */
    FAULT_FORK,             /* starting a process: exec:, fork snapshots */
    FAULT_THREAD_CREATE,    /* threads the snapshot starts */
    FAULT_ALLOC,            /* large allocations: the copy buffer */
    FAULT_PAGEMAP_READ,     /* pread(2), PAGEMAP_SCAN of /proc/self/pagemap */
    FAULT_DIRECT_IO_OPEN,   /* open(2) of a file: target with O_DIRECT */
    FAULT_CHANNEL_PWRITE,   /* pwritev(2) of mapped-ram pages */
    FAULT__MAX
} FaultKind;

/* True only if SNAPVM_FAULT_INJECT armed at least one kind. */
extern bool fault_inject_armed;

/* The slow path of fault_inject(); do not call directly. */
bool fault_inject_check(FaultKind kind);

/*
 * Count one call of @kind.  True if this call must fail: errno is then
 * set to fault_inject_errno(@kind) and the caller skips the real call.
 */
static inline bool fault_inject(FaultKind kind)
{
    return __builtin_expect(fault_inject_armed, 0) &&
           fault_inject_check(kind);
}

/*
 * For calls that report failure with a GError (g_thread_try_new,
 * g_spawn_*): as fault_inject(), and on failure set *@gerr as GLib would.
 */
bool fault_inject_gerror(FaultKind kind, GError **gerr);

/* The errno an injected failure of @kind reports. */
int fault_inject_errno(FaultKind kind);

/* "uffd-ioctl", ...; NULL if @kind is out of range. */
const char *fault_kind_name(FaultKind kind);
/* FAULT__MAX if @name is no kind. */
FaultKind fault_kind_from_name(const char *name);

/*
 * Arm from a spec string as SNAPVM_FAULT_INJECT holds it ("" or NULL
 * disarms); resets every count.  Done from the environment before main();
 * unit tests call it before they start threads.
 */
bool fault_inject_configure(const char *spec, Error **errp);

/* How many calls of @kind were counted, and how many were failed. */
uint64_t fault_inject_calls(FaultKind kind);
uint64_t fault_inject_injected(FaultKind kind);

#endif
