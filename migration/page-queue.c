/*
 * Copy buffer and priority queue of a background snapshot
 * (include/migration/page-queue.h).
 *
 * One mutex guards the free-slot stack and the queue: both are touched a
 * few times per 2 MiB region, far less often than the pages are copied,
 * so a lock is cheaper to reason about than lock-free lists here.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "migration/page-queue.h"
#include <sys/mman.h>

struct PageQueue {
    GMutex lock;
    GCond cond;
    uint8_t *buffer;            /* nslots pages, mmap'ed, touched lazily */
    uint32_t nslots;
    uint32_t *free_stack;       /* free slot numbers */
    uint32_t nfree;
    uint32_t peak_used;
    GQueue entries;             /* of PageQueueEntry */
    bool kicked;
};

PageQueue *page_queue_new(uint64_t buffer_bytes, Error **errp)
{
    uint64_t nslots = buffer_bytes / TARGET_PAGE_SIZE;
    if (nslots >= UINT32_MAX) {
        error_setg(errp, "copy buffer of %" PRIu64 " bytes is too large",
                   buffer_bytes);
        return NULL;
    }
    PageQueue *q = g_new0(PageQueue, 1);
    if (nslots) {
        /* Not touched until used: an idle guest costs no resident memory. */
        void *buf = fault_inject(FAULT_ALLOC) ? MAP_FAILED :
                    mmap(NULL, nslots * TARGET_PAGE_SIZE,
                         PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (buf == MAP_FAILED) {
            error_setg_errno(errp, errno, "cannot allocate a copy buffer of "
                             "%" PRIu64 " bytes", buffer_bytes);
            g_free(q);
            return NULL;
        }
        q->buffer = buf;
        q->free_stack = g_new(uint32_t, nslots);
        /* Hand out low slots first so a small working set stays compact. */
        for (uint32_t i = 0; i < nslots; i++) {
            q->free_stack[i] = nslots - 1 - i;
        }
    }
    q->nslots = nslots;
    q->nfree = nslots;
    g_mutex_init(&q->lock);
    g_cond_init(&q->cond);
    g_queue_init(&q->entries);
    return q;
}

void page_queue_free(PageQueue *q)
{
    if (!q) {
        return;
    }
    PageQueueEntry *e;
    while ((e = g_queue_pop_head(&q->entries))) {
        g_free(e);
    }
    if (q->buffer) {
        munmap(q->buffer, (size_t)q->nslots * TARGET_PAGE_SIZE);
    }
    g_free(q->free_stack);
    g_mutex_clear(&q->lock);
    g_cond_clear(&q->cond);
    g_free(q);
}

bool page_queue_reserve(PageQueue *q, uint32_t n, uint32_t *slots)
{
    if (n == 0) {
        return true;
    }
    g_mutex_lock(&q->lock);
    if (q->nfree < n) {
        g_mutex_unlock(&q->lock);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        slots[i] = q->free_stack[--q->nfree];
    }
    q->peak_used = MAX(q->peak_used, q->nslots - q->nfree);
    g_mutex_unlock(&q->lock);
    return true;
}

void page_queue_release(PageQueue *q, const uint32_t *slots, uint32_t n)
{
    g_mutex_lock(&q->lock);
    for (uint32_t i = 0; i < n; i++) {
        if (slots[i] == PAGE_QUEUE_NO_SLOT) {
            continue;
        }
        g_assert(slots[i] < q->nslots && q->nfree < q->nslots);
        q->free_stack[q->nfree++] = slots[i];
    }
    g_mutex_unlock(&q->lock);
}

uint8_t *page_queue_slot(PageQueue *q, uint32_t slot)
{
    g_assert(slot < q->nslots);
    return q->buffer + (size_t)slot * TARGET_PAGE_SIZE;
}

void page_queue_push(PageQueue *q, PageQueueEntry *e)
{
    g_mutex_lock(&q->lock);
    g_queue_push_tail(&q->entries, e);
    g_cond_broadcast(&q->cond);
    g_mutex_unlock(&q->lock);
}

PageQueueEntry *page_queue_pop(PageQueue *q)
{
    g_mutex_lock(&q->lock);
    PageQueueEntry *e = g_queue_pop_head(&q->entries);
    g_mutex_unlock(&q->lock);
    return e;
}

bool page_queue_is_empty(PageQueue *q)
{
    g_mutex_lock(&q->lock);
    bool empty = g_queue_is_empty(&q->entries);
    g_mutex_unlock(&q->lock);
    return empty;
}

void page_queue_wait(PageQueue *q, int64_t timeout_us)
{
    g_mutex_lock(&q->lock);
    if (g_queue_is_empty(&q->entries) && !q->kicked) {
        g_cond_wait_until(&q->cond, &q->lock,
                          g_get_monotonic_time() + timeout_us);
    }
    q->kicked = false;
    g_mutex_unlock(&q->lock);
}

void page_queue_kick(PageQueue *q)
{
    g_mutex_lock(&q->lock);
    q->kicked = true;
    g_cond_broadcast(&q->cond);
    g_mutex_unlock(&q->lock);
}

uint64_t page_queue_capacity_bytes(PageQueue *q)
{
    return (uint64_t)q->nslots * TARGET_PAGE_SIZE;
}

uint64_t page_queue_peak_bytes(PageQueue *q)
{
    g_mutex_lock(&q->lock);
    uint64_t peak = (uint64_t)q->peak_used * TARGET_PAGE_SIZE;
    g_mutex_unlock(&q->lock);
    return peak;
}
