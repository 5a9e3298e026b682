/*
 * The a-b-sweep consistency check for qtests (sweep-check.h).
 */
#include "sweep-check.h"

#include <inttypes.h>
#include <string.h>
#include <glib/gstdio.h>

guint8 *sweep_read_guest_ram(QTestState *qts, uint64_t addr, uint64_t size)
{
    g_autofree char *file = g_build_filename(qtest_tmpdir(qts), "pmem.bin",
                                             NULL);
    g_autofree char *quoted = qtest_json_quote(file);
    g_autoptr(GError) err = NULL;
    char *buf = NULL;
    gsize len;

    json_node_unref(qtest_qmp_assert_success(qts,
        "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": %" PRIu64
        ", \"size\": %" PRIu64 ", \"filename\": %s}}", addr, size, quoted));
    if (!g_file_get_contents(file, &buf, &len, &err)) {
        g_error("%s", err->message);
    }
    g_assert_cmpuint(len, ==, size);
    g_unlink(file);
    return (guint8 *)buf;
}

uint64_t sweep_cpu_rbx(const char *info_registers, unsigned index)
{
    /* "CPU#1" must not find "CPU#10"; HMP ends lines with "\r\n". */
    g_autofree char *header = g_strdup_printf("CPU#%u\r\n", index);
    const char *cpu = strstr(info_registers, header);
    g_assert_nonnull(cpu);
    const char *rbx = strstr(cpu, "RBX=");
    g_assert_nonnull(rbx);
    return g_ascii_strtoull(rbx + 4, NULL, 16);
}

char *sweep_check_image(const guint8 *mem, uint64_t ram_size,
                        const uint64_t *rbx, unsigned ncpus,
                        unsigned *steps)
{
    /* As a-b-sweep.S computes the slices. */
    uint64_t slice = (ram_size - SWEEP_BASE) / SWEEP_PAGE / ncpus *
                     SWEEP_PAGE;
    unsigned inner_steps = 0;

    for (unsigned i = 0; i < ncpus; i++) {
        uint64_t start = SWEEP_BASE + i * slice, end = start + slice;
        uint64_t at = rbx[i];

        if (at < start || at > end || (at - start) % SWEEP_PAGE) {
            /*
             * A vCPU caught in its set-up code, before its first store,
             * has not loaded RBX yet: its slice is still all zero.
             */
            bool untouched = true;
            for (uint64_t a = start; a < end && untouched; a += SWEEP_PAGE) {
                untouched = !mem[a - SWEEP_BASE];
            }
            if (untouched) {
                continue;
            }
            return g_strdup_printf("vCPU %u: RBX 0x%" PRIx64 " is not a "
                                   "page of its slice [0x%" PRIx64 ", 0x%"
                                   PRIx64 "]", i, at, start, end);
        }
        /* The value at and above RBX; below it, one more. */
        guint8 v = at < end ? mem[at - SWEEP_BASE]
                            : (guint8)(mem[start - SWEEP_BASE] - 1);
        for (uint64_t a = start; a < end; a += SWEEP_PAGE) {
            guint8 expect = a < at ? (guint8)(v + 1) : v;
            if (mem[a - SWEEP_BASE] != expect) {
                return g_strdup_printf("vCPU %u: page 0x%" PRIx64 " holds "
                                       "%u, expected %u (RBX 0x%" PRIx64 ")",
                                       i, a, mem[a - SWEEP_BASE], expect, at);
            }
        }
        inner_steps += at > start && at < end;
    }
    if (steps) {
        *steps = inner_steps;
    }
    return NULL;
}

unsigned sweep_assert_consistent(QTestState *qts, uint64_t ram_size,
                                 unsigned ncpus)
{
    g_autofree char *regs = qtest_hmp(qts, "info registers");
    g_autofree guint8 *mem = sweep_read_guest_ram(qts, SWEEP_BASE,
                                                  ram_size - SWEEP_BASE);
    g_autofree uint64_t *rbx = g_new(uint64_t, ncpus);
    unsigned steps;

    for (unsigned i = 0; i < ncpus; i++) {
        rbx[i] = sweep_cpu_rbx(regs, i);
    }
    g_autofree char *why = sweep_check_image(mem, ram_size, rbx, ncpus,
                                             &steps);
    if (why) {
        g_error("a-b-sweep image is not of one instant: %s", why);
    }
    return steps;
}
