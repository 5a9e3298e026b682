/*
 * The "mprotect" backend of the write tracker (include/migration/
 * wp-tracker.h): guest RAM is made read-only with mprotect(), and the
 * first store of a vCPU to a region raises SIGSEGV in that vCPU's thread.
 * The handler runs the tracker's fault path there (claim, copy into the
 * buffer if a slot is free, mprotect the region read-write) and returns:
 * the store is retried and succeeds.  With no free slot it sleeps on a
 * futex until the saver has written the region and made it writable.
 *
 * Unicorn's TCG stores to guest RAM (uc_mem_map_ptr memory) are plain
 * host stores from generated code or helpers, and Unicorn installs no
 * SIGSEGV handler of its own: such a store faults in the vCPU thread and
 * is retried after the handler returns (tests/qtest/bg-methods-test.c
 * sees the faults and checks the snapshots exact; see "Other methods" in
 * docs/devel/background-snapshot.md).
 *
 * WHY THE HANDLER MAY TAKE LOCKS.  Only async-signal-safe calls are safe
 * in a handler that can interrupt anything.  This one runs only for an
 * access fault inside guest RAM that we protected, which only a store to
 * guest RAM causes: TCG code or a TCG helper, which hold neither the page
 * queue's mutex nor a malloc lock.  So the handler cannot re-enter a lock
 * its own thread holds, and the page queue's GMutex and a g_malloc in
 * wp_fault() only wait, as in any thread, for the saver.  The wait for
 * the saver itself is a raw futex (async-signal-safe).  Nothing else in
 * snapvm writes guest RAM during a snapshot.
 *
 * A process has one SIGSEGV disposition, so the active tracker and the
 * guest RAM ranges are process-wide; they are set on attach, and the
 * handler is installed once and chains any other fault to the handler
 * that was there before (SIG_DFL: the fault is re-raised, a real crash
 * still crashes).
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "migration/wp-tracker.h"
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define WP_MPROTECT_MAX_RANGES 64

/* VMAs kept free for everything else in the process. */
#define WP_MPROTECT_SPARE_MAPS 4096

typedef struct WPRange {
    uintptr_t start, end;
} WPRange;

/* Process-wide: see the comment at the top. */
static WPTracker *wp_active;
static int wp_handlers_running;
static WPRange wp_ranges[WP_MPROTECT_MAX_RANGES];
static unsigned wp_nranges;
static struct sigaction wp_prev_segv;
static GOnce wp_install_once = G_ONCE_INIT;

static bool wp_in_ranges(uintptr_t addr)
{
    unsigned n = __atomic_load_n(&wp_nranges, __ATOMIC_ACQUIRE);

    for (unsigned i = 0; i < n; i++) {
        if (addr >= wp_ranges[i].start && addr < wp_ranges[i].end) {
            return true;
        }
    }
    return false;
}

static void wp_chain(int sig, siginfo_t *si, void *uctx)
{
    if (wp_prev_segv.sa_flags & SA_SIGINFO) {
        wp_prev_segv.sa_sigaction(sig, si, uctx);
    } else if (wp_prev_segv.sa_handler != SIG_DFL &&
               wp_prev_segv.sa_handler != SIG_IGN) {
        wp_prev_segv.sa_handler(sig);
    } else {
        /* Returning re-executes the access, which now kills as it should. */
        signal(sig, SIG_DFL);
    }
}

static void wp_segv_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    uintptr_t addr = (uintptr_t)si->si_addr;

    if (si->si_code != SEGV_ACCERR || !wp_in_ranges(addr)) {
        wp_chain(sig, si, uctx);
        errno = saved_errno;
        return;
    }
    /*
     * Raised before the tracker is read, so wp_mprotect_detach() waits
     * for us; a tracker already detached has lifted every protection, so
     * returning retries the store and it succeeds.
     */
    __atomic_add_fetch(&wp_handlers_running, 1, __ATOMIC_SEQ_CST);
    WPTracker *t = __atomic_load_n(&wp_active, __ATOMIC_SEQ_CST);
    bool ours = !t || wp_tracker_write_fault(t, addr);
    __atomic_sub_fetch(&wp_handlers_running, 1, __ATOMIC_SEQ_CST);
    if (!ours) {
        /*
         * RAM of an earlier guest layout, not protected by the running
         * snapshot: a real fault, not ours to retry for ever.
         */
        wp_chain(sig, si, uctx);
    }
    errno = saved_errno;
}

static gpointer wp_install_handler(gpointer unused)
{
    struct sigaction sa = {
        .sa_sigaction = wp_segv_handler,
        .sa_flags = SA_SIGINFO | SA_RESTART,
    };

    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &wp_prev_segv) < 0) {
        return GINT_TO_POINTER(errno);
    }
    return NULL;
}

bool wp_mprotect_attach(WPTracker *t, RAMBlock *const *blocks,
                        unsigned nblocks, Error **errp)
{
    int err = GPOINTER_TO_INT(g_once(&wp_install_once, wp_install_handler,
                                     NULL));
    if (err) {
        error_setg_errno(errp, err, "cannot install the SIGSEGV handler");
        return false;
    }
    if (nblocks > WP_MPROTECT_MAX_RANGES) {
        error_setg(errp, "x-background-snapshot-method 'mprotect' handles "
                   "at most %d RAMBlocks", WP_MPROTECT_MAX_RANGES);
        return false;
    }
    WPTracker *none = NULL;
    if (!__atomic_compare_exchange_n(&wp_active, &none, t, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        error_setg(errp, "another mprotect background snapshot is running");
        return false;
    }
    /*
     * Guest RAM does not move: ranges only grow (a handler may be reading
     * them), so an old entry is never wrong.
     */
    for (unsigned i = 0; i < nblocks; i++) {
        uintptr_t start = (uintptr_t)blocks[i]->host;
        uintptr_t end = start + blocks[i]->used_length;
        if (wp_in_ranges(start) && wp_in_ranges(end - 1)) {
            continue;
        }
        unsigned n = wp_nranges;
        if (n == WP_MPROTECT_MAX_RANGES) {
            __atomic_store_n(&wp_active, NULL, __ATOMIC_SEQ_CST);
            error_setg(errp, "too many guest RAM ranges for mprotect");
            return false;
        }
        wp_ranges[n] = (WPRange) { start, end };
        __atomic_store_n(&wp_nranges, n + 1, __ATOMIC_RELEASE);
    }
    return true;
}

void wp_mprotect_detach(WPTracker *t)
{
    WPTracker *expected = t;

    if (!__atomic_compare_exchange_n(&wp_active, &expected, NULL, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        return;         /* never attached */
    }
    while (__atomic_load_n(&wp_handlers_running, __ATOMIC_SEQ_CST)) {
        g_usleep(100);
    }
}

bool wp_mprotect_range(uint8_t *host, uint64_t len, bool protect,
                       Error **errp)
{
    int prot = protect ? PROT_READ : PROT_READ | PROT_WRITE;

    if (mprotect(host, len, prot) < 0) {
        error_setg_errno(errp, errno, "mprotect(%p, %" PRIu64 ", %s) failed",
                         host, len, protect ? "PROT_READ" : "PROT_READ|"
                         "PROT_WRITE");
        return false;
    }
    return true;
}

void wp_mprotect_sleep(int *seq, int seen)
{
    syscall(SYS_futex, seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

void wp_mprotect_wake(int *seq)
{
    __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static long read_long_file(const char *path, long fallback)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return fallback;
    }
    return strtol(text, NULL, 10);
}

static long count_maps(void)
{
    g_autofree char *text = NULL;
    long n = 0;

    if (!g_file_get_contents("/proc/self/maps", &text, NULL, NULL)) {
        return 0;
    }
    for (const char *p = text; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

/*
 * Unprotecting regions one by one splits the mapping: up to one VMA per
 * 2 MiB region until the end, when they merge back.
 */
bool wp_tracker_check_mprotect(RAMBlock *const *blocks, unsigned nblocks,
                               Error **errp)
{
    long max = read_long_file("/proc/sys/vm/max_map_count", 65530);
    long need = count_maps() + WP_MPROTECT_SPARE_MAPS;

    for (unsigned i = 0; i < nblocks; i++) {
        need += DIV_ROUND_UP(blocks[i]->used_length, WP_REGION_SIZE);
    }
    if (need > max) {
        error_setg(errp, "x-background-snapshot-method 'mprotect' may need "
                   "%ld memory mappings, more than vm.max_map_count (%ld) "
                   "allows: raise it, or use another method", need, max);
        return false;
    }
    return true;
}
