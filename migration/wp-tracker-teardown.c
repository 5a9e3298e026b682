/*
 * Write tracker tear-down: every protection lifted first (no guest stays
 * frozen), then the fault thread stopped, everything unregistered and
 * freed.  Safe at any point after wp_tracker_new().
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/userfaultfd.h"
#include "wp-tracker-internal.h"

void wp_tracker_free(WPTracker *t)
{
    if (!t) {
        return;
    }
    if (t->queue) {
        wp_tracker_cancel(t);
    }
    /*
     * A guest must never stay frozen: lift every protection first, which
     * also wakes every vCPU blocked on one, before anything else can fail.
     */
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (b->registered || t->use_mprotect) {
            Error *err = NULL;
            if (!wp_protect(t, b->rb->host, b->rb->used_length, false,
                            &err)) {
                error_report_err(err);
            }
        }
    }
    if (t->use_mprotect) {
        /* Wake the waiting vCPUs, then wait out handlers still using @t. */
        __atomic_store_n(&t->released, true, __ATOMIC_SEQ_CST);
        wp_mprotect_wake(&t->wake_seq);
        wp_mprotect_detach(t);
    }
    if (t->fault_thread) {
        uint64_t one = 1;
        /*
         * The write cannot fail: 8 bytes to a blocking eventfd written
         * once, far from its 2^64 - 2 limit.  If it did, ending the
         * process is the one safe way out, not failing the migration:
         * the thread would never see the stop, so joining it would hang
         * the caller for ever, and freeing @t under it would be a
         * use-after-free in a thread that still reads the userfaultfd.
         * The guest is not frozen either way: every protection is
         * already lifted above.
         */
        if (write(t->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            error_report("cannot stop the write-fault thread: %s",
                         g_strerror(errno));
            abort();
        }
        g_thread_join(t->fault_thread);
    }
    for (unsigned i = 0; i < t->nblocks; i++) {
        WPBlock *b = &t->blocks[i];
        if (b->registered) {
            uffd_unregister(t->uffd, b->rb->host, b->rb->used_length, NULL);
        }
        g_free(b->unclaimed);
        g_free(b->unprotected);
        g_free(b->wait_since);
        g_free(b->populated_at_pause);
    }
    if (t->uffd >= 0) {
        close(t->uffd);
    }
    if (t->stop_fd >= 0) {
        close(t->stop_fd);
    }
    g_free(t->saving);
    page_queue_free(t->queue);
    ram_populated_reader_free(t->populated_fault);
    ram_populated_reader_free(t->populated_save);
    error_free(t->fault_error);
    g_mutex_clear(&t->error_lock);
    g_free(t->blocks);
    g_free(t);
}
