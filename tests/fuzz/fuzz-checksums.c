/*
 * Fuzz target: a damaged checksummed stream never gives a silently
 * different guest.
 *
 * At start-up a small machine (4 MiB in two RAM blocks, anonymous and
 * memfd, two vCPUs, patterned pages among zero ones) is saved to a buffer
 * as a pre-copy does it: RAM PART sections, then a few pages sent again
 * in the END section, then devices, the "snapvm-checksums" section, EOF
 * and the JSON trailer.  Each input is a list of 4-byte edits applied to
 * a copy of that stream:
 *
 *   byte 0, top 2 bits    0, 1: XOR the byte at the offset with byte 3
 *                         2: overwrite it with byte 3
 *                         3: cut the stream at the offset
 *   byte 0 (low 6 bits), bytes 1-2: the offset, modulo the stream length
 *
 * and the result is loaded with qemu_loadvm_state() into a machine of
 * the same shape whose RAM and registers are set to other values first,
 * every byte (so that a page or register the load skipped shows; the
 * machine is made once, as making one per input was 3 times slower).  The oracle: either
 * the load is refused with a message, or the guest is byte-identical to
 * the source, RAM and registers.  A stream that loads into a different
 * guest is what the checksums exist to prevent; the target aborts on it.
 * (Some edits are harmless: a stale copy of a page that the END section
 * sends again, the JSON's whitespace.)
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "fuzz-targets.h"

#define EDIT_SIZE 4

static const MemoryBackendConfig two_nodes[] = {
    { .id = "m0", .kind = RAM_BACKEND_ANON, .size = 2 * MiB },
    { .id = "m1", .kind = RAM_BACKEND_MEMFD, .size = 2 * MiB },
};

static const MachineConfig layout = {
    .ram_size = 4 * MiB, .smp = 2, .numa_nodes = two_nodes,
    .nr_numa_nodes = G_N_ELEMENTS(two_nodes),
};

static MachineState *source, *target;
static GByteArray *stream;

/* Patterned pages, pages written then zeroed, pages never touched. */
static void fill_guest(MachineState *ms, unsigned seed)
{
    RAMBlock *rb;

    RAMBLOCK_FOREACH(ms, rb) {
        for (uint64_t p = 0; p < ramblock_pages(rb); p++) {
            uint8_t *host = rb->host + p * TARGET_PAGE_SIZE;

            if (p % 17 == seed % 17) {
                memset(host, (uint8_t)(p + seed) | 1, TARGET_PAGE_SIZE);
                host[TARGET_PAGE_SIZE - 1] = seed;
            } else if (p % 61 == 0) {
                /* Non-zero only in its last byte: the slow zero check. */
                host[TARGET_PAGE_SIZE - 1] = 0x5a ^ seed;
            }
        }
    }
    for (unsigned i = 0; i < machine_cpu_count(ms); i++) {
        X86CPURegs regs = { 0 };

        for (unsigned r = 0; r < CPU_NB_REGS; r++) {
            regs.regs[r] = 0x1000 * (i + 1) + r + seed;
        }
        regs.rip = 0x100000 + i + seed;
        regs.rflags = 0x2;
        regs.cr0 = 0x80000011;
        regs.efer = 0x500;
        g_assert_true(cpu_set_regs(machine_cpu(ms, i), &regs, &error_abort));
    }
}

static GByteArray *save_machine(MachineState *ms)
{
    GByteArray *buf = g_byte_array_new();
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));
    RAMSaveState *rs = ram_save_new(ms);
    bool done = false;

    g_assert_true(qemu_savevm_state_begin(f, ms, rs, &error_abort));
    while (!done) {
        g_assert_true(qemu_savevm_state_iterate(f, rs, 256 * KiB, &done,
                                                &error_abort));
    }
    /* Written meanwhile: sent again in the END section. */
    ram_save_mark_dirty(rs, machine_ram_block(ms, 0), 0, 3);
    ram_save_mark_dirty(rs, machine_ram_block(ms, 1), 7, 2);
    g_assert_true(qemu_savevm_state_complete(f, ms, rs, &error_abort));
    ram_save_free(rs);
    g_assert_true(qemu_fclose(f, &error_abort));
    return buf;
}

static void fuzz_checksums_init(void)
{
    if (source) {
        return;
    }
    source = machine_create(&layout, &error_abort);
    target = machine_create(&layout, &error_abort);
    fill_guest(source, 3);
    stream = save_machine(source);
    /* The section this target is about is there. */
    g_assert_nonnull(memmem(stream->data, stream->len, "snapvm-checksums",
                            strlen("snapvm-checksums")));
}

static bool same_guest(MachineState *a, MachineState *b)
{
    for (unsigned i = 0; i < machine_ram_block_count(a); i++) {
        RAMBlock *ra = machine_ram_block(a, i), *rb = machine_ram_block(b, i);

        if (memcmp(ra->host, rb->host, ra->used_length)) {
            return false;
        }
    }
    for (unsigned i = 0; i < machine_cpu_count(a); i++) {
        X86CPURegs ra, rb;

        cpu_get_regs(machine_cpu(a, i), &ra);
        cpu_get_regs(machine_cpu(b, i), &rb);
        if (memcmp(&ra, &rb, sizeof(ra))) {
            return false;
        }
    }
    return true;
}

/* @data's edits applied to a copy of the stream. */
static GByteArray *edited_stream(const uint8_t *data, size_t size)
{
    GByteArray *s = g_byte_array_new();

    g_byte_array_append(s, stream->data, stream->len);
    for (size_t i = 0; i + EDIT_SIZE <= size && s->len; i += EDIT_SIZE) {
        unsigned op = data[i] >> 6;
        size_t off = ((size_t)(data[i] & 0x3f) << 16 | data[i + 1] << 8 |
                      data[i + 2]) % s->len;

        if (op < 2) {
            s->data[off] ^= data[i + 3];
        } else if (op == 2) {
            s->data[off] = data[i + 3];
        } else {
            g_byte_array_set_size(s, off);
        }
    }
    return s;
}

bool fuzz_checksums_loaded(const uint8_t *data, size_t size)
{
    fuzz_checksums_init();

    GByteArray *bad = edited_stream(data, size);
    MachineState *dst = target;
    Error *err = NULL;
    RAMBlock *rb;

    /* Not the source's guest, in any byte. */
    RAMBLOCK_FOREACH(dst, rb) {
        memset(rb->host, 0xee, rb->used_length);
    }
    fill_guest(dst, 4);
    QEMUFile *f = qemu_file_new_input(mig_channel_new_buffer(bad));
    bool ok = qemu_loadvm_state(f, dst, &err);

    qemu_file_abort(f);
    g_assert_cmpuint(machine_ram_block_count(dst), ==,
                     machine_ram_block_count(source));
    g_assert_cmpuint(machine_cpu_count(dst), ==, machine_cpu_count(source));
    g_assert_cmpuint(machine_ram_size(dst), ==, machine_ram_size(source));
    if (ok) {
        g_assert_null(err);
        if (!same_guest(source, dst)) {
            /* abort(), not g_error(): libFuzzer keeps the input on SIGABRT. */
            fprintf(stderr, "fuzz-checksums: a damaged stream (%u of %u "
                    "bytes, %zu edits) loaded into a guest that differs "
                    "from the one saved\n", bad->len, stream->len,
                    size / EDIT_SIZE);
            abort();
        }
    } else {
        g_assert(err && *error_get_pretty(err));
        error_free(err);
    }
    g_byte_array_unref(bad);
    return ok;
}

int fuzz_checksums_one(const uint8_t *data, size_t size)
{
    fuzz_checksums_loaded(data, size);
    return 0;
}

#ifdef SNAPVM_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_checksums_one(data, size);
}
#endif
