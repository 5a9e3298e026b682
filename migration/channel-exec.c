/*
 * exec:COMMAND — the stream goes to the stdin of "/bin/sh -c COMMAND"
 * (outgoing) or comes from its stdout (incoming).  The command's exit
 * status is part of the result: a save whose command failed has failed.
 */
#include "qemu/osdep.h"
#include "qemu/fault-inject.h"
#include "channel-fd.h"
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

typedef struct ExecChannel {
    FdChannel fdc;
    GPid pid;           /* 0 once reaped */
    int pidfd;          /* readable when the child exits */
    bool outgoing;
    int exit_status;    /* valid once pid is 0 */
} ExecChannel;

/*
 * Start "/bin/sh -c @command" with @child_fd as its stdin (outgoing) or
 * stdout (incoming).
 *
 * posix_spawn, not fork: glibc's clones the process with CLONE_VM |
 * CLONE_VFORK, so guest RAM is neither copied nor shared copy-on-write
 * with the child.  After a fork, the guest's next write to a transparent
 * huge page shared with the not-yet-exec'ed child is copied at 4 KiB
 * granularity and splits that huge page for good, and the page tables of
 * a large guest take milliseconds to copy.
 *
 * snapvm ignores SIGPIPE so that a target that goes away early is an
 * EPIPE we can report; the command gets it back (SETSIGDEF), or a
 * pipeline like "exec:cat | head" would change behaviour.  It runs in its
 * own process group, so that abort() reaches what the shell forked too
 * (dash runs "sleep 30" as a child, not by exec).  No descriptor of ours
 * but @child_fd leaks into it.
 */
static int exec_spawn(const char *command, int child_fd, int target_fd,
                      pid_t *pid)
{
    char *const argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)command,
                           NULL };
    extern char **environ;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t sigdefault, empty;

    sigemptyset(&sigdefault);
    sigaddset(&sigdefault, SIGPIPE);
    sigemptyset(&empty);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_fd, target_fd);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                             POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigdefault(&attr, &sigdefault);
    posix_spawnattr_setsigmask(&attr, &empty);
    int err = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return err;
}

static char *exec_status_message(int status)
{
    if (WIFEXITED(status)) {
        return g_strdup_printf("exited with status %d", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return g_strdup_printf("was killed by signal %d (%s)",
                               WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    return g_strdup_printf("ended with wait status 0x%x", status);
}

static int exec_reap(ExecChannel *e)
{
    int status = 0;

    while (waitpid(e->pid, &status, 0) < 0 && errno == EINTR) {
        continue;
    }
    e->pid = 0;
    e->exit_status = status;
    return status;
}

static void exec_free(ExecChannel *e)
{
    if (e->pidfd >= 0) {
        close(e->pidfd);
    }
    fd_channel_cleanup(&e->fdc);
    g_free(e);
}

static void exec_abort(MigChannel *ch)
{
    ExecChannel *e = container_of(ch, ExecChannel, fdc.parent);

    /* Close our end first so that a command's other processes see EOF. */
    if (e->fdc.fd >= 0) {
        close(e->fdc.fd);
        e->fdc.fd = -1;
    }
    if (e->pid) {
        kill(-e->pid, SIGKILL);
        kill(e->pid, SIGKILL);
        exec_reap(e);
    }
    exec_free(e);
}

static bool exec_close(MigChannel *ch, Error **errp)
{
    ExecChannel *e = container_of(ch, ExecChannel, fdc.parent);
    bool timed_out = false;

    /* EOF on its stdin tells an outgoing command that the stream ended. */
    close(e->fdc.fd);
    e->fdc.fd = -1;

    /* The wait is cancellable: a command that never exits must not hang. */
    if (e->pid && e->pidfd >= 0 &&
        !fd_channel_wait(&e->fdc, e->pidfd, POLLIN, -1, &timed_out, errp)) {
        error_prepend(errp, "waiting for the command: ");
        exec_abort(ch);
        return false;
    }
    int status = e->pid ? exec_reap(e) : e->exit_status;
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    /*
     * The loader stops at the end of the stream; a source command that
     * still had bytes (padding, a trailer we do not read) dies of SIGPIPE.
     */
    if (!e->outgoing && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) {
        ok = true;
    }
    if (!ok) {
        g_autofree char *why = exec_status_message(status);
        error_setg(errp, "%s: command %s", ch->description, why);
    }
    exec_free(e);
    return ok;
}

/*
 * A command that ends early shows up as EPIPE on the next write; what the
 * user needs to read is why it ended, so name its exit status too.
 */
static bool exec_writev_all(MigChannel *ch, const struct iovec *iov,
                            int iovcnt, Error **errp)
{
    ExecChannel *e = container_of(ch, ExecChannel, fdc.parent);
    Error *err = NULL;
    bool timed_out = true;

    if (fd_channel_writev_all(ch, iov, iovcnt, &err)) {
        return true;
    }
    if (e->pid && e->pidfd >= 0 &&
        fd_channel_wait(&e->fdc, e->pidfd, POLLIN, 1000, &timed_out, NULL) &&
        !timed_out) {
        int status = exec_reap(e);
        g_autofree char *why = exec_status_message(status);
        error_setg(errp, "%s: command %s (%s)", ch->description, why,
                   error_get_pretty(err));
        error_free(err);
        return false;
    }
    error_propagate(errp, err);
    return false;
}

static const MigChannelOps exec_ops = {
    .writev_all = exec_writev_all,
    .read = fd_channel_read,
    .close = exec_close,
    .abort = exec_abort,
    .cancel = fd_channel_cancel,
};

static MigChannel *exec_open(const char *command, bool outgoing,
                             Error **errp)
{
    g_autoptr(GError) gerr = NULL;
    g_autofree char *desc = g_strdup_printf("exec:%s", command);
    pid_t pid;
    int pipefd[2];

    if (!*command) {
        error_setg(errp, "exec: needs a command");
        return NULL;
    }
    if (fault_inject_gerror(FAULT_FORK, &gerr)) {
        error_setg(errp, "%s: cannot start the command: %s", desc,
                   gerr->message);
        return NULL;
    }
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "%s: cannot create a pipe", desc);
        return NULL;
    }
    /* Outgoing: we write pipefd[1], the command reads its stdin. */
    int fd = outgoing ? pipefd[1] : pipefd[0];
    int child_fd = outgoing ? pipefd[0] : pipefd[1];
    int err = exec_spawn(command, child_fd, outgoing ? 0 : 1, &pid);
    close(child_fd);
    if (err) {
        close(fd);
        error_setg(errp, "%s: cannot start the command: %s", desc,
                   g_strerror(err));
        return NULL;
    }

    ExecChannel *e = g_new0(ExecChannel, 1);
    e->pid = pid;
    e->outgoing = outgoing;
    e->pidfd = syscall(SYS_pidfd_open, pid, 0);
    if (!fd_channel_init(&e->fdc, &exec_ops, fd, desc, errp)) {
        kill(pid, SIGKILL);
        exec_reap(e);
        if (e->pidfd >= 0) {
            close(e->pidfd);
        }
        g_free(e);
        return NULL;
    }
    return &e->fdc.parent;
}

MigChannel *mig_channel_exec_outgoing(const char *command, Error **errp)
{
    return exec_open(command, true, errp);
}

MigChannel *mig_channel_exec_incoming(const char *command, Error **errp)
{
    return exec_open(command, false, errp);
}
