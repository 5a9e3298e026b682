/*
 * The write tracker's fault handler: a vCPU wrote to a protected region;
 * claim it (rule 1), copy it aside if the copy buffer has room and lift
 * its protection (rule 2), or queue it for the saver, which the vCPU then
 * waits for.  The rules are in wp-tracker.c.  The userfaultfd backend
 * runs it in the fault thread, the mprotect backend in the faulting
 * thread's SIGSEGV handler.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/bitops.h"
#include "qemu/cutils.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"
#include <poll.h>


/*
 * A vCPU faulted on region @r, which is someone else's to write: it waits
 * until that region is unprotected.  Record when the wait began, unless
 * the region was unprotected already (a fault event read late), in which
 * case the vCPU has been woken and did not wait for us.
 */
static void wp_note_waiter(WPBlock *b, uint64_t r, int64_t now)
{
    int64_t none = 0;
    if (__atomic_compare_exchange_n(&b->wait_since[r], &none, now, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
        test_bit_atomic(r, b->unprotected)) {
        qatomic_xchg(&b->wait_since[r], 0);
    }
}

/* Copy the region aside into @e's slots; @populated says what to read. */
static void wp_copy_region(WPTracker *t, WPBlock *b, PageQueueEntry *e,
                           const bool *populated, const uint32_t *reserved)
{
    uint32_t unused[WP_REGION_PAGES];
    uint32_t nunused = 0, k = 0, copied = 0;

    for (uint32_t i = 0; i < e->npages; i++) {
        if (!populated[i]) {
            e->slots[i] = PAGE_QUEUE_NO_SLOT;
            continue;
        }
        const uint8_t *src = b->rb->host +
                             ((e->first_page + i) << TARGET_PAGE_BITS);
        uint32_t slot = reserved[k++];
        if (buffer_is_zero(src, TARGET_PAGE_SIZE)) {
            e->slots[i] = PAGE_QUEUE_NO_SLOT;
            unused[nunused++] = slot;
            continue;
        }
        memcpy(page_queue_slot(t->queue, slot), src, TARGET_PAGE_SIZE);
        e->slots[i] = slot;
        copied++;
    }
    page_queue_release(t->queue, unused, nunused);
    qatomic_add(&t->copied_pages, copied);
}

static void wp_fault(WPTracker *t, uint64_t addr);

/*
 * The mprotect backend's fault path, in the faulting thread's SIGSEGV
 * handler: the same claim as the fault thread's, then, unlike userfaultfd
 * where the kernel holds the vCPU, wait here until the region is
 * writable.  False if @addr is not in @t's guest RAM.
 */
bool wp_tracker_write_fault(WPTracker *t, uintptr_t addr)
{
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (addr < (uintptr_t)b->rb->host ||
            addr - (uintptr_t)b->rb->host >= b->rb->used_length) {
            continue;
        }
        uint64_t r = (addr - (uintptr_t)b->rb->host) / WP_REGION_SIZE;
        if (!test_bit_atomic(r, b->unprotected)) {
            wp_fault(t, addr);
        }
        for (;;) {
            int seq = __atomic_load_n(&t->wake_seq, __ATOMIC_SEQ_CST);
            if (test_bit_atomic(r, b->unprotected) ||
                __atomic_load_n(&t->released, __ATOMIC_SEQ_CST)) {
                return true;
            }
            wp_mprotect_sleep(&t->wake_seq, seq);
        }
    }
    return false;
}

static void wp_fault(WPTracker *t, uint64_t addr)
{
    WPBlock *b = NULL;
    for (unsigned i = 0; i < t->nblocks; i++) {
        RAMBlock *rb = t->blocks[i].rb;
        if (addr >= (uintptr_t)rb->host &&
            addr - (uintptr_t)rb->host < rb->used_length) {
            b = &t->blocks[i];
            break;
        }
    }
    if (!b) {
        Error *err = NULL;
        error_setg(&err, "write fault at 0x%" PRIx64 " outside guest RAM",
                   addr);
        wp_fail(t, err);
        return;
    }

    uint64_t r = (addr - (uintptr_t)b->rb->host) / WP_REGION_SIZE;
    int64_t now = now_ns();
    qatomic_inc(&t->faults);

    /* Rule 3: raise @inflight before the claim can make the bit vanish. */
    qatomic_inc(&t->inflight);
    if (!test_and_clear_bit_atomic(r, b->unclaimed)) {
        wp_note_waiter(b, r, now);
        qatomic_dec(&t->inflight);
        return;
    }

    uint32_t n = region_npages(b, r);
    PageQueueEntry *e = g_malloc(sizeof(*e) + n * sizeof(uint32_t));
    e->rb = b->rb;
    e->first_page = r * WP_REGION_PAGES;
    e->npages = n;
    e->fault_ns = now;

    bool populated[WP_REGION_PAGES];
    uint32_t reserved[WP_REGION_PAGES];
    Error *err = NULL;
    if (!wp_populated(t->populated_fault, b, e->first_page, n, populated,
                      &err)) {
        g_free(e);
        wp_fail(t, err);
        qatomic_dec(&t->inflight);
        return;
    }
    uint32_t ncopy = 0;
    for (uint32_t i = 0; i < n; i++) {
        ncopy += populated[i];
    }

    if (page_queue_reserve(t->queue, ncopy, reserved)) {
        e->copied = true;
        wp_copy_region(t, b, e, populated, reserved);
        page_queue_push(t->queue, e);
        if (!wp_unprotect_regions(t, b, r, 1, &err)) {
            wp_fail(t, err);
        }
    } else {
        /* No room: the vCPU stays blocked until the saver writes it. */
        e->copied = false;
        wp_note_waiter(b, r, now);
        page_queue_push(t->queue, e);
    }
    qatomic_dec(&t->inflight);
}

gpointer wp_fault_thread(gpointer opaque)
{
    WPTracker *t = opaque;
    struct uffd_msg msgs[64];
    struct pollfd fds[2] = {
        { .fd = t->uffd, .events = POLLIN },
        { .fd = t->stop_fd, .events = POLLIN },
    };

    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            Error *err = NULL;
            error_setg_errno(&err, errno, "poll on userfaultfd failed");
            wp_fail(t, err);
            break;
        }
        if (fds[1].revents) {
            break;
        }
        Error *err = NULL;
        int n = uffd_read_events(t->uffd, msgs, G_N_ELEMENTS(msgs), &err);
        if (n < 0) {
            wp_fail(t, err);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT ||
                !(msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
                error_setg(&err, "unexpected userfaultfd event %u (flags "
                           "0x%llx)", msgs[i].event,
                           (unsigned long long)msgs[i].arg.pagefault.flags);
                wp_fail(t, err);
                err = NULL;
                continue;
            }
            wp_fault(t, msgs[i].arg.pagefault.address);
        }
    }
    return NULL;
}
