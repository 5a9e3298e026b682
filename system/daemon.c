/*
 * -pidfile and -daemonize, as QEMU has them (include/sysemu/daemon.h).
 */
#include "qemu/osdep.h"
#include "sysemu/daemon.h"

#include <sys/file.h>
#include <sys/wait.h>

static char *pidfile_path;
static int pidfile_fd = -1;
/* The child's end of the pipe the waiting parent reads; -1 otherwise. */
static int daemon_ready_fd = -1;

bool pidfile_create(const char *path, Error **errp)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        error_setg_errno(errp, errno, "-pidfile %s: cannot open", path);
        return false;
    }
    /* As QEMU: a pid file in use by a live process is not taken over. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        error_setg(errp, "-pidfile %s: another process holds it", path);
        close(fd);
        return false;
    }
    if (ftruncate(fd, 0) < 0 ||
        write(fd, pid, strlen(pid)) != (ssize_t)strlen(pid)) {
        error_setg_errno(errp, errno, "-pidfile %s: cannot write", path);
        close(fd);
        return false;
    }
    pidfile_path = g_strdup(path);
    pidfile_fd = fd;
    return true;
}

void pidfile_remove(void)
{
    if (pidfile_fd < 0) {
        return;
    }
    unlink(pidfile_path);
    close(pidfile_fd);
    pidfile_fd = -1;
    g_clear_pointer(&pidfile_path, g_free);
}

/*
 * The parent stays in the foreground until the child says it is ready,
 * so that "snapvm -daemonize ... && connect" works, and exits with the
 * child's status if it fails before that.
 */
bool daemonize_start(Error **errp)
{
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "-daemonize: pipe");
        return false;
    }
    pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "-daemonize: fork");
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid > 0) {
        char byte;
        ssize_t n;
        int status;

        close(fds[1]);
        do {
            n = read(fds[0], &byte, 1);
        } while (n < 0 && errno == EINTR);
        if (n == 1) {
            _exit(0);
        }
        /* The child failed (and said why on stderr) or was killed. */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        _exit(WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status)
                                                       : 1);
    }
    close(fds[0]);
    daemon_ready_fd = fds[1];
    if (setsid() < 0) {
        error_setg_errno(errp, errno, "-daemonize: setsid");
        return false;
    }
    return true;
}

void daemonize_done(void)
{
    int null;

    if (daemon_ready_fd < 0) {
        return;
    }
    /* From here on, messages go to -D's log file only. */
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
    if (write(daemon_ready_fd, "", 1) != 1) {
        /* The parent is gone: nobody waits for the answer. */
    }
    close(daemon_ready_fd);
    daemon_ready_fd = -1;
}
