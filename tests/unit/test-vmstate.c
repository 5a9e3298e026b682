/*
 * Device state on the wire: fields big-endian in order, versions checked,
 * post_load may refuse, and the JSON description rebuilds the layout.
 */
#include "qemu/osdep.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"

typedef struct __attribute__((packed)) TestDev {
    uint8_t a;
    uint64_t d;             /* unaligned on purpose */
    uint16_t b;
    uint32_t c;
    uint8_t blob[5];
    bool refuse;            /* not migrated */
    unsigned pre_saves;     /* not migrated */
} TestDev;

static const VMStateField testdev_fields[] = {
    VMSTATE_UINT8(a, TestDev),
    VMSTATE_UINT16(b, TestDev),
    VMSTATE_UINT32(c, TestDev),
    VMSTATE_UINT64(d, TestDev),
    VMSTATE_BUFFER(blob, TestDev),
    VMSTATE_END_OF_LIST()
};

static void testdev_pre_save(void *opaque)
{
    ((TestDev *)opaque)->pre_saves++;
}

static bool testdev_post_load(void *opaque, uint32_t version_id, Error **errp)
{
    TestDev *t = opaque;

    if (t->c == 0xbad) {
        error_setg(errp, "c may not be 0xbad");
        return false;
    }
    return true;
}

static const VMStateDescription vmstate_testdev = {
    .name = "testdev",
    .version_id = 3,
    .minimum_version_id = 2,
    .pre_save = testdev_pre_save,
    .post_load = testdev_post_load,
    .fields = testdev_fields,
};

static const uint8_t testdev_wire[] = {
    0x11,
    0x22, 0x33,
    0x44, 0x55, 0x66, 0x77,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    'h', 'e', 'l', 'l', 'o',
};

static GByteArray *save_testdev(TestDev *t)
{
    GByteArray *buf = g_byte_array_new();
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));

    vmstate_save_state(f, &vmstate_testdev, t);
    g_assert_true(qemu_fclose(f, &error_abort));
    return buf;
}

static bool load_testdev(GByteArray *buf, TestDev *t, uint32_t version,
                         Error **errp)
{
    QEMUFile *f = qemu_file_new_input(mig_channel_new_buffer(buf));
    bool ok = vmstate_load_state(f, &vmstate_testdev, t, version, errp);

    qemu_file_abort(f);
    return ok;
}

static void test_round_trip(void)
{
    TestDev src = { .a = 0x11, .b = 0x2233, .c = 0x44556677,
                    .d = 0x0102030405060708ULL, .blob = "hello" };
    TestDev dst = { 0 };
    g_autoptr(GByteArray) buf = save_testdev(&src);

    g_assert_cmpuint(src.pre_saves, ==, 1);
    g_assert_cmpuint(vmstate_wire_size(&vmstate_testdev), ==,
                     sizeof(testdev_wire));
    g_assert_cmpmem(buf->data, buf->len, testdev_wire, sizeof(testdev_wire));
    g_assert_true(load_testdev(buf, &dst, 3, &error_abort));
    g_assert_cmpuint(dst.a, ==, src.a);
    g_assert_cmpuint(dst.b, ==, src.b);
    g_assert_cmpuint(dst.c, ==, src.c);
    g_assert_cmphex(dst.d, ==, src.d);
    g_assert_cmpmem(dst.blob, 5, "hello", 5);
    /* The oldest readable version loads too. */
    memset(&dst, 0, sizeof(dst));
    g_assert_true(load_testdev(buf, &dst, 2, &error_abort));
    g_assert_cmpuint(dst.c, ==, src.c);
}

static void test_refusals(void)
{
    TestDev src = { .c = 0xbad }, dst = { 0 };
    g_autoptr(GByteArray) buf = save_testdev(&src);
    g_autoptr(GByteArray) shorter = g_byte_array_new();
    Error *err = NULL;

    g_assert_false(load_testdev(buf, &dst, 4, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "version 4 is newer"));
    error_free(err);
    err = NULL;
    g_assert_false(load_testdev(buf, &dst, 1, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "version 1 is older"));
    error_free(err);
    err = NULL;
    g_assert_false(load_testdev(buf, &dst, 3, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "c may not be 0xbad"));
    error_free(err);
    err = NULL;

    /* Cut in the middle of "d": the error names the field and offset. */
    g_byte_array_append(shorter, buf->data, 10);
    g_assert_false(load_testdev(shorter, &dst, 3, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "field 'd'"));
    g_assert_nonnull(strstr(error_get_pretty(err),
                            "unexpected end of stream at offset 10"));
    error_free(err);
}

/* A layout rebuilt from the description reads what the device wrote. */
static void test_layout_from_description(void)
{
    TestDev src = { .a = 0x11, .b = 0x2233, .c = 0x44556677,
                    .d = 0x0102030405060708ULL, .blob = "hello" };
    g_autoptr(GByteArray) buf = save_testdev(&src);
    VMStateRegistry *reg = vmstate_registry_new();
    g_autofree char *json = NULL;
    uint32_t len;
    g_autoptr(VMStateLayout) layout = NULL;
    const VMStateEntry *e;
    QEMUFile *f;

    vmstate_register(reg, 7, &vmstate_testdev, &src);
    /* The description snapvm writes into every stream. */
    json = qemu_savevm_description(reg, NULL, &len);
    g_assert_nonnull(strstr(json, "\"name\":\"testdev\",\"instance_id\":7,"
                            "\"vmsd_name\":\"testdev\",\"version\":3"));
    g_assert_nonnull(strstr(json, "{\"name\":\"b\",\"type\":\"uint16\","
                            "\"size\":2}"));
    vmstate_registry_free(reg);

    layout = vmstate_layout_from_json(json, len, &error_abort);
    e = vmstate_registry_find(vmstate_layout_registry(layout), "testdev", 7);
    g_assert_nonnull(e);
    g_assert_cmpuint(vmstate_wire_size(e->vmsd), ==, sizeof(testdev_wire));
    f = qemu_file_new_input(mig_channel_new_buffer(buf));
    g_assert_true(vmstate_load_state(f, e->vmsd, e->opaque, 3,
                                     &error_abort));
    g_assert_true(qemu_file_at_eof(f));
    qemu_file_abort(f);
    /* Fields packed in order: d (uint64) is at byte 7 of the scratch. */
    g_assert_cmpmem((uint8_t *)e->opaque + 15, 5, "hello", 5);
}

static void test_bad_descriptions(void)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"devices\": 3}",
        "{\"devices\": [{\"name\": \"x\"}]}",
        "{\"devices\": [{\"name\": \"x\", \"instance_id\": -1, "
        "\"version\": 1, \"fields\": []}]}",
        "{\"devices\": [{\"name\": \"x\", \"instance_id\": 0, "
        "\"version\": 1, \"fields\": [{\"name\": \"f\", \"type\": "
        "\"buffer\", \"size\": 99999999999}]}]}",
        "{\"devices\": [{\"name\": \"x\", \"instance_id\": 0, "
        "\"version\": 1, \"fields\": []}, {\"name\": \"x\", "
        "\"instance_id\": 0, \"version\": 1, \"fields\": []}]}",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        Error *err = NULL;
        g_assert_null(vmstate_layout_from_json(bad[i], strlen(bad[i]),
                                               &err));
        g_assert_nonnull(err);
        error_free(err);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vmstate/round-trip-big-endian", test_round_trip);
    g_test_add_func("/vmstate/refuses-version-short-data-post-load",
                    test_refusals);
    g_test_add_func("/vmstate/layout-from-description",
                    test_layout_from_description);
    g_test_add_func("/vmstate/bad-descriptions-refused",
                    test_bad_descriptions);
    return g_test_run();
}
