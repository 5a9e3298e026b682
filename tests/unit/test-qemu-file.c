/*
 * QEMUFile: what goes in comes out byte for byte, big pages go out in few
 * large writes, and the first error sticks.
 */
#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"

/* A channel that accepts @budget bytes, then fails every write. */
typedef struct FailingChannel {
    MigChannel parent;
    GByteArray *written;
    size_t budget;
    unsigned writes;
    unsigned failures;
    size_t max_iovcnt;
} FailingChannel;

static bool failing_writev(MigChannel *ch, const struct iovec *iov,
                           int iovcnt, Error **errp)
{
    FailingChannel *fc = container_of(ch, FailingChannel, parent);

    fc->writes++;
    fc->max_iovcnt = MAX(fc->max_iovcnt, (size_t)iovcnt);
    for (int i = 0; i < iovcnt; i++) {
        if (fc->written->len + iov[i].iov_len > fc->budget) {
            fc->failures++;
            error_setg(errp, "injected failure");
            return false;
        }
        g_byte_array_append(fc->written, iov[i].iov_base, iov[i].iov_len);
    }
    return true;
}

static ssize_t failing_read(MigChannel *ch, void *buf, size_t len,
                            Error **errp)
{
    error_setg(errp, "not readable");
    return -1;
}

static bool failing_close(MigChannel *ch, Error **errp)
{
    g_free(ch);
    return true;
}

static void failing_abort(MigChannel *ch)
{
    g_free(ch);
}

static const MigChannelOps failing_ops = {
    .writev_all = failing_writev,
    .read = failing_read,
    .close = failing_close,
    .abort = failing_abort,
};

static FailingChannel *failing_channel_new(GByteArray *written, size_t budget)
{
    FailingChannel *fc = g_new0(FailingChannel, 1);

    fc->parent.ops = &failing_ops;
    fc->written = written;
    fc->budget = budget;
    return fc;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 12));
    }
}

static void test_round_trip(void)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    const size_t npages = 1500;     /* more pages than one writev takes */
    g_autofree uint8_t *pages = g_malloc(npages * 4096);
    g_autofree uint8_t *back = g_malloc(npages * 4096);
    uint8_t small[100];
    Error *err = NULL;
    QEMUFile *f;
    uint64_t expect;

    fill_pattern(pages, npages * 4096, 1);
    fill_pattern(small, sizeof(small), 2);
    f = qemu_file_new_output(mig_channel_new_buffer(buf));
    qemu_put_byte(f, 0xab);
    qemu_put_be16(f, 0x1234);
    qemu_put_be32(f, 0xdeadbeef);
    qemu_put_be64(f, 0x0102030405060708ULL);
    for (size_t i = 0; i < npages; i++) {
        qemu_put_be64(f, i);
        qemu_put_buffer_async(f, pages + i * 4096, 4096);
    }
    qemu_put_buffer(f, small, sizeof(small));
    expect = 1 + 2 + 4 + 8 + npages * (8 + 4096) + sizeof(small);
    g_assert_cmpuint(qemu_file_transferred(f), ==, expect);
    g_assert_true(qemu_fclose(f, &err));
    g_assert_null(err);
    g_assert_cmpuint(buf->len, ==, expect);
    /* Big-endian on the wire. */
    g_assert_cmpmem(buf->data, 15, "\xab\x12\x34\xde\xad\xbe\xef"
                    "\x01\x02\x03\x04\x05\x06\x07\x08", 15);

    f = qemu_file_new_input(mig_channel_new_buffer(buf));
    g_assert_cmpuint(qemu_get_byte(f), ==, 0xab);
    g_assert_cmpuint(qemu_get_be16(f), ==, 0x1234);
    g_assert_cmpuint(qemu_get_be32(f), ==, 0xdeadbeef);
    g_assert_cmphex(qemu_get_be64(f), ==, 0x0102030405060708ULL);
    for (size_t i = 0; i < npages; i++) {
        g_assert_cmpuint(qemu_get_be64(f), ==, i);
        g_assert_cmpuint(qemu_get_buffer(f, back + i * 4096, 4096), ==, 4096);
    }
    g_assert_cmpmem(back, npages * 4096, pages, npages * 4096);
    qemu_get_buffer(f, back, sizeof(small));
    g_assert_cmpmem(back, sizeof(small), small, sizeof(small));
    g_assert_true(qemu_file_at_eof(f));
    g_assert_cmpint(qemu_file_get_error(f), ==, 0);
    g_assert_cmpuint(qemu_file_transferred(f), ==, expect);
    g_assert_true(qemu_fclose(f, &error_abort));
}

/* Pages queued without copying leave in writes of many pages. */
static void test_large_writes(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    FailingChannel *fc = failing_channel_new(out, SIZE_MAX);
    g_autofree uint8_t *pages = g_malloc(2048 * 4096);
    QEMUFile *f = qemu_file_new_output(&fc->parent);
    unsigned writes;

    fill_pattern(pages, 2048 * 4096, 3);
    for (unsigned i = 0; i < 2048; i++) {
        qemu_put_be64(f, i);
        qemu_put_buffer_async(f, pages + i * 4096, 4096);
    }
    qemu_fflush(f);
    writes = fc->writes;
    g_assert_true(qemu_fclose(f, &error_abort));
    /* 2048 pages with headers: 4096 iovecs, so 4 writes of 512 pages. */
    g_assert_cmpuint(writes, <=, 5);
    g_assert_cmpuint(out->len, ==, 2048 * (8 + 4096));
}

static void test_sticky_error(void)
{
    static const size_t budgets[] = { 0, 1, 7, 4095, 4096, 65536, 300000 };

    for (unsigned b = 0; b < ARRAY_SIZE(budgets); b++) {
        g_autoptr(GByteArray) out = g_byte_array_new();
        FailingChannel *fc = failing_channel_new(out, budgets[b]);
        g_autofree uint8_t *page = g_malloc(4096);
        QEMUFile *f = qemu_file_new_output(&fc->parent);
        g_autoptr(Error) err = NULL;
        unsigned failures;

        fill_pattern(page, 4096, b);
        for (unsigned i = 0; i < 200; i++) {
            qemu_put_be64(f, i);
            qemu_put_buffer(f, page, 4096);
            qemu_put_buffer_async(f, page, 4096);
        }
        qemu_fflush(f);
        qemu_put_be32(f, 1);
        g_assert_false(qemu_fflush(f));
        failures = fc->failures;
        /* One failed write; nothing was attempted after it. */
        g_assert_cmpuint(failures, ==, 1);
        g_assert_cmpint(qemu_file_get_error(f), <, 0);
        g_assert_cmpint(qemu_file_get_error_obj(f, &err), <, 0);
        g_assert_nonnull(strstr(error_get_pretty(err), "injected failure"));
        g_assert_nonnull(strstr(error_get_pretty(err), "at offset"));
        g_assert_cmpuint(out->len, <=, budgets[b]);
        error_free(err);
        err = NULL;
        g_assert_false(qemu_fclose(f, &err));
        g_assert_nonnull(err);
    }
}

static void test_truncated_read(void)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    g_autoptr(Error) err = NULL;
    QEMUFile *f;

    g_byte_array_append(buf, (const guint8 *)"\x00\x00\x00\x2a\x01\x02", 6);
    f = qemu_file_new_input(mig_channel_new_buffer(buf));
    g_assert_cmpuint(qemu_get_be32(f), ==, 42);
    g_assert_cmpuint(qemu_get_be64(f), ==, 0);
    g_assert_cmpint(qemu_file_get_error_obj(f, &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "unexpected end of stream at offset 6");
    /* Sticky: later reads return zero and keep the first error. */
    g_assert_cmpuint(qemu_get_byte(f), ==, 0);
    g_assert_false(qemu_file_at_eof(f));
    qemu_file_abort(f);
}

static void test_cancel(void)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    g_autoptr(Error) err = NULL;
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));

    qemu_put_be32(f, 1);
    qemu_file_cancel(f);
    g_assert_false(qemu_fflush(f));
    g_assert_false(qemu_fclose(f, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "cancelled"));
    g_assert_cmpuint(buf->len, ==, 0);
}

/*
 * The digest is the CRC32C of every byte put or got but the payloads, on
 * both sides alike, across buffer flushes, refills and the big-read path:
 * what docs/interop/snapshot-format.md promises a third-party checker.
 */
static void test_digest_leaves_out_payloads(void)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    g_autoptr(GByteArray) plain = g_byte_array_new();
    g_autofree uint8_t *a = g_malloc(100), *b = g_malloc(200 * 1024);
    g_autofree uint8_t *page = g_malloc(TARGET_PAGE_SIZE);
    g_autofree uint8_t *back = g_malloc(200 * 1024);
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));
    uint32_t saved, loaded;

    for (size_t i = 0; i < 200 * 1024; i++) {
        b[i] = i * 7 + (i >> 9);
        back[i] = 0;
    }
    memset(a, 0xa5, 100);
    memset(page, 0x3c, TARGET_PAGE_SIZE);
    qemu_put_be32(f, 1);                    /* before the start: not in */
    qemu_file_digest_start(f);
    qemu_put_buffer(f, a, 100);
    qemu_put_payload(f, page, TARGET_PAGE_SIZE, false);
    qemu_put_buffer(f, b, 200 * 1024);      /* flushes on the way */
    qemu_put_payload(f, page, TARGET_PAGE_SIZE, true);
    qemu_put_byte(f, 0x42);
    saved = qemu_file_digest_take(f);
    g_assert_true(qemu_fclose(f, &error_abort));

    g_byte_array_append(plain, a, 100);
    g_byte_array_append(plain, b, 200 * 1024);
    g_byte_array_append(plain, (const guint8 *)"\x42", 1);
    g_assert_cmphex(saved, ==, crc32c(plain->data, plain->len));

    f = qemu_file_new_input(mig_channel_new_buffer(buf));
    g_assert_cmpuint(qemu_get_be32(f), ==, 1);
    qemu_file_digest_start(f);
    qemu_get_buffer(f, back, 100);
    qemu_get_payload(f, page, TARGET_PAGE_SIZE);
    qemu_get_buffer(f, back, 200 * 1024);   /* mostly past the buffer */
    qemu_get_payload(f, page, TARGET_PAGE_SIZE);
    g_assert_cmpuint(qemu_get_byte(f), ==, 0x42);
    loaded = qemu_file_digest_take(f);
    g_assert_true(memcmp(back, b, 200 * 1024) == 0);
    g_assert_cmphex(loaded, ==, saved);
    qemu_file_abort(f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qemu-file/round-trip", test_round_trip);
    g_test_add_func("/qemu-file/digest-leaves-out-payloads",
                    test_digest_leaves_out_payloads);
    g_test_add_func("/qemu-file/pages-go-out-in-large-writes",
                    test_large_writes);
    g_test_add_func("/qemu-file/first-error-sticks", test_sticky_error);
    g_test_add_func("/qemu-file/truncated-read-names-offset",
                    test_truncated_read);
    g_test_add_func("/qemu-file/cancel-fails-io", test_cancel);
    return g_test_run();
}
