/*
 * The background snapshot's copy buffer and priority queue.
 *
 * The fault-handler thread copies guest pages that a vCPU is about to
 * change into slots of a fixed-size buffer and queues them; the RAM save
 * thread takes queued work before anything else.  The buffer is bounded:
 * when it has no room, the fault handler queues the region *uncopied* and
 * leaves the vCPU blocked until the saver has written it from guest RAM,
 * so memory stays bounded and a guest that dirties faster than the target
 * takes pages is throttled rather than failed.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef MIGRATION_PAGE_QUEUE_H
#define MIGRATION_PAGE_QUEUE_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"

#define PAGE_QUEUE_NO_SLOT UINT32_MAX

typedef struct PageQueue PageQueue;

/*
 * One write-protected region (at most 2 MiB) to be written.  With
 * @copied, page i's content is in slot slots[i] (or it is zero if
 * slots[i] == PAGE_QUEUE_NO_SLOT); otherwise it is still in guest RAM,
 * protected, with a vCPU waiting for it since @fault_ns.
 */
typedef struct PageQueueEntry {
    RAMBlock *rb;
    uint64_t first_page;        /* page index within rb */
    uint32_t npages;
    bool copied;
    int64_t fault_ns;           /* g_get_monotonic_time() * 1000 */
    uint32_t slots[];           /* npages entries when copied */
} PageQueueEntry;

/* @buffer_bytes is rounded down to whole pages; 0 means never copy. */
PageQueue *page_queue_new(uint64_t buffer_bytes, Error **errp);
void page_queue_free(PageQueue *q);

/*
 * Take @n free slots at once, or none: returns false if fewer than @n are
 * free.  Never blocks.
 */
bool page_queue_reserve(PageQueue *q, uint32_t n, uint32_t *slots);
void page_queue_release(PageQueue *q, const uint32_t *slots, uint32_t n);
uint8_t *page_queue_slot(PageQueue *q, uint32_t slot);

/* Append; the queue takes ownership of @e (g_malloc'ed). */
void page_queue_push(PageQueue *q, PageQueueEntry *e);
/* Oldest entry or NULL; the caller owns it (g_free). */
PageQueueEntry *page_queue_pop(PageQueue *q);
bool page_queue_is_empty(PageQueue *q);
/* Sleep until an entry is pushed or @timeout_us passes. */
void page_queue_wait(PageQueue *q, int64_t timeout_us);
/* Wake a page_queue_wait()er (on cancel). */
void page_queue_kick(PageQueue *q);

uint64_t page_queue_capacity_bytes(PageQueue *q);
/* Highest number of bytes of slots in use at once. */
uint64_t page_queue_peak_bytes(PageQueue *q);

#endif
