/*
 * QEMU options that scripts and management tools pass: accepted where
 * they mean something for snapvm (-display none, -nographic, -machine,
 * -nodefaults, -no-user-config, -name, -chardev socket + -mon, -pidfile,
 * -daemonize), refused otherwise with one line that says why.  Every
 * snapvm started here is stopped by its pid.
 */
#include "libqtest.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define TIMEOUT_MS 30000

static int connect_unix(const char *path)
{
    int fd = qtest_connect_unix(path);

    g_assert_cmpint(fd, >=, 0);
    return fd;
}

/* What @fd sends until @needle shows up (or the timeout; then fail). */
static char *read_until(int fd, const char *needle)
{
    GString *got = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + TIMEOUT_MS * 1000LL;

    while (!strstr(got->str, needle)) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char buf[1024];
        ssize_t n;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(got, buf, n);
    }
    return g_string_free(got, FALSE);
}

static void send_text(int fd, const char *text)
{
    g_assert_cmpint(write(fd, text, strlen(text)), ==, (ssize_t)strlen(text));
}

/* Over a raw QMP socket: negotiate and quit. */
static void qmp_quit(const char *path)
{
    int fd = connect_unix(path);
    g_autofree char *greeting = read_until(fd, "\r\n");
    g_autofree char *replies = NULL;

    g_assert_true(g_str_has_prefix(greeting, "{\"QMP\""));
    send_text(fd, "{\"execute\": \"qmp_capabilities\"}\n"
                  "{\"execute\": \"quit\"}\n");
    replies = read_until(fd, "SHUTDOWN");
    g_assert_nonnull(strstr(replies, "{\"return\":{}}"));
    close(fd);
}

/* Wait for a process that is not our child to go; kill it if it stays. */
static bool pid_gone(pid_t pid, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    while (g_get_monotonic_time() < deadline) {
        if (kill(pid, 0) < 0 && errno == ESRCH) {
            return true;
        }
        g_usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    return false;
}

static void test_qemu_options_accepted(void)
{
    QTestState *qts = qtest_init("-display none -nodefaults -no-user-config "
                                 "-machine snapvm,accel=tcg "
                                 "-M snapvm,accel=kvm:tcg "
                                 "-name guest=vm1,debug-threads=on "
                                 "-m 32M -S");
    g_autoptr(JsonNode) name = qtest_qmp_assert_success(
        qts, "{\"execute\": \"query-name\"}");
    g_autofree char *status = qtest_query_status(qts);

    g_assert_cmpstr(json_object_get_string_member(
                        json_node_get_object(name), "name"), ==, "vm1");
    g_assert_cmpstr(status, ==, "prelaunch");
    qtest_quit(qts);
}

typedef struct Refused {
    const char *args;
    const char *message;        /* the one line on stderr */
} Refused;

static const Refused refused[] = {
    { "-display gtk", "snapvm: -display gtk: snapvm has no display; only "
      "'-display none' is accepted" },
    { "-machine pc", "snapvm: -machine pc: unsupported machine type 'pc'; "
      "snapvm has one, 'snapvm' (-machine help)" },
    { "-M snapvm,usb=off", "snapvm: -machine snapvm,usb=off: snapvm's "
      "machine has no property 'usb' (it has type, accel and "
      "memory-backend)" },
    { "-machine accel=kvm", "snapvm: -machine accel=kvm: accel 'kvm' is not "
      "supported; only 'tcg'" },
    { "-chardev socket,id=m,path=/tmp/x", "snapvm: -chardev "
      "socket,id=m,path=/tmp/x: only server=on is supported (snapvm does "
      "not connect out)" },
    { "-chardev pty,id=m", "snapvm: -chardev pty,id=m: only the 'socket' "
      "backend is supported (for -mon)" },
    { "-mon chardev=nope,mode=control", "snapvm: -mon "
      "chardev=nope,mode=control: no -chardev with id 'nope'" },
    { "-chardev socket,id=m,path=/tmp/x,server=on -mon chardev=m,mode=x",
      "snapvm: -mon chardev=m,mode=x: mode must be control or readline" },
    { "-chardev socket,id=m,path=/tmp/x,server=on",
      "snapvm: -chardev id=m: not used by any -mon (snapvm's only use for "
      "a chardev)" },
    { "-daemonize -serial stdio", "snapvm: -daemonize: stdio cannot be used "
      "by -serial, -qmp or -monitor once snapvm is in the background" },
    { "-nographic -daemonize", "snapvm: -nographic cannot be used with "
      "-daemonize" },
    { "-machine snapvm,accel=kvm:xen", "snapvm: -machine "
      "snapvm,accel=kvm:xen: accel 'kvm:xen' is not supported; only 'tcg'" },
    { "-machine none,accel=kvm:tcg", "snapvm: -machine none,accel=kvm:tcg: "
      "unsupported machine type 'none'; snapvm has one, 'snapvm' (-machine "
      "help)" },
    { "-numa node,memdev=a -object memory-backend-ram,id=a,size=32M "
      "-machine memory-backend=a", "snapvm: -machine memory-backend=a: "
      "cannot be used with -numa (name the backend in -numa node,memdev= "
      "instead)" },
};

static void test_qemu_options_refused(void)
{
    for (guint i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *want = g_strconcat(refused[i].message, "\n", NULL);
        int status = qtest_run(refused[i].args, TIMEOUT_MS, &out, &err);

        g_assert_cmpint(status, ==, 1);
        g_assert_cmpstr(err, ==, want);
    }
}

static void test_machine_help(void)
{
    g_autofree char *out = NULL, *err = NULL;

    g_assert_cmpint(qtest_run("-machine help", TIMEOUT_MS, &out, &err), ==,
                    0);
    g_assert_nonnull(strstr(out, "\nsnapvm "));
}

static void test_machine_memory_backend(void)
{
    QTestState *qts = qtest_init("-object memory-backend-memfd,id=ram0,"
                                 "size=32M -machine memory-backend=ram0 -S");
    g_autofree char *blocks = qtest_hmp(qts, "info ramblock");

    g_assert_nonnull(strstr(blocks, "ram0"));
    g_assert_null(strstr(blocks, "pc.ram"));
    qtest_quit(qts);
}

/* -nographic without -serial: the guest's serial output on stdout. */
static void test_nographic_serial_on_stdout(void)
{
    g_autofree char *guest = qtest_guest_path("debug-exit");
    g_autofree char *args = g_strdup_printf("-nographic -m 32M -kernel %s",
                                            guest);
    g_autofree char *out = NULL, *err = NULL;

    /* debug-exit prints "bye" and ends with status (0x2a << 1) | 1. */
    g_assert_cmpint(qtest_run(args, TIMEOUT_MS, &out, &err), ==, 85);
    g_assert_cmpstr(out, ==, "bye");
}

/* -chardev socket,path= with -mon: QMP (control) and HMP (readline). */
static void test_chardev_mon_path(void)
{
    g_autofree char *dir = g_dir_make_tmp("snapvm-cmdline-XXXXXX", NULL);
    g_autofree char *qmp = g_build_filename(dir, "m.qmp", NULL);
    g_autofree char *hmp = g_build_filename(dir, "m.hmp", NULL);
    g_autofree char *args = g_strdup_printf(
        "-m 32M -S -chardev socket,id=c1,path=%s,server=on,wait=off "
        "-mon chardev=c1,mode=control,id=monitor "
        "-chardev socket,id=c2,path=%s,server=on,wait=off -mon chardev=c2",
        qmp, hmp);
    QTestState *qts = qtest_init(args);
    int hfd = connect_unix(hmp);
    g_autofree char *banner = read_until(hfd, "(snapvm) ");
    int qfd = connect_unix(qmp);
    g_autofree char *greeting = read_until(qfd, "\r\n");
    g_autofree char *reply = NULL;

    g_assert_true(g_str_has_prefix(greeting, "{\"QMP\""));
    g_assert_nonnull(strstr(banner, "snapvm"));
    send_text(qfd, "{\"execute\": \"qmp_capabilities\"}"
                   "{\"execute\": \"query-status\", \"id\": 3}");
    reply = read_until(qfd, "\"id\":3");
    g_assert_nonnull(strstr(reply, "\"status\":\"prelaunch\""));
    close(qfd);
    close(hfd);
    qtest_quit(qts);
    g_assert_false(g_file_test(qmp, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

/* -chardev socket,fd=N: a listening socket made by the caller (libvirt). */
static void test_chardev_mon_inherited_fd(void)
{
    g_autofree char *dir = g_dir_make_tmp("snapvm-cmdline-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "lv.qmp", NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);   /* inherited: no CLOEXEC */
    g_autofree char *chardev = NULL;
    int status = -1;
    GPid pid;

    g_assert_cmpint(lfd, >=, 0);
    strcpy(sa.sun_path, path);
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(lfd, 4), ==, 0);
    chardev = g_strdup_printf("socket,id=charmonitor,fd=%d,server=on,"
                              "wait=off", lfd);
    const char *argv[] = {
        qtest_binary(), "-m", "32M", "-S", "-chardev", chardev,
        "-mon", "chardev=charmonitor,id=monitor,mode=control", NULL
    };
    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD |
                                G_SPAWN_LEAVE_DESCRIPTORS_OPEN,
                                NULL, NULL, &pid, NULL));
    close(lfd);
    qmp_quit(path);
    for (int i = 0; i < TIMEOUT_MS / 10; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            break;
        }
        g_usleep(10 * 1000);
    }
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        g_assert_not_reached();
    }
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_unlink(path);
    g_rmdir(dir);
}

/*
 * -daemonize: the command returns 0 once the monitor listens, the daemon
 * (another pid, in its own session) writes -pidfile, answers QMP, and
 * removes the file when it quits.
 */
static void test_daemonize_with_pidfile(void)
{
    g_autofree char *dir = g_dir_make_tmp("snapvm-cmdline-XXXXXX", NULL);
    g_autofree char *qmp = g_build_filename(dir, "d.qmp", NULL);
    g_autofree char *pidfile = g_build_filename(dir, "d.pid", NULL);
    g_autofree char *args = g_strdup_printf(
        "-S -no-user-config -nodefaults -nographic -daemonize -pidfile %s "
        "-qmp unix:%s,server=on,wait=off -m 32M",
        pidfile, qmp);
    g_autofree char *out = NULL, *err = NULL, *text = NULL;
    pid_t pid;

    g_assert_cmpint(qtest_run(args, TIMEOUT_MS, &out, &err), ==, 0);
    g_assert_cmpstr(err, ==, "");
    /* Ready means ready: the socket and the pid file exist already. */
    g_assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
    pid = atoi(text);
    g_assert_cmpint(pid, >, 1);
    g_assert_cmpint(getsid(pid), ==, pid);
    qmp_quit(qmp);
    g_assert_true(pid_gone(pid, TIMEOUT_MS));
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

/* A daemon that fails before it is ready fails the command, saying why. */
static void test_daemonize_failure_reaches_caller(void)
{
    g_autofree char *out = NULL, *err = NULL;

    g_assert_cmpint(qtest_run("-daemonize -m 32M -S -qmp "
                              "unix:/nonexistent-dir/q,server=on,wait=off",
                              TIMEOUT_MS, &out, &err), ==, 1);
    g_assert_cmpstr(err, ==, "snapvm: -qmp: cannot create a socket in "
                    "'/nonexistent-dir': No such file or directory\n");
}

/* -pidfile alone: our pid, held against a second snapvm, removed at exit. */
static void test_pidfile_locked_and_removed(void)
{
    g_autofree char *dir = g_dir_make_tmp("snapvm-cmdline-XXXXXX", NULL);
    g_autofree char *pidfile = g_build_filename(dir, "p.pid", NULL);
    g_autofree char *args = g_strdup_printf("-pidfile %s -m 32M -S",
                                            pidfile);
    QTestState *qts = qtest_init(args);
    g_autofree char *text = NULL, *out = NULL, *err = NULL;
    g_autofree char *want = g_strdup_printf("%d\n", (int)qtest_pid(qts));
    g_autofree char *want_err = g_strdup_printf(
        "snapvm: -pidfile %s: another process holds it\n", pidfile);

    g_assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, want);
    g_assert_cmpint(qtest_run(args, TIMEOUT_MS, &out, &err), ==, 1);
    g_assert_cmpstr(err, ==, want_err);
    qtest_quit(qts);
    g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cmdline/qemu-options/accepted",
                    test_qemu_options_accepted);
    g_test_add_func("/cmdline/qemu-options/refused-with-one-line",
                    test_qemu_options_refused);
    g_test_add_func("/cmdline/machine/help", test_machine_help);
    g_test_add_func("/cmdline/machine/memory-backend",
                    test_machine_memory_backend);
    g_test_add_func("/cmdline/nographic/serial-on-stdout",
                    test_nographic_serial_on_stdout);
    g_test_add_func("/cmdline/chardev-mon/path-qmp-and-hmp",
                    test_chardev_mon_path);
    g_test_add_func("/cmdline/chardev-mon/inherited-listening-fd",
                    test_chardev_mon_inherited_fd);
    g_test_add_func("/cmdline/daemonize/pidfile-qmp-quit",
                    test_daemonize_with_pidfile);
    g_test_add_func("/cmdline/daemonize/failure-reaches-caller",
                    test_daemonize_failure_reaches_caller);
    g_test_add_func("/cmdline/pidfile/locked-then-removed",
                    test_pidfile_locked_and_removed);
    return g_test_run();
}
