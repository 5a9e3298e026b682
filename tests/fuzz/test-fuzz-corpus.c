/*
 * Replay every file of the fuzzers' corpora and regressions through the
 * fuzz targets, in every build (normal, ASan+UBSan, TSan), so that an
 * input that once crashed a target stays a test after it is fixed.
 *
 * tests/fuzz/corpus/TARGET/: seeds (real snapshots, QMP sessions);
 * tests/fuzz/regressions/TARGET/: inputs that crashed or hung a target
 * once, named after what they broke.
 */
#include "qemu/osdep.h"
#include "migration/vmstate.h"
#include "fuzz-targets.h"

typedef struct FuzzTarget {
    const char *name;       /* fuzz-NAME; regressions/NAME/ */
    const char *corpus;     /* corpus/CORPUS/ */
    int (*one)(const uint8_t *data, size_t size);
} FuzzTarget;

static const FuzzTarget targets[] = {
    { "loadvm", "loadvm", fuzz_loadvm_one },
    { "loadvm-machine", "loadvm", fuzz_loadvm_machine_one },
    { "qmp", "qmp", fuzz_qmp_one },
    { "checksums", "checksums", fuzz_checksums_one },
};

static unsigned replay_dir(const FuzzTarget *t, const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    unsigned n = 0;

    if (!d) {
        return 0;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *data = NULL;
        gsize len;

        if (name[0] == '.' ||
            !g_file_get_contents(path, &data, &len, NULL)) {
            continue;
        }
        if (g_test_verbose()) {
            g_printerr("# %s: %s (%zu bytes)\n", t->name, path, len);
        }
        g_assert_cmpint(t->one((const uint8_t *)data, len), ==, 0);
        /* Every prefix of a seed is a truncated stream: refused cleanly. */
        if (len < 64 * KiB) {
            for (gsize cut = 0; cut < len; cut += 1 + cut / 8) {
                t->one((const uint8_t *)data, cut);
            }
        }
        n++;
    }
    return n;
}

static void test_replay(gconstpointer opaque)
{
    const FuzzTarget *t = opaque;
    g_autofree char *corpus = g_build_filename(FUZZ_DIR, "corpus", t->corpus,
                                               NULL);
    g_autofree char *regress = g_build_filename(FUZZ_DIR, "regressions",
                                                t->name, NULL);
    unsigned seeds = replay_dir(t, corpus);

    /* The seeds are checked in: finding none means the path is wrong. */
    g_assert_cmpuint(seeds, >, 0);
    replay_dir(t, regress);
}

/*
 * Regression (found by reading, confirmed with the fuzzer's malloc limit):
 * a JSON description could declare 4096 devices of 16 MiB each, and the
 * loader allocated a scratch buffer per device: 64 GiB from 400 KiB of
 * input.  The sum over all devices is bounded now.
 */
static char *layout_json(unsigned ndevices, uint64_t size)
{
    GString *s = g_string_new("{\"page_size\": 4096, \"devices\": [");

    for (unsigned i = 0; i < ndevices; i++) {
        g_string_append_printf(s, "%s{\"name\": \"d%u\", \"instance_id\": "
                               "0, \"version\": 1, \"fields\": [{\"name\": "
                               "\"f\", \"type\": \"buffer\", \"size\": %"
                               PRIu64 "}]}", i ? ", " : "", i, size);
    }
    g_string_append(s, "]}");
    return g_string_free(s, false);
}

static void test_layout_total_bounded(void)
{
    g_autofree char *small = layout_json(4, 4096);
    g_autofree char *huge = layout_json(4096, 16 * MiB);
    Error *err = NULL;

    VMStateLayout *l = vmstate_layout_from_json(small, strlen(small),
                                                &error_abort);
    vmstate_layout_free(l);
    g_assert_null(vmstate_layout_from_json(huge, strlen(huge), &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "all devices together"));
    error_free(err);
}

/*
 * Every seed is a whole stream that snapvm wrote: it must load into
 * exactly one of fuzz-loadvm-machine's machines (the one of its layout),
 * or the target only ever exercises refusals.
 */
static void test_seeds_load_into_a_machine(void)
{
    g_autofree char *dir = g_build_filename(FUZZ_DIR, "corpus", "loadvm",
                                            NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    unsigned seeds = 0;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autofree char *data = NULL;
        gsize len;

        if (name[0] == '.') {
            continue;
        }
        g_assert_true(g_file_get_contents(path, &data, &len, NULL));
        if (fuzz_loadvm_machine_count((const uint8_t *)data, len) != 1) {
            g_error("%s did not load into exactly one machine", path);
        }
        seeds++;
    }
    g_assert_cmpuint(seeds, >, 0);
}

/*
 * fuzz-checksums' oracle accepts any refusal, so it would pass if its
 * stream never loaded at all: the stream without edits must load, and
 * with a bit of a RAM page flipped must not.
 */
static void test_checksums_unedited_loads(void)
{
    /* XOR 0x01 at offset 0x10000, inside the RAM pages of block m0. */
    static const uint8_t flip[] = { 0x01, 0x00, 0x00, 0x01 };

    g_assert_true(fuzz_checksums_loaded(NULL, 0));
    g_assert_false(fuzz_checksums_loaded(flip, sizeof(flip)));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/fuzz-corpus/loadvm/layout-total-bounded",
                    test_layout_total_bounded);
    g_test_add_func("/fuzz-corpus/loadvm-machine/seeds-load",
                    test_seeds_load_into_a_machine);
    g_test_add_func("/fuzz-corpus/checksums/unedited-loads",
                    test_checksums_unedited_loads);
    for (unsigned i = 0; i < G_N_ELEMENTS(targets); i++) {
        g_autofree char *path = g_strdup_printf("/fuzz-corpus/%s",
                                                targets[i].name);
        g_test_add_data_func(path, &targets[i], test_replay);
    }
    return g_test_run();
}
