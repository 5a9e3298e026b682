/*
 * HMP: help, info, errors, through human-monitor-command, a -monitor unix
 * socket and -monitor stdio.
 */
#include "libqtest.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <glib/gstdio.h>

#define PROMPT "(snapvm) "

static QTestState *start_vm(const char *more_args)
{
    g_autofree char *idle = qtest_guest_path("idle");

    if (qtest_guest_exists("idle")) {
        return qtest_initf("-m 32M -S -kernel %s %s", idle, more_args);
    }
    return qtest_initf("-m 32M -S %s", more_args);
}

/*
 * Every line of @text ends with "\r\n", as QEMU's HMP prints it
 * (qmp-shell's HMP mode splits on it): no bare "\n", no bare "\r".
 */
static void assert_crlf_lines(const char *text)
{
    g_assert_true(g_str_has_suffix(text, "\r\n"));
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            g_assert_true(p > text && p[-1] == '\r');
        } else if (*p == '\r') {
            g_assert_cmpint(p[1], ==, '\n');
        }
    }
}

/* Every line of "help" reads "NAME PARAMS -- HELP", as in QEMU. */
static void assert_help_lines(const char *help)
{
    g_auto(GStrv) lines = g_strsplit(help, "\r\n", -1);
    guint n = 0;

    for (char **l = lines; *l; l++) {
        if (!**l) {
            continue;
        }
        g_assert_nonnull(strstr(*l, " -- "));
        n++;
    }
    g_assert_cmpuint(n, >=, 2);
}

static void test_help_lists_commands_and_info(void)
{
    QTestState *qts = start_vm("");
    g_autofree char *help = qtest_hmp(qts, "help");
    g_autofree char *help_info = qtest_hmp(qts, "help info");
    g_autofree char *help_one = qtest_hmp(qts, "help help");

    assert_help_lines(help);
    g_assert_nonnull(strstr(help, "help|? [cmd] -- "));
    g_assert_nonnull(strstr(help, "\r\ninfo [subcommand] -- "));
    g_assert_nonnull(strstr(help, "\r\ninfo status "));
    g_assert_nonnull(strstr(help, "\r\nquit"));
    g_assert_nonnull(strstr(help, "\r\ncont"));
    g_assert_nonnull(strstr(help_info, "info status "));
    g_assert_null(strstr(help_info, "help|?"));
    g_assert_cmpstr(help_one, ==, "help|? [cmd] -- show the help\r\n");
    qtest_quit(qts);
}

static void test_info_without_args_lists_subcommands(void)
{
    QTestState *qts = start_vm("");
    g_autofree char *info = qtest_hmp(qts, "info");

    assert_help_lines(info);
    g_assert_true(g_str_has_prefix(info, "info "));
    g_assert_nonnull(strstr(info, "info status "));
    g_assert_nonnull(strstr(info, "info version "));
    qtest_quit(qts);
}

static void test_info_status(void)
{
    QTestState *qts = start_vm("");
    g_autofree char *before = qtest_hmp(qts, "info status");
    g_autofree char *stop = qtest_hmp(qts, "stop");
    g_autofree char *after = qtest_hmp(qts, "info status");
    g_autofree char *status = qtest_query_status(qts);

    g_assert_true(g_str_has_prefix(before, "VM status: "));
    g_assert_cmpstr(stop, ==, "");
    g_assert_cmpstr(status, ==, "paused");
    g_assert_true(g_str_has_prefix(after, "VM status: paused"));
    qtest_quit(qts);
}

static void test_unknown_command(void)
{
    QTestState *qts = start_vm("");
    g_autofree char *unknown = qtest_hmp(qts, "foo bar");
    g_autofree char *unknown_info = qtest_hmp(qts, "info foo");
    g_autofree char *empty = qtest_hmp(qts, "   ");
    g_autofree char *quote = qtest_hmp(qts, "info \"status");

    g_assert_cmpstr(unknown, ==, "unknown command: 'foo'\r\n");
    g_assert_cmpstr(unknown_info, ==, "unknown command: 'info foo'\r\n");
    g_assert_cmpstr(empty, ==, "");
    g_assert_cmpstr(quote, ==, "Error: unterminated string literal\r\n");
    qtest_quit(qts);
}

/*
 * human-monitor-command returns what a HMP session would have printed,
 * "\r\n" included, as QEMU's does.
 */
static void test_lines_end_crlf(void)
{
    QTestState *qts = start_vm("");
    g_autofree char *status = qtest_hmp(qts, "info status");
    g_autofree char *help = qtest_hmp(qts, "help");
    g_autofree char *regs = qtest_hmp(qts, "info registers");

    assert_crlf_lines(status);
    assert_crlf_lines(help);
    assert_crlf_lines(regs);
    qtest_quit(qts);
}

static void test_cpu_index_is_checked(void)
{
    QTestState *qts = start_vm("");
    g_autoptr(JsonObject) reply = qtest_qmp(qts,
        "{\"execute\": \"human-monitor-command\","
        " \"arguments\": {\"command-line\": \"info status\","
        " \"cpu-index\": -1}}");

    g_autoptr(JsonObject) too_big = qtest_qmp(qts,
        "{\"execute\": \"human-monitor-command\","
        " \"arguments\": {\"command-line\": \"info status\","
        " \"cpu-index\": 1}}");
    g_autofree char *cpu0 = NULL;

    g_assert_cmpstr(qtest_reply_error_desc(reply, "GenericError"), ==,
                    "Invalid CPU index");
    /* One vCPU: index 1 does not exist. */
    g_assert_cmpstr(qtest_reply_error_desc(too_big, "GenericError"), ==,
                    "Invalid CPU index");
    cpu0 = qtest_hmp(qts, "info status");
    g_assert_true(g_str_has_prefix(cpu0, "VM status: "));
    qtest_quit(qts);
}

/* Read from @fd until @buf contains @needle followed by a prompt. */
static void read_until(int fd, GString *buf, const char *needle)
{
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    for (;;) {
        const char *found = strstr(buf->str, needle);

        if (found && strstr(found + strlen(needle), PROMPT) &&
            g_str_has_suffix(buf->str, PROMPT)) {
            return;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char chunk[4096];
        ssize_t n;

        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        n = read(fd, chunk, sizeof(chunk));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(buf, chunk, n);
    }
}

static void read_until_prompt(int fd, GString *buf)
{
    read_until(fd, buf, "");
}

static void send_line(int fd, const char *line)
{
    g_autofree char *text = g_strconcat(line, "\n", NULL);

    g_assert_cmpint(send(fd, text, strlen(text), MSG_NOSIGNAL), ==,
                    (ssize_t)strlen(text));
}

static void test_unix_socket_monitor(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("snapvm-hmp-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "hmp.sock", NULL);
    g_autofree char *arg = g_strdup_printf("-monitor unix:%s,server=on,"
                                           "wait=off", path);
    QTestState *qts = start_vm(arg);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autoptr(GString) out = g_string_new(NULL);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_no_error(err);
    /* Only the owner may connect, as to the QMP socket (qmp-test). */
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    strcpy(addr.sun_path, path);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==,
                    0);
    read_until_prompt(fd, out);
    g_assert_nonnull(strstr(out->str, "monitor - type 'help' for more "
                                      "information\r\n"));

    g_string_truncate(out, 0);
    send_line(fd, "info status");
    read_until_prompt(fd, out);
    g_assert_true(g_str_has_prefix(out->str, "VM status: "));

    g_string_truncate(out, 0);
    send_line(fd, "nonsense\r");
    read_until_prompt(fd, out);
    g_assert_cmpstr(out->str, ==, "unknown command: 'nonsense'\r\n" PROMPT);

    /* Several lines, each ending as QEMU ends them. */
    g_string_truncate(out, 0);
    send_line(fd, "help");
    read_until_prompt(fd, out);
    g_string_truncate(out, out->len - strlen(PROMPT));
    assert_crlf_lines(out->str);

    /* Two commands in one write, then a half line before hanging up. */
    g_string_truncate(out, 0);
    g_assert_cmpint(send(fd, "stop\ninfo status\ninfo st", 24, 0), ==, 24);
    read_until(fd, out, "VM status: paused");
    close(fd);

    {
        g_autofree char *status = qtest_query_status(qts);
        g_assert_cmpstr(status, ==, "paused");
    }
    qtest_quit(qts);
    g_remove(path);
    g_rmdir(dir);
}

static void test_stdio_monitor(void)
{
    g_autofree char *out = NULL, *err = NULL;
    int code = qtest_run_with_input("-m 32M -S -monitor stdio -serial none",
                                    "info status\nhelp\nquit\n", 30000,
                                    &out, &err);

    g_assert_cmpint(code, ==, 0);
    g_assert_true(g_str_has_prefix(out, "snapvm "));
    g_assert_nonnull(strstr(out, PROMPT "VM status: "));
    g_assert_nonnull(strstr(out, "\r\ninfo status "));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hmp/help/lists-commands-and-info",
                    test_help_lists_commands_and_info);
    g_test_add_func("/hmp/info/without-args-lists-subcommands",
                    test_info_without_args_lists_subcommands);
    g_test_add_func("/hmp/info/status-follows-stop", test_info_status);
    g_test_add_func("/hmp/errors/unknown-command", test_unknown_command);
    g_test_add_func("/hmp/output/lines-end-crlf", test_lines_end_crlf);
    g_test_add_func("/hmp/errors/cpu-index-checked",
                    test_cpu_index_is_checked);
    g_test_add_func("/hmp/transport/unix-socket", test_unix_socket_monitor);
    g_test_add_func("/hmp/transport/stdio", test_stdio_monitor);
    return g_test_run();
}
