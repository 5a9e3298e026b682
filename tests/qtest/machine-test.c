/*
 * The machine as a user drives it: boot a guest, watch its serial port,
 * stop and continue it, read its memory and registers, let it exit, and
 * have bad command lines and bad guests refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <elf.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "libqtest.h"
#include "sweep-check.h"

#define MiB (1024 * 1024)
#define PAGE SWEEP_PAGE

static QTestState *boot_guest(const char *guest, const char *extra)
{
    g_autofree char *path = qtest_guest_path(guest);
    return qtest_initf("-kernel %s %s", path, extra);
}

static char *read_file(const char *path, gsize *len)
{
    char *contents = NULL;
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(path, &contents, len, &err)) {
        g_error("%s", err->message);
    }
    return contents;
}

static void assert_status(QTestState *qts, const char *expected)
{
    g_autofree char *status = qtest_query_status(qts);
    g_assert_cmpstr(status, ==, expected);
}

static void test_boot_serial(void)
{
    QTestState *qts = boot_guest("a-b-sweep", "-m 16M");

    assert_status(qts, "running");
    g_assert_true(qtest_serial_wait(qts, "BBB", QTEST_DEFAULT_TIMEOUT_MS));
    gsize before = qtest_serial_size(qts);
    /* It keeps writing; how soon depends on the machine's load. */
    for (int i = 0; i < 2000 && qtest_serial_size(qts) == before; i++) {
        g_usleep(10 * 1000);
    }
    g_assert_cmpuint(qtest_serial_size(qts), >, before);
    qtest_quit(qts);
}

static void test_stop_cont(void)
{
    QTestState *qts = boot_guest("a-b-sweep", "-m 16M");
    g_autoptr(JsonObject) stop_ev = NULL;
    g_autoptr(JsonObject) resume_ev = NULL;

    g_assert_true(qtest_serial_wait(qts, "B", QTEST_DEFAULT_TIMEOUT_MS));
    g_autoptr(JsonNode) r1 = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"stop\"}");
    stop_ev = qtest_qmp_eventwait(qts, "STOP", QTEST_DEFAULT_TIMEOUT_MS);
    g_assert_nonnull(stop_ev);
    assert_status(qts, "paused");
    g_autofree char *hmp_status = qtest_hmp(qts, "info status");
    g_assert_cmpstr(hmp_status, ==, "VM status: paused\r\n");

    /* A paused guest writes nothing. */
    gsize paused_size = qtest_serial_size(qts);
    g_usleep(300 * 1000);
    g_assert_cmpuint(qtest_serial_size(qts), ==, paused_size);

    g_autoptr(JsonNode) r2 = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"cont\"}");
    resume_ev = qtest_qmp_eventwait(qts, "RESUME", QTEST_DEFAULT_TIMEOUT_MS);
    g_assert_nonnull(resume_ev);
    assert_status(qts, "running");
    g_autofree char *expected = g_strnfill(paused_size + 1, 'B');
    g_assert_true(qtest_serial_wait(qts, expected, QTEST_DEFAULT_TIMEOUT_MS));
    qtest_quit(qts);
}

static void test_stop_is_exact(void)
{
    const uint64_t ram = 32 * MiB;
    QTestState *qts = boot_guest("a-b-sweep", "-m 32M -smp 2");

    g_assert_true(qtest_serial_wait(qts, "BBBB", QTEST_DEFAULT_TIMEOUT_MS));
    for (int round = 0; round < 5; round++) {
        g_autoptr(JsonNode) r1 = qtest_qmp_assert_success(qts,
                                        "{\"execute\": \"stop\"}");
        /* Fails if vm_stop returned before a vCPU really stopped. */
        sweep_assert_consistent(qts, ram, 2);
        g_autoptr(JsonNode) r2 = qtest_qmp_assert_success(qts,
                                        "{\"execute\": \"cont\"}");
        g_usleep(20 * 1000 * round);
    }
    qtest_quit(qts);
}

static void test_smp2(void)
{
    QTestState *qts = boot_guest("a-b-sweep", "-m 16M -smp 2");
    g_autoptr(JsonNode) cpus = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"query-cpus-fast\"}");
    JsonArray *arr = json_node_get_array(cpus);

    g_assert_cmpuint(json_array_get_length(arr), ==, 2);
    for (unsigned i = 0; i < 2; i++) {
        JsonObject *cpu = json_array_get_object_element(arr, i);
        g_assert_cmpint(json_object_get_int_member(cpu, "cpu-index"), ==, i);
        g_assert_cmpstr(json_object_get_string_member(cpu, "target"), ==,
                        "x86_64");
        g_assert_cmpint(json_object_get_int_member(cpu, "thread-id"), >, 0);
    }
    g_assert_cmpint(
        json_object_get_int_member(json_array_get_object_element(arr, 0),
                                   "thread-id"), !=,
        json_object_get_int_member(json_array_get_object_element(arr, 1),
                                   "thread-id"));

    /*
     * Both vCPUs run: each one's position (RBX, and the first byte of
     * its slice's first page, to tell a whole number of passes apart)
     * moves between two stops.  A first byte alone is no witness: it
     * wraps to 0 every 256 passes, which a 16 MiB guest makes in a second.
     */
    g_assert_true(qtest_serial_wait(qts, "BBBB", QTEST_DEFAULT_TIMEOUT_MS));
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"stop\"}");
    g_autofree char *regs = qtest_hmp(qts, "info registers");
    g_assert_nonnull(strstr(regs, "CPU#1\r\n"));
    g_assert_nonnull(strstr(regs, "RSI=0000000000000001"));
    uint64_t slice = (16 * MiB - SWEEP_BASE) / PAGE / 2 * PAGE;
    uint64_t rbx0 = sweep_cpu_rbx(regs, 0), rbx1 = sweep_cpu_rbx(regs, 1);
    g_autofree guint8 *a0 = sweep_read_guest_ram(qts, SWEEP_BASE, 1);
    g_autofree guint8 *a1 = sweep_read_guest_ram(qts, SWEEP_BASE + slice,
                                                 1);
    /*
     * A vCPU thread that the host has not scheduled yet has not moved:
     * let them run longer each round, up to a generous total, rather than
     * count on a fixed slice of wall-clock time.
     */
    bool moved0 = false, moved1 = false;
    for (int round = 1; round <= 20 && !(moved0 && moved1); round++) {
        g_autoptr(JsonNode) r2 = qtest_qmp_assert_success(qts,
                                        "{\"execute\": \"cont\"}");
        g_usleep(50 * 1000 * round);
        g_autoptr(JsonNode) r3 = qtest_qmp_assert_success(qts,
                                        "{\"execute\": \"stop\"}");
        g_autofree char *regs2 = qtest_hmp(qts, "info registers");
        g_autofree guint8 *b0 = sweep_read_guest_ram(qts, SWEEP_BASE, 1);
        g_autofree guint8 *b1 = sweep_read_guest_ram(qts, SWEEP_BASE + slice,
                                                     1);
        moved0 |= sweep_cpu_rbx(regs2, 0) != rbx0 || b0[0] != a0[0];
        moved1 |= sweep_cpu_rbx(regs2, 1) != rbx1 || b1[0] != a1[0];
    }
    g_assert_true(moved0);
    g_assert_true(moved1);
    sweep_assert_consistent(qts, 16 * MiB, 2);
    qtest_quit(qts);
}

static void test_pmemsave_elf(void)
{
    g_autofree char *path = qtest_guest_path("a-b-sweep");
    gsize len;
    g_autofree char *elf = read_file(path, &len);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
    Elf64_Phdr ph;

    g_assert_cmpuint(len, >=, sizeof(*eh));
    memcpy(&ph, elf + eh->e_phoff, sizeof(ph));
    g_assert_cmpuint(ph.p_type, ==, PT_LOAD);

    /* -S: nothing has run, the loaded image is exactly the file's. */
    QTestState *qts = boot_guest("a-b-sweep", "-m 16M -S");
    assert_status(qts, "prelaunch");
    g_autofree guint8 *mem = sweep_read_guest_ram(qts, ph.p_paddr,
                                                  ph.p_filesz);
    g_assert_cmpmem(mem, ph.p_filesz, elf + ph.p_offset, ph.p_filesz);

    g_autofree char *xp = qtest_hmp(qts, "xp /2xb 0x%" PRIx64,
                                    (uint64_t)ph.p_paddr);
    g_autofree char *expect = g_strdup_printf(
        "%016" PRIx64 ": 0x%02x 0x%02x\r\n",
        (uint64_t)ph.p_paddr, (guint8)elf[ph.p_offset],
        (guint8)elf[ph.p_offset + 1]);
    g_assert_cmpstr(xp, ==, expect);

    g_autoptr(JsonObject) bad = qtest_qmp(qts,
        "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": %d, "
        "\"size\": 4096, \"filename\": \"/dev/null\"}}", 16 * MiB - 100);
    g_assert_nonnull(strstr(qtest_reply_error_desc(bad, "GenericError"),
                            "outside guest RAM"));
    g_assert_cmpuint(qtest_serial_size(qts), ==, 0);
    qtest_quit(qts);
}

static void test_numa_blocks(void)
{
    QTestState *qts = boot_guest("a-b-sweep",
        "-m 24M -object memory-backend-ram,id=m0,size=8M "
        "-object memory-backend-memfd,id=m1,size=8M "
        "-object memory-backend-file,id=m2,size=8M,mem-path=/tmp,share=on "
        "-numa node,memdev=m0 -numa node,memdev=m1 -numa node,memdev=m2");

    g_assert_true(qtest_serial_wait(qts, "BB", QTEST_DEFAULT_TIMEOUT_MS));
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"stop\"}");
    /* The sweep crossed all three blocks, the guest saw one RAM. */
    sweep_assert_consistent(qts, 24 * MiB, 1);
    g_autofree guint8 *last = sweep_read_guest_ram(qts, 24 * MiB - PAGE,
                                                   PAGE);
    g_assert_cmpuint(last[0], >, 0);
    qtest_quit(qts);
}

static void test_debug_exit(void)
{
    /* -S: the guest would be gone before the harness connects. */
    QTestState *qts = boot_guest("debug-exit", "-smp 2 -S");
    qtest_qmp_send(qts, "{\"execute\": \"cont\"}");
    g_autoptr(JsonObject) ev = qtest_qmp_eventwait(qts, "SHUTDOWN",
                                                   QTEST_DEFAULT_TIMEOUT_MS);
    g_assert_nonnull(ev);
    JsonObject *data = json_object_get_object_member(ev, "data");
    g_assert_true(json_object_get_boolean_member(data, "guest"));
    g_assert_cmpstr(json_object_get_string_member(data, "reason"), ==,
                    "guest-shutdown");
    g_autofree char *serial = qtest_serial_read(qts);
    g_assert_cmpstr(serial, ==, "bye");
    /* isa-debug-exit: (0x2a << 1) | 1 */
    g_assert_cmpint(qtest_wait_exit(qts, QTEST_DEFAULT_TIMEOUT_MS), ==, 85);
}

static void test_quit_event(void)
{
    QTestState *qts = boot_guest("idle", "");
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"quit\"}");
    g_autoptr(JsonObject) ev = qtest_qmp_eventwait(qts, "SHUTDOWN",
                                                   QTEST_DEFAULT_TIMEOUT_MS);
    g_assert_nonnull(ev);
    JsonObject *data = json_object_get_object_member(ev, "data");
    g_assert_false(json_object_get_boolean_member(data, "guest"));
    g_assert_cmpstr(json_object_get_string_member(data, "reason"), ==,
                    "host-qmp-quit");
    g_assert_cmpint(qtest_wait_exit(qts, QTEST_DEFAULT_TIMEOUT_MS), ==, 0);
}

/* Poll query-status: an event may fire before the client negotiated. */
static bool wait_status(QTestState *qts, const char *expected, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000ll;

    do {
        g_autofree char *status = qtest_query_status(qts);
        if (!strcmp(status, expected)) {
            return true;
        }
        g_usleep(10 * 1000);
    } while (g_get_monotonic_time() < deadline);
    return false;
}

static void test_internal_error(void)
{
    QTestState *qts = boot_guest("bad-insn", "");

    g_assert_true(wait_status(qts, "internal-error",
                              QTEST_DEFAULT_TIMEOUT_MS));
    g_autoptr(JsonObject) cont = qtest_qmp(qts, "{\"execute\": \"cont\"}");
    qtest_reply_error_desc(cont, "GenericError");
    g_autofree char *serial = qtest_serial_read(qts);
    g_assert_cmpstr(serial, ==, "x");
    qtest_quit(qts);
}

static void test_prelaunch(void)
{
    QTestState *qts = boot_guest("a-b-sweep", "-m 16M -S -name demo");
    g_autoptr(JsonNode) name = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"query-name\"}");

    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(name),
                                                  "name"), ==, "demo");
    assert_status(qts, "prelaunch");
    g_autofree char *hmp_status = qtest_hmp(qts, "info status");
    g_assert_cmpstr(hmp_status, ==, "VM status: paused (prelaunch)\r\n");
    g_usleep(200 * 1000);
    g_assert_cmpuint(qtest_serial_size(qts), ==, 0);
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(qts,
                                    "{\"execute\": \"cont\"}");
    g_assert_true(qtest_serial_wait(qts, "B", QTEST_DEFAULT_TIMEOUT_MS));
    qtest_quit(qts);
}

/* snapvm @args must exit 1 with one line on stderr containing @needle. */
static void assert_refused(const char *args, const char *needle)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = qtest_run(args, QTEST_DEFAULT_TIMEOUT_MS, &out, &err);

    if (status != 1 || !strstr(err, needle) ||
        strchr(err, '\n') != err + strlen(err) - 1) {
        g_error("snapvm %s: status %d, stderr '%s' (wanted exit 1 and one "
                "line with '%s')", args, status, err, needle);
    }
}

static void test_bad_options(void)
{
    assert_refused("-bogus", "-bogus");
    assert_refused("-m", "requires an argument");
    assert_refused("-m 65G", "64G");
    assert_refused("-m lots", "-m lots");
    assert_refused("-smp 0", "-smp 0");
    assert_refused("-smp 33", "-smp 33");
    assert_refused("-accel kvm", "tcg");
    assert_refused("-serial tcp:localhost:4444", "-serial");
    assert_refused("-numa node,memdev=nope", "nope");
    assert_refused("-m 64M -object memory-backend-ram,id=m0,size=32M "
                   "-numa node,memdev=m0", "should equal RAM size");
    assert_refused("-object memory-backend-file,id=m0,size=8M "
                   "-numa node,memdev=m0", "mem-path");
    assert_refused("stray", "stray");
}

static void write_file(const char *path, const void *buf, size_t len)
{
    g_autoptr(GError) err = NULL;
    if (!g_file_set_contents(path, buf, len, &err)) {
        g_error("%s", err->message);
    }
}

static void test_bad_kernel(void)
{
    g_autofree char *dir = g_dir_make_tmp("machine-test-XXXXXX", NULL);
    g_autofree char *guest = qtest_guest_path("a-b-sweep");
    gsize len;
    g_autofree char *elf = read_file(guest, &len);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
    Elf64_Phdr ph;
    g_autofree char *path = g_build_filename(dir, "k.elf", NULL);
    g_autofree char *args = g_strdup_printf("-m 16M -kernel %s", path);

    assert_refused("-kernel /nonexistent/k.elf", "/nonexistent/k.elf");

    write_file(path, "not an elf at all", 17);
    assert_refused(args, "not an ELF");

    /* The same guest, claiming to be for another CPU. */
    eh->e_machine = EM_386;
    write_file(path, elf, len);
    assert_refused(args, "not an x86-64 ELF");
    eh->e_machine = EM_X86_64;

    /* The same guest, loaded at 1 GiB: beyond 16 MiB of RAM. */
    memcpy(&ph, elf + eh->e_phoff, sizeof(ph));
    ph.p_paddr = 1024ull * MiB;
    memcpy(elf + eh->e_phoff, &ph, sizeof(ph));
    write_file(path, elf, len);
    assert_refused(args, "does not fit");

    g_unlink(path);
    g_rmdir(dir);
}

static long rss_kib(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    gsize len;
    g_autofree char *status = read_file(path, &len);
    const char *rss = strstr(status, "VmRSS:");
    g_assert_nonnull(rss);
    return strtol(rss + 6, NULL, 10);
}

static void test_64g_starts_at_once(void)
{
    gint64 start = g_get_monotonic_time();
    QTestState *qts = boot_guest("idle", "-m 64G -smp 4");
    gint64 elapsed_ms = (g_get_monotonic_time() - start) / 1000;

    assert_status(qts, "running");
    /*
     * Reserved, not touched: the resident size is the proof.  The time
     * bound is only a generous guard against a start-up that walks all
     * 64 GiB; how fast snapvm starts belongs in bench/, not here.
     */
    g_assert_cmpint(elapsed_ms, <, 30000);
    g_assert_cmpint(rss_kib(qtest_pid(qts)), <, 256 * 1024);
    g_autofree guint8 *top = sweep_read_guest_ram(qts,
                                                  64ull * 1024 * MiB - PAGE,
                                                  PAGE);
    g_assert_cmpuint(top[0], ==, 0);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/machine/boot/serial-output", test_boot_serial);
    g_test_add_func("/machine/runstate/stop-cont", test_stop_cont);
    g_test_add_func("/machine/runstate/prelaunch", test_prelaunch);
    g_test_add_func("/machine/runstate/stop-is-exact-smp2",
                    test_stop_is_exact);
    g_test_add_func("/machine/runstate/internal-error", test_internal_error);
    g_test_add_func("/machine/smp2", test_smp2);
    g_test_add_func("/machine/pmemsave/loaded-elf", test_pmemsave_elf);
    g_test_add_func("/machine/ram/numa-three-backends", test_numa_blocks);
    g_test_add_func("/machine/ram/64g-starts-at-once",
                    test_64g_starts_at_once);
    g_test_add_func("/machine/shutdown/debug-exit", test_debug_exit);
    g_test_add_func("/machine/shutdown/quit", test_quit_event);
    g_test_add_func("/machine/cmdline/bad-options", test_bad_options);
    g_test_add_func("/machine/cmdline/bad-kernel", test_bad_kernel);
    return g_test_run();
}
