/*
 * Background snapshot by fork() (include/migration/bg-methods.h), the
 * method proposed before userfaultfd could write-protect: the kernel's
 * copy-on-write keeps the snapshot instant's RAM for a child process
 * while the guest runs on in the parent.
 *
 * WHAT THE CHILD MAY DO.  The child of a multi-threaded process has one
 * thread, and every lock another thread held at the instant of fork()
 * stays held in the child for ever: the MigrationState and monitor
 * mutexes, stdio's locks, the GObject type system's and json-glib's.  So
 * the child touches none of them:
 *  - everything that needs a lock or builds JSON is done by the parent
 *    before the fork: the stream header, the device state (in the pause),
 *    the EOF and JSON trailer (into a buffer, before the pause), and with
 *    them the CRCs of the device sections and of the JSON, which the
 *    child's checksums section carries with those of its pages;
 *  - the child runs only the RAM walk of ram.c (stack arrays, atomics, no
 *    allocation), QEMUFile puts into its preallocated buffer and iovec
 *    array, and the channel's writev;
 *  - the bandwidth limit is re-done in the child with clock_gettime() and
 *    nanosleep(): the parent's hook sleeps on the MigrationState mutex;
 *  - the outcome goes back over a pipe as a fixed-size struct written with
 *    write(), and the child ends with _exit() (no atexit, no stdio flush).
 * The channel's writev and the error paths do call malloc (a copy of the
 * iovec array; an Error).  That is safe in glibc, whose fork() takes every
 * malloc arena lock before forking and re-initialises them in the child,
 * and GLib 2.74's g_malloc is plain malloc.  Nothing in the child uses
 * g_slice.
 *
 * WHO OWNS WHAT.  The child writes to the channel's descriptor, which it
 * inherited (exec:, file:, fd:, unix: and tcp: are all descriptors).  The
 * parent does no I/O on the channel until the child is gone: then it
 * closes the stream as usual (fsync and rename of a file: target, the
 * exec: command's status), so that happens once, and only after a child
 * that succeeded.  On failure or cancel the parent aborts the stream
 * (file: removed, exec: command killed) after killing and reaping the
 * child.  The vCPU threads do not exist in the child: threads do not
 * survive fork().
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/cutils.h"
#include "hw/boards.h"
#include "migration/background-snapshot.h"
#include "migration/bg-methods.h"
#include "migration/channel.h"
#include "migration/migration.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/wp-tracker.h"
#include "sysemu/runstate.h"
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* How often the waiting parent looks at migrate_cancel. */
#define BG_FORK_POLL_MS 20

/* What the child tells the parent, in one write() to a pipe. */
typedef struct BgForkReport {
    uint32_t ok;
    RAMStats ram;
    uint64_t ram_remaining;     /* pages the child never handed out */
    char error[512];
} BgForkReport;

typedef struct BgForkRate {
    uint64_t bytes_per_sec;     /* 0: unlimited */
    struct timespec window_start;
    uint64_t window_bytes;
} BgForkRate;

static int64_t timespec_ns(const struct timespec *ts)
{
    return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* The child's max-bandwidth: the same windows as the parent's, no locks. */
static void bg_fork_rate_hook(void *opaque, uint64_t bytes)
{
    BgForkRate *r = opaque;
    struct timespec now;

    if (!r->bytes_per_sec) {
        return;
    }
    r->window_bytes += bytes;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t elapsed = timespec_ns(&now) - timespec_ns(&r->window_start);
    int64_t due = r->window_bytes * 1000000000LL / r->bytes_per_sec;
    if (due > elapsed) {
        struct timespec d = { (due - elapsed) / 1000000000LL,
                              (due - elapsed) % 1000000000LL };
        while (nanosleep(&d, &d) < 0 && errno == EINTR) {
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    }
    if (timespec_ns(&now) - timespec_ns(&r->window_start) >= 1000000000LL) {
        r->window_start = now;
        r->window_bytes = 0;
    }
}

static void bg_fork_report_error(BgForkReport *rep, Error *err)
{
    const char *msg = err ? error_get_pretty(err) : "unknown error";
    size_t n = MIN(strlen(msg), sizeof(rep->error) - 1);

    memcpy(rep->error, msg, n);
    rep->error[n] = '\0';
}

/* The child: see the comment at the top for what it may call. */
static G_NORETURN void bg_fork_child(QEMUFile *f, MachineState *ms,
                                     RAMSaveState *rs,
                                     const GByteArray *devices,
                                     const GByteArray *tail,
                                     uint64_t max_bandwidth, int report_fd,
                                     pid_t parent)
{
    BgForkReport rep = { 0 };
    BgForkRate rate = { .bytes_per_sec = max_bandwidth };
    Error *err = NULL;
    sigset_t all;

    /*
     * The parent's handlers would act on the parent's behalf (a SIGINT
     * handler writing to the main loop's pipe, shared with us): take no
     * signal but the ones that end us.  Die with the migration thread.
     */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(1);       /* the parent died before the prctl took hold */
    }

    clock_gettime(CLOCK_MONOTONIC, &rate.window_start);
    qemu_file_set_write_hook(f, bg_fork_rate_hook, &rate);

    bool ok = true;
    for (bool done = false; ok && !done;) {
        ok = qemu_savevm_state_iterate(f, rs, UINT64_MAX, &done, &err);
    }
    ok = ok && qemu_savevm_ram_complete(f, rs, &err);
    if (ok) {
        qemu_put_buffer(f, devices->data, devices->len);
        qemu_savevm_put_checksums(f, ms, rs);
        qemu_put_buffer(f, tail->data, tail->len);
        ok = qemu_fflush(f) || (qemu_file_get_error_obj(f, &err), false);
    }
    rep.ok = ok;
    ram_save_get_stats(rs, &rep.ram);
    rep.ram_remaining = ram_save_remaining(rs);
    if (!ok) {
        bg_fork_report_error(&rep, err);
    }
    /* A pipe write of less than PIPE_BUF bytes is atomic: all or nothing. */
    G_STATIC_ASSERT(sizeof(rep) <= PIPE_BUF);
    ok = write(report_fd, &rep, sizeof(rep)) == sizeof(rep) && ok;
    _exit(ok ? 0 : 1);
}

static bool bg_fork_cancelled(MigrationState *s)
{
    g_mutex_lock(&s->lock);
    bool c = s->status == MIGRATION_STATUS_CANCELLING;
    g_mutex_unlock(&s->lock);
    return c;
}

/*
 * Wait for the child's report (or its death), killing it on cancel;
 * always reaps it.  Returns its verdict.
 */
static bool bg_fork_wait(MigrationState *s, pid_t pid, int report_fd,
                         BgForkReport *rep, Error **errp)
{
    struct pollfd pfd = { .fd = report_fd, .events = POLLIN };
    bool cancelled = false;
    ssize_t got = 0;

    for (;;) {
        if (!cancelled && bg_fork_cancelled(s)) {
            kill(pid, SIGKILL);
            cancelled = true;
        }
        int n = poll(&pfd, 1, BG_FORK_POLL_MS);
        if (n < 0 && errno != EINTR) {
            kill(pid, SIGKILL);
            break;
        }
        if (n > 0) {
            /* The report, or EOF: the child died without one. */
            do {
                got = read(report_fd, rep, sizeof(*rep));
            } while (got < 0 && errno == EINTR);
            break;
        }
    }

    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        continue;
    }
    if (cancelled) {
        error_setg(errp, "background snapshot cancelled");
        return false;
    }
    if (got == sizeof(*rep) && !rep->ok) {
        error_setg(errp, "%s", rep->error);
        return false;
    }
    if (WIFSIGNALED(status)) {
        error_setg(errp, "the snapshot's child process was killed by signal "
                   "%d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return false;
    }
    if (got != sizeof(*rep) || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        error_setg(errp, "the snapshot's child process ended without "
                   "reporting (exit status %d)",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    return true;
}

/* ---- the child's RAM figures, counted again in the parent ---- */

/*
 * query-migrate reads @rs, which the child's walk did not touch (it had
 * its own copy).  Rather than reach into ram.c, hand the same number of
 * normal and zero pages to ram.c's page-source seam once more, writing
 * into a channel that drops the bytes: the counters (pages, bytes with
 * their headers, remaining) come out as the child's.  Costs a few ms per
 * GiB; no guest page is read.
 */
typedef struct BgForkReplay {
    MachineState *ms;
    unsigned block;
    uint64_t next_page;
    uint64_t normal_left;       /* then zero pages */
    const uint8_t *page[WP_RUN_MAX_PAGES];
} BgForkReplay;

static const uint8_t bg_fork_nonzero_page[TARGET_PAGE_SIZE] = { 1 };

static int bg_replay_next(void *opaque, RAMPageRun *run, Error **errp)
{
    BgForkReplay *r = opaque;

    while (r->block < machine_ram_block_count(r->ms)) {
        RAMBlock *rb = machine_ram_block(r->ms, r->block);
        uint64_t left = ramblock_pages(rb) - r->next_page;
        if (!left) {
            r->block++;
            r->next_page = 0;
            continue;
        }
        uint32_t n = MIN(left, WP_RUN_MAX_PAGES);
        for (uint32_t i = 0; i < n; i++) {
            r->page[i] = r->normal_left ? bg_fork_nonzero_page : NULL;
            r->normal_left -= !!r->normal_left;
        }
        *run = (RAMPageRun) {
            .rb = rb, .first_page = r->next_page, .npages = n,
            .in_guest_ram = true, .page = r->page,
        };
        r->next_page += n;
        return 1;
    }
    return 0;
}

static bool bg_replay_done(void *opaque, RAMPageRun *run, Error **errp)
{
    return true;
}

static const RAMPageSourceOps bg_replay_ops = {
    .next = bg_replay_next,
    .done = bg_replay_done,
};

static bool null_writev_all(MigChannel *ch, const struct iovec *iov,
                            int iovcnt, Error **errp)
{
    return true;
}

static ssize_t null_read(MigChannel *ch, void *buf, size_t len, Error **errp)
{
    return 0;
}

static bool null_close(MigChannel *ch, Error **errp)
{
    g_free(ch);
    return true;
}

static void null_abort(MigChannel *ch)
{
    g_free(ch);
}

static const MigChannelOps null_channel_ops = {
    .writev_all = null_writev_all,
    .read = null_read,
    .close = null_close,
    .abort = null_abort,
};

static bool bg_fork_account(MigrationState *s, RAMSaveState *rs,
                            const BgForkReport *rep, Error **errp)
{
    if (rep->ram_remaining) {
        error_setg(errp, "the snapshot's child left %" PRIu64 " RAM pages "
                   "unsaved", rep->ram_remaining);
        return false;
    }
    MigChannel *ch = g_new0(MigChannel, 1);
    ch->ops = &null_channel_ops;
    ch->description = (char *)"null";
    QEMUFile *nf = qemu_file_new_output(ch);
    BgForkReplay replay = { .ms = s->machine,
                            .normal_left = rep->ram.normal };
    bool ok = true;

    /* Fake pages: nothing to checksum, and no time to spend on it. */
    ram_save_disable_checksums(rs);
    ram_save_set_page_source(rs, &bg_replay_ops, &replay);
    for (bool done = false; ok && !done;) {
        ok = qemu_savevm_state_iterate(nf, rs, UINT64_MAX, &done, errp);
    }
    /* @replay is on this stack: leave @rs no pointer to it. */
    ram_save_set_page_source(rs, NULL, NULL);
    return qemu_fclose(nf, ok ? errp : NULL) && ok;
}

bool bg_fork_save(MigrationState *s, QEMUFile *f, RAMSaveState *rs,
                  int64_t *pause_ns, Error **errp)
{
    MachineState *ms = s->machine;
    g_autoptr(GByteArray) devices = g_byte_array_new();
    g_autoptr(GByteArray) tail = g_byte_array_new();
    int report[2] = { -1, -1 };
    bool ok = false;

    *pause_ns = 0;
    if (ram_save_is_mapped_ram(rs)) {
        error_setg(errp, "x-background-snapshot-method 'fork' cannot be "
                   "used with capability 'mapped-ram'");
        return false;
    }
    if (!background_snapshot_method_check(ms, BG_SNAPSHOT_METHOD_FORK, errp)
        || !qemu_savevm_tail_to_buffer(ms, rs, tail, errp)
        || !qemu_savevm_state_begin(f, ms, rs, errp)) {
        return false;
    }
    /* Nothing of the parent's may be left in @f's buffer to go out twice. */
    if (!qemu_fflush(f)) {
        qemu_file_get_error_obj(f, errp);
        return false;
    }
    if (pipe2(report, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "background snapshot: pipe failed");
        return false;
    }

    bool was_running = runstate_is_running(ms);
    int64_t pause_start = now_ns();
    if (was_running) {
        vm_stop(ms, RUN_STATE_PAUSED);
    }
    bool saved = qemu_savevm_device_state_to_buffer(ms, rs, devices, errp);
    pid_t parent = getpid();
    pid_t pid = saved ? fork() : -1;
    if (pid == 0) {
        close(report[0]);
        bg_fork_child(f, ms, rs, devices, tail,
                      s->options.params.max_bandwidth,
                      report[1], parent);
    }
    int fork_errno = errno;
    if (was_running) {
        vm_start(ms);
    }
    *pause_ns = now_ns() - pause_start;
    close(report[1]);
    if (pid < 0) {
        if (saved) {
            error_setg_errno(errp, fork_errno,
                             "background snapshot: fork failed");
        }
        close(report[0]);
        return false;
    }

    BgForkReport rep = { 0 };
    ok = bg_fork_wait(s, pid, report[0], &rep, errp);
    close(report[0]);
    if (ok) {
        ok = bg_fork_account(s, rs, &rep, errp);
    }
    return ok;
}

bool background_snapshot_method_check(MachineState *ms,
                                      BackgroundSnapshotMethod method,
                                      Error **errp)
{
    RAMBlock *rb;

    switch (method) {
    case BG_SNAPSHOT_METHOD_USERFAULTFD:
        return background_snapshot_check(ms, errp);
    case BG_SNAPSHOT_METHOD_FORK:
        RAMBLOCK_FOREACH(ms, rb) {
            if (rb->shared) {
                error_setg(errp, "x-background-snapshot-method 'fork' needs "
                           "private guest RAM, but RAMBlock '%s' is a shared "
                           "mapping (memory-backend-memfd, or share=on): "
                           "writes to it would reach the child's copy too; "
                           "use share=off or another method", rb->idstr);
                return false;
            }
        }
        return true;
    case BG_SNAPSHOT_METHOD_MPROTECT: {
        g_autofree RAMBlock **blocks =
            g_new(RAMBlock *, machine_ram_block_count(ms));
        unsigned n = 0;
        RAMBLOCK_FOREACH(ms, rb) {
            blocks[n++] = rb;
        }
        return wp_tracker_check_mprotect(blocks, n, errp);
    }
    default:
        g_assert_not_reached();
    }
}
