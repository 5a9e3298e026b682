/*
 * Whole streams: a machine saved to a buffer loads into a second machine
 * with identical RAM and registers; a stream that is cut, flipped or for
 * another machine is refused with a message naming the offset, never a
 * crash.
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "migration/channel.h"
#include "migration/checksums.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"

#define TEST_RAM (8 * MiB)

static MachineState *test_machine(bool two_blocks)
{
    static const MemoryBackendConfig nodes[] = {
        { .id = "node0", .kind = RAM_BACKEND_ANON, .size = 6 * MiB },
        { .id = "node1", .kind = RAM_BACKEND_MEMFD, .size = 2 * MiB },
    };
    MachineConfig cfg = { .ram_size = TEST_RAM, .smp = 2 };

    if (two_blocks) {
        cfg.numa_nodes = nodes;
        cfg.nr_numa_nodes = 2;
    }
    return machine_create(&cfg, &error_abort);
}

/* Patterned pages, pages written then zeroed, pages never touched. */
static void fill_guest(MachineState *ms, unsigned seed)
{
    RAMBlock *rb;

    RAMBLOCK_FOREACH(ms, rb) {
        for (uint64_t p = 0; p < ramblock_pages(rb); p++) {
            uint8_t *host = rb->host + p * TARGET_PAGE_SIZE;
            if (p % 7 == 0) {
                memset(host, (uint8_t)(p + seed) | 1, TARGET_PAGE_SIZE);
                host[TARGET_PAGE_SIZE - 1] = seed;
            } else if (p % 11 == 0) {
                host[100] = 1;
                host[100] = 0;
            } else if (p % 13 == 0) {
                /* Non-zero only in its last word: the slow zero check. */
                host[TARGET_PAGE_SIZE - 1] = 0x5a;
            }
        }
    }
    for (unsigned i = 0; i < machine_cpu_count(ms); i++) {
        X86CPURegs regs = { 0 };
        for (unsigned r = 0; r < CPU_NB_REGS; r++) {
            regs.regs[r] = 0x1000 * (i + 1) + r + seed;
        }
        regs.rip = 0x100000 + i;
        regs.rflags = 0x2;
        regs.cr0 = 0x80000011;
        regs.efer = 0x500;
        g_assert_true(cpu_set_regs(machine_cpu(ms, i), &regs, &error_abort));
    }
}

static GByteArray *save_machine(MachineState *ms, uint64_t burst)
{
    GByteArray *buf = g_byte_array_new();
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));
    RAMSaveState *rs = ram_save_new(ms);
    RAMStats stats;
    bool done = false;
    unsigned parts = 0;

    g_assert_true(qemu_savevm_state_begin(f, ms, rs, &error_abort));
    while (!done) {
        g_assert_true(qemu_savevm_state_iterate(f, rs, burst, &done,
                                                &error_abort));
        parts++;
    }
    g_assert_cmpuint(ram_save_remaining(rs), ==, 0);
    /* Pages written meanwhile go out again in the END section. */
    ram_save_mark_dirty(rs, machine_ram_block(ms, 0), 0, 3);
    g_assert_cmpuint(ram_save_remaining(rs), ==, 3);
    g_assert_true(qemu_savevm_state_complete(f, ms, rs, &error_abort));
    ram_save_get_stats(rs, &stats);
    g_assert_cmpuint(stats.normal + stats.duplicate, ==,
                     TEST_RAM / TARGET_PAGE_SIZE + 3);
    g_assert_cmpuint(stats.iterations, >=, parts - 1);
    ram_save_free(rs);
    g_assert_true(qemu_fclose(f, &error_abort));
    return buf;
}

static bool load_machine(MachineState *ms, const uint8_t *data, size_t len,
                         Error **errp)
{
    g_autoptr(GByteArray) copy = g_byte_array_new();
    QEMUFile *f;
    bool ok;

    g_byte_array_append(copy, data, len);
    f = qemu_file_new_input(mig_channel_new_buffer(copy));
    ok = qemu_loadvm_state(f, ms, errp);
    qemu_file_abort(f);
    return ok;
}

static void assert_same_guest(MachineState *a, MachineState *b)
{
    g_assert_cmpuint(machine_ram_block_count(a), ==,
                     machine_ram_block_count(b));
    for (unsigned i = 0; i < machine_ram_block_count(a); i++) {
        RAMBlock *ra = machine_ram_block(a, i), *rb = machine_ram_block(b, i);
        g_assert_cmpuint(ra->used_length, ==, rb->used_length);
        g_assert_true(memcmp(ra->host, rb->host, ra->used_length) == 0);
    }
    for (unsigned i = 0; i < machine_cpu_count(a); i++) {
        X86CPURegs ra, rb;
        cpu_get_regs(machine_cpu(a, i), &ra);
        cpu_get_regs(machine_cpu(b, i), &rb);
        g_assert_cmpmem(&ra, sizeof(ra), &rb, sizeof(rb));
    }
}

static void round_trip(bool two_blocks, uint64_t burst)
{
    MachineState *src = test_machine(two_blocks);
    MachineState *dst = test_machine(two_blocks);
    g_autoptr(GByteArray) stream = NULL;

    fill_guest(src, 3);
    /* The target holds other data that the load must overwrite. */
    fill_guest(dst, 9);
    memset(machine_ram_block(dst, 0)->host + 11 * TARGET_PAGE_SIZE, 0xee,
           TARGET_PAGE_SIZE);
    stream = save_machine(src, burst);
    /* Zero pages travel as 9 bytes, not 4 KiB. */
    g_assert_cmpuint(stream->len, <, TEST_RAM / 4);
    g_assert_true(load_machine(dst, stream->data, stream->len,
                               &error_abort));
    assert_same_guest(src, dst);
    machine_free(src);
    machine_free(dst);
}

static void test_round_trip_one_block(void)
{
    round_trip(false, 64 * KiB);
}

static void test_round_trip_two_blocks(void)
{
    round_trip(true, 1 * MiB);
}

typedef struct StreamFixture {
    MachineState *src, *dst;
    GByteArray *stream;
} StreamFixture;

static void fixture_setup(StreamFixture *fx, gconstpointer data)
{
    fx->src = test_machine(false);
    fx->dst = test_machine(false);
    fill_guest(fx->src, 5);
    fx->stream = save_machine(fx->src, UINT64_MAX);
}

static void fixture_teardown(StreamFixture *fx, gconstpointer data)
{
    g_byte_array_unref(fx->stream);
    machine_free(fx->src);
    machine_free(fx->dst);
}

/* Load @data and expect a refusal mentioning @needle and an offset. */
static void expect_refusal(StreamFixture *fx, const uint8_t *data,
                           size_t len, const char *needle)
{
    g_autoptr(Error) err = NULL;

    if (load_machine(fx->dst, data, len, &err)) {
        g_error("a stream of %zu bytes loaded; expected '%s'", len, needle);
    }
    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), "offset") ||
        (needle && !strstr(error_get_pretty(err), needle))) {
        g_error("message '%s' lacks 'offset' or '%s'",
                error_get_pretty(err), needle ? needle : "");
    }
}

static void test_truncated(StreamFixture *fx, gconstpointer data)
{
    size_t len = fx->stream->len;

    /* Every cut in the first 2 KiB, then every 1021st byte, then the tail. */
    for (size_t cut = 0; cut < len; cut++) {
        if (cut < 2048 || cut % 1021 == 0 || cut + 600 > len) {
            expect_refusal(fx, fx->stream->data, cut, NULL);
        }
    }
    g_assert_true(load_machine(fx->dst, fx->stream->data, len,
                               &error_abort));
    assert_same_guest(fx->src, fx->dst);
}

/* Offsets in a one-block stream from save_machine(). */
enum {
    OFF_VERSION = 4,
    OFF_MACHINE = 13,               /* "snapvm-x86_64" */
    OFF_RAM_ID = 27,
    OFF_RAM_VERSION = 39,
    OFF_BLOCK_NAME = 52,            /* "pc.ram" */
    OFF_BLOCK_SIZE = 58,
    OFF_START_FOOTER = 74,
};

/*
 * Every flip is refused (structure by the parser; page contents, device
 * fields and the trailer by the checksums), or changes nothing the guest
 * would see: a page this pre-copy stream sends twice counts only in its
 * last copy.  Never a crash, a hang or a guest on wrong memory.
 */
static void test_bit_flips(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    size_t len = fx->stream->len;
    unsigned refused = 0, tried = 0, harmless = 0;

    g_byte_array_append(bad, fx->stream->data, len);
    /* Every bit of the first 256 bytes, then one bit every ~4 KiB. */
    for (size_t off = 0; off < len; off += off < 256 ? 1 : 4099) {
        for (unsigned bit = off < 256 ? 0 : off % 8; bit < 8;
             bit += off < 256 ? 1 : 8) {
            g_autoptr(Error) err = NULL;

            bad->data[off] ^= 1u << bit;
            if (!load_machine(fx->dst, bad->data, len, &err)) {
                g_assert_nonnull(strstr(error_get_pretty(err), "offset"));
                refused++;
            } else {
                /* A stale copy of page 0, 1 or 2: the guest is exact. */
                assert_same_guest(fx->src, fx->dst);
                harmless++;
            }
            tried++;
            bad->data[off] ^= 1u << bit;
        }
    }
    g_assert_cmpuint(refused + harmless, ==, tried);
    g_test_message("%u of %u flips refused, %u in a stale page copy",
                   refused, tried, harmless);
}


static void patch(StreamFixture *fx, size_t off, const void *bytes,
                  size_t n, const char *needle)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();

    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    memcpy(bad->data + off, bytes, n);
    expect_refusal(fx, bad->data, bad->len, needle);
}

static void test_wrong_fields(StreamFixture *fx, gconstpointer data)
{
    g_assert_cmpmem(fx->stream->data + OFF_MACHINE, 13, "snapvm-x86_64", 13);
    g_assert_cmpmem(fx->stream->data + OFF_BLOCK_NAME, 6, "pc.ram", 6);
    patch(fx, 0, "QEVN", 4, "magic");
    patch(fx, OFF_VERSION, "\0\0\0\2", 4, "version 2");
    patch(fx, OFF_MACHINE, "pc-i440fx-9.1", 13, "machine type 'pc-i440fx-9.1'");
    patch(fx, OFF_RAM_VERSION, "\0\0\0\5", 4, "version 5");
    patch(fx, OFF_BLOCK_NAME, "pc.rom", 6, "'pc.rom'");
    /* Size 4 MiB instead of 8: the list no longer adds up to the total. */
    patch(fx, OFF_BLOCK_SIZE, "\0\0\0\0\0\x40\0\0", 8, "'pc.ram'");
    patch(fx, OFF_RAM_ID, "\0\0\0\x09", 4, "footer");
    patch(fx, OFF_START_FOOTER, "\x7d", 1, "footer");
    /* The first PART section names an id nothing opened. */
    patch(fx, OFF_START_FOOTER + 5 + 1, "\0\0\0\x05", 4, "section id 5");
    patch(fx, OFF_START_FOOTER + 5, "\x09", 1, "section type 0x09");
}

static void test_trailer(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    const uint8_t *json = memchr(fx->stream->data + fx->stream->len - 4096,
                                 '{', 4096);
    size_t json_off = json - fx->stream->data;

    g_assert_cmpuint(fx->stream->data[json_off - 5], ==, 0x06);
    g_assert_cmpuint(fx->stream->data[json_off - 6], ==, 0x00);
    /* Garbage after the description. */
    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    g_byte_array_append(bad, (const guint8 *)"x", 1);
    expect_refusal(fx, bad->data, bad->len, "after the JSON description");
    /* Not JSON. */
    patch(fx, json_off, "[", 1, "JSON description");
    /* A length far beyond the data. */
    patch(fx, json_off - 4, "\x00\xff\xff\xff", 4, "JSON description");
}

/* Hand-made RAM sections reusing the real header. */
static void test_bad_pages(StreamFixture *fx, gconstpointer data)
{
    static const struct {
        uint64_t item;
        const char *needle;
    } cases[] = {
        { TEST_RAM | RAM_SAVE_FLAG_ZERO, "beyond the end of RAM block" },
        { 0x1000 | 0x40 | RAM_SAVE_FLAG_PAGE, "unknown RAM flags 0x40" },
        { 0x1000 | RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_PAGE, "invalid RAM" },
        { 0x1000 | RAM_SAVE_FLAG_MEM_SIZE, "invalid RAM" },
    };

    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autoptr(GByteArray) bad = g_byte_array_new();
        QEMUFile *f;

        g_byte_array_append(bad, fx->stream->data, OFF_START_FOOTER + 5);
        f = qemu_file_new_output(mig_channel_new_buffer(bad));
        qemu_put_byte(f, 0x02);             /* PART */
        qemu_put_be32(f, 0);
        qemu_put_be64(f, cases[i].item);
        qemu_put_byte(f, 6);
        qemu_put_buffer(f, "pc.ram", 6);
        qemu_put_byte(f, 0);
        qemu_put_be64(f, RAM_SAVE_FLAG_EOS);
        g_assert_true(qemu_fclose(f, &error_abort));
        expect_refusal(fx, bad->data, bad->len, cases[i].needle);
    }
}

typedef struct DumpCounter {
    uint64_t pages, zeros;
    uint8_t *image;             /* the block as the stream rebuilds it */
} DumpCounter;

static bool count_page(void *opaque, const StreamRAMBlockInfo *block,
                       unsigned block_index, uint64_t offset,
                       const uint8_t *data, Error **errp)
{
    DumpCounter *c = opaque;

    if (data) {
        memcpy(c->image + offset, data, TARGET_PAGE_SIZE);
        c->pages++;
    } else {
        memset(c->image + offset, 0, TARGET_PAGE_SIZE);
        c->zeros++;
    }
    return true;
}

/* Without a machine, with layouts from the trailer: same verdicts. */
static void test_inspect(StreamFixture *fx, gconstpointer data)
{
    const uint8_t *json = memchr(fx->stream->data + fx->stream->len - 4096,
                                 '{', 4096);
    size_t json_len = fx->stream->data + fx->stream->len - json;
    g_autoptr(VMStateLayout) layout =
        vmstate_layout_from_json((const char *)json, json_len, &error_abort);
    g_autofree uint8_t *image = g_malloc0(TEST_RAM);
    DumpCounter counter = { .image = image };
    StreamInspector insp = {
        .devices = vmstate_layout_registry(layout),
        .ram_page = count_page, .opaque = &counter,
    };
    StreamSummary sum;
    g_autoptr(GByteArray) copy = g_byte_array_new();
    QEMUFile *f;

    g_byte_array_append(copy, fx->stream->data, fx->stream->len);
    f = qemu_file_new_input(mig_channel_new_buffer(copy));
    stream_summary_init(&sum);
    g_assert_true(qemu_loadvm_inspect(f, &insp, &sum, &error_abort));
    qemu_file_abort(f);
    g_assert_true(sum.complete);
    g_assert_cmpstr(sum.machine_type, ==, SNAPVM_MACHINE_TYPE);
    g_assert_cmpuint(sum.ram_blocks->len, ==, 1);
    g_assert_cmpuint(sum.ram_total, ==, TEST_RAM);
    g_assert_cmpuint(sum.pages, ==, counter.pages);
    g_assert_cmpuint(sum.zero_pages, ==, counter.zeros);
    g_assert_cmpuint(sum.pages + sum.zero_pages, ==,
                     TEST_RAM / TARGET_PAGE_SIZE + 3);
    /* Two vCPUs, the serial port and the board. */
    g_assert_cmpuint(sum.devices->len, ==, 4);
    g_assert_cmpuint(sum.stream_bytes, ==, fx->stream->len);
    g_assert_true(memcmp(image, machine_ram_block(fx->src, 0)->host,
                         TEST_RAM) == 0);
    stream_summary_clear(&sum);

    /* Cut short: refused, and the summary says how far it got. */
    f = qemu_file_new_input(mig_channel_new_buffer(copy));
    g_byte_array_set_size(copy, copy->len / 2);
    stream_summary_init(&sum);
    g_assert_false(qemu_loadvm_inspect(f, &insp, &sum, NULL));
    g_assert_false(sum.complete);
    g_assert_cmpuint(sum.ram_blocks->len, ==, 1);
    qemu_file_abort(f);
    stream_summary_clear(&sum);
}

/* ---- checksums ---- */

/* A clean read of @fx's stream without a machine: where things are. */
static void inspect_stream(StreamFixture *fx, StreamSummary *sum)
{
    const uint8_t *json = memchr(fx->stream->data + fx->stream->len - 4096,
                                 '{', 4096);
    g_autoptr(VMStateLayout) layout =
        vmstate_layout_from_json((const char *)json,
                                 fx->stream->data + fx->stream->len - json,
                                 &error_abort);
    StreamInspector insp = { .devices = vmstate_layout_registry(layout) };
    g_autoptr(GByteArray) copy = g_byte_array_new();
    QEMUFile *f;

    g_byte_array_append(copy, fx->stream->data, fx->stream->len);
    f = qemu_file_new_input(mig_channel_new_buffer(copy));
    stream_summary_init(sum);
    g_assert_true(qemu_loadvm_inspect(f, &insp, sum, &error_abort));
    qemu_file_abort(f);
}

/*
 * The offset of the last page item for guest offset @addr of the one
 * block, whose kind (RAM_SAVE_FLAG_PAGE or _ZERO) is @kind; *@content is
 * where its 4 KiB (or fill byte) start.
 */
static size_t find_page_item(StreamFixture *fx, uint64_t addr,
                             unsigned kind, size_t *content)
{
    size_t found = 0;

    for (size_t off = OFF_START_FOOTER + 5; off + 8 < fx->stream->len;
         off++) {
        uint64_t v;

        memcpy(&v, fx->stream->data + off, sizeof(v));
        v = GUINT64_FROM_BE(v);

        if ((v & TARGET_PAGE_MASK) == addr &&
            (v & ~TARGET_PAGE_MASK & ~RAM_SAVE_FLAG_CONTINUE) == kind) {
            found = off;
            *content = off + 8 + (v & RAM_SAVE_FLAG_CONTINUE ? 0 : 1 + 6);
        }
    }
    g_assert_cmpuint(found, !=, 0);
    return found;
}

static void expect_message(StreamFixture *fx, const GByteArray *bad,
                           const char *needle)
{
    g_autoptr(Error) err = NULL;

    g_assert_false(load_machine(fx->dst, bad->data, bad->len, &err));
    if (!strstr(error_get_pretty(err), needle)) {
        g_error("message '%s' lacks '%s'", error_get_pretty(err), needle);
    }
}

/* A bit of page 700 (in the second 2 MiB region) flipped: that region. */
static void test_checksum_ram_page(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    uint64_t addr = 700 * TARGET_PAGE_SIZE;
    size_t content;

    find_page_item(fx, addr, RAM_SAVE_FLAG_PAGE, &content);
    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    bad->data[content + 1234] ^= 0x10;
    expect_message(fx, bad, "RAM block 'pc.ram', bytes 0x200000 to 0x3fffff "
                   "(2 MiB region 1)");
}

/*
 * Zero page 1 sent as page 2 (also zero): the guest's memory is the same,
 * the stream is not what was written.
 */
static void test_checksum_framing(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    size_t content, item = find_page_item(fx, 1 * TARGET_PAGE_SIZE,
                                          RAM_SAVE_FLAG_ZERO, &content);

    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    bad->data[item + 6] ^= 0x30;    /* 0x1000 -> 0x2000 */
    expect_message(fx, bad, "the stream's framing");
}

/*
 * A zero-page marker turned into a page: its "content" swallows the items
 * after it, and the refusal names the marker's item as the one before.
 */
static void test_checksum_zero_marker(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    size_t content, item = find_page_item(fx, 5 * TARGET_PAGE_SIZE,
                                          RAM_SAVE_FLAG_ZERO, &content);
    g_autofree char *needle = g_strdup_printf(
        "the item before it, at offset %zu, is a PAGE (4096 bytes) item for "
        "0x5000", item);

    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    bad->data[item + 7] ^= RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_PAGE;
    expect_message(fx, bad, needle);
}

/* A field of vCPU 1's state: that device section, with its offsets. */
static void test_checksum_device(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_autofree char *needle = NULL;
    const StreamDeviceInfo *cpu1 = NULL;
    StreamSummary sum;

    inspect_stream(fx, &sum);
    for (unsigned i = 0; i < sum.devices->len; i++) {
        const StreamDeviceInfo *d = &g_array_index(sum.devices,
                                                   StreamDeviceInfo, i);
        if (!strcmp(d->idstr, "cpu") && d->instance_id == 1) {
            cpu1 = d;
        }
    }
    g_assert_nonnull(cpu1);
    g_assert_true(sum.checksums);
    needle = g_strdup_printf("device state of 'cpu' instance 1 (section id "
                             "%u, offsets %" PRIu64 " to %" PRIu64 ")",
                             cpu1->section_id, cpu1->offset,
                             cpu1->offset + cpu1->size - 1);
    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    /* The header is 1 + 4 + 1 + 3 ("cpu") + 4 + 4 bytes; then rax. */
    bad->data[cpu1->offset + 17 + 7] ^= 0x04;
    expect_message(fx, bad, needle);
    stream_summary_clear(&sum);
}

/* A field name in the trailer: still JSON, still a layout, not ours. */
static void test_checksum_trailer(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    const uint8_t *json = memchr(fx->stream->data + fx->stream->len - 4096,
                                 '{', 4096);
    size_t json_off = json - fx->stream->data;
    const char *rax = g_strstr_len((const char *)json,
                                   fx->stream->data + fx->stream->len - json,
                                   "\"rax\"");
    g_autofree char *needle = g_strdup_printf("JSON description at offset "
                                              "%zu", json_off - 5);

    g_assert_nonnull(rax);
    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    bad->data[(const uint8_t *)rax - fx->stream->data + 2] = 'b';
    expect_message(fx, bad, needle);
    expect_message(fx, bad, "does not match its checksum");
}

/* The section's own bytes: its CRC catches a change to a value in it. */
static void test_checksum_section(StreamFixture *fx, gconstpointer data)
{
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_autofree char *needle = NULL;
    StreamSummary sum;

    inspect_stream(fx, &sum);
    needle = g_strdup_printf("checksums section at offset %" PRIu64 " is "
                             "damaged", sum.checksums_offset);
    g_byte_array_append(bad, fx->stream->data, fx->stream->len);
    /* Its header: 1 + 4 + 1 + 16 + 4 + 4 bytes; framing_crc is 8 on. */
    bad->data[sum.checksums_offset + 30 + 8 + 3] ^= 1;
    expect_message(fx, bad, needle);
    stream_summary_clear(&sum);
}

/* A stream from before checksums (or x-checksums off) still loads. */
static void test_checksum_absent(void)
{
    MachineState *src = test_machine(true);
    MachineState *dst = test_machine(true);
    g_autoptr(GByteArray) buf = g_byte_array_new();
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));
    RAMSaveState *rs = ram_save_new(src);
    bool done = false;

    fill_guest(src, 7);
    ram_save_disable_checksums(rs);
    g_assert_true(qemu_savevm_state_begin(f, src, rs, &error_abort));
    while (!done) {
        g_assert_true(qemu_savevm_state_iterate(f, rs, UINT64_MAX, &done,
                                                &error_abort));
    }
    g_assert_true(qemu_savevm_state_complete(f, src, rs, &error_abort));
    ram_save_free(rs);
    g_assert_true(qemu_fclose(f, &error_abort));
    g_assert_null(g_strstr_len((const char *)buf->data, buf->len,
                               CHECKSUMS_SECTION_IDSTR));
    g_assert_true(load_machine(dst, buf->data, buf->len, &error_abort));
    assert_same_guest(src, dst);
    machine_free(src);
    machine_free(dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/stream/round-trip/one-block",
                    test_round_trip_one_block);
    g_test_add_func("/stream/round-trip/two-blocks-anon-memfd",
                    test_round_trip_two_blocks);
#define ADD(path, fn) \
    g_test_add(path, StreamFixture, NULL, fixture_setup, fn, \
               fixture_teardown)
    ADD("/stream/refused/truncated-anywhere", test_truncated);
    ADD("/stream/refused/bit-flips", test_bit_flips);
    ADD("/stream/refused/wrong-header-fields", test_wrong_fields);
    ADD("/stream/refused/bad-trailer", test_trailer);
    ADD("/stream/refused/bad-pages", test_bad_pages);
    ADD("/stream/inspect-without-machine", test_inspect);
    ADD("/stream/checksums/ram-page-names-its-region",
        test_checksum_ram_page);
    ADD("/stream/checksums/framing", test_checksum_framing);
    ADD("/stream/checksums/zero-marker-made-a-page",
        test_checksum_zero_marker);
    ADD("/stream/checksums/device-field-names-its-section",
        test_checksum_device);
    ADD("/stream/checksums/trailer", test_checksum_trailer);
    ADD("/stream/checksums/own-section-damaged", test_checksum_section);
    g_test_add_func("/stream/checksums/absent-still-loads",
                    test_checksum_absent);
    return g_test_run();
}
