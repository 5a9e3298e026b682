/*
 * Fuzz target: the stream loader (migration/savevm.c, ram.c, vmstate.c)
 * on hostile input, exactly as snapvm-img reads a file: the device layout
 * from the JSON trailer, then every section checked by
 * qemu_loadvm_inspect().  A refusal must come with a message.
 */
#include "qemu/osdep.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "fuzz-targets.h"

/* The trailer: 0x00 (EOF) 0x06 (description) be32 length, JSON to the end. */
static VMStateLayout *fuzz_layout(const uint8_t *data, size_t size)
{
    for (size_t i = size >= 6 ? size - 6 : 0; size >= 6; i--) {
        uint32_t len = (uint32_t)data[i + 2] << 24 | data[i + 3] << 16 |
                       data[i + 4] << 8 | data[i + 5];
        if (data[i] == 0x00 && data[i + 1] == 0x06 && len == size - i - 6) {
            return vmstate_layout_from_json((const char *)data + i + 6, len,
                                            NULL);
        }
        if (i == 0) {
            break;
        }
    }
    return NULL;
}

static bool fuzz_ram_page(void *opaque, const StreamRAMBlockInfo *block,
                          unsigned block_index, uint64_t offset,
                          const uint8_t *data, Error **errp)
{
    uint64_t *sum = opaque;

    /* Touch the page so that a bad pointer shows under ASan. */
    *sum += data ? data[0] + data[TARGET_PAGE_SIZE - 1] : 0;
    g_assert(offset < block->used_length);
    return true;
}

int fuzz_loadvm_one(const uint8_t *data, size_t size)
{
    g_autoptr(VMStateLayout) layout = fuzz_layout(data, size);
    g_autoptr(GByteArray) buf = g_byte_array_new();
    uint64_t checksum = 0;
    StreamInspector insp = {
        .devices = layout ? vmstate_layout_registry(layout) : NULL,
        .ram_page = fuzz_ram_page,
        .opaque = &checksum,
    };
    StreamSummary sum;
    Error *err = NULL;

    g_byte_array_append(buf, data, size);
    QEMUFile *f = qemu_file_new_input(mig_channel_new_buffer(buf));
    stream_summary_init(&sum);
    if (!qemu_loadvm_inspect(f, &insp, &sum, &err)) {
        g_assert(err && *error_get_pretty(err));
        error_free(err);
    } else {
        g_assert(!err && sum.complete);
    }
    stream_summary_clear(&sum);
    qemu_file_abort(f);
    return 0;
}

#ifdef SNAPVM_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_loadvm_one(data, size);
}
#endif
