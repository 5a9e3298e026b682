/*
 * snapvm-img's pieces shared between its commands: reading a file in
 * inspect mode (tools/snapvm-img.c) and converting it between layouts
 * (tools/snapvm-img-convert.c).
 */
#ifndef TOOLS_SNAPVM_IMG_H
#define TOOLS_SNAPVM_IMG_H

#include "qemu/osdep.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"

/* What a read of a whole file found. */
typedef struct Inspection {
    StreamSummary sum;
    VMStateLayout *layout;
    Error *layout_err;
    Error *err;
    bool ok;
} Inspection;

/*
 * Read @path whole in inspect mode, with device layouts from its own
 * trailer, handing every page to @ram_page (may be NULL).
 */
bool inspect(const char *path, Inspection *in,
             bool (*ram_page)(void *, const StreamRAMBlockInfo *, unsigned,
                              uint64_t, const uint8_t *, Error **),
             void *opaque);
void inspection_clear(Inspection *in);

/* Pages written out one file per RAM block (dump-ram, convert). */
typedef struct RamDump {
    const char *dir;            /* one file per block, named by idstr */
    const char *tmp_dir;        /* without @dir: unnamed files here */
    GArray *fds;                /* int per block index, -1 until opened */
} RamDump;

int dump_open_block(RamDump *d, const StreamRAMBlockInfo *block,
                    unsigned index, Error **errp);
/* An inspect() callback: the page into its block's file. */
bool dump_page(void *opaque, const StreamRAMBlockInfo *block,
               unsigned index, uint64_t offset, const uint8_t *data,
               Error **errp);

/* snapvm-img convert IN OUT --to @to ("mapped-ram" or "stream"). */
int cmd_convert(const char *in_path, const char *out_path, const char *to);

#endif
