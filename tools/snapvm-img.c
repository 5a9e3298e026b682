/*
 * snapvm-img: look into a snapshot (migration stream) file without a
 * machine.  It runs the same parser as an incoming migration, in inspect
 * mode, with device layouts taken from the file's own JSON trailer.
 *
 *   snapvm-img info FILE        what the file holds and whether it is whole
 *   snapvm-img check FILE       exit 0 only if it is whole and well formed,
 *                               and matches its checksums if it has them
 *   snapvm-img verify FILE      the same, and it must have checksums
 *   snapvm-img dump-ram FILE DIR   one file per RAMBlock, named by idstr
 *   snapvm-img convert IN OUT [--to mapped-ram|stream]
 *                               the same snapshot in the other layout
 *
 * Both layouts are read: a stream, and mapped-ram (its pages read at
 * their offsets, every present page checked to hold data).
 */
#include "qemu/osdep.h"
#include <sys/stat.h>
#include "hw/boards.h"
#include "qemu/bitmap.h"
#include "qemu/crc32c.h"
#include "migration/channel.h"
#include "migration/checksums.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "snapvm-img.h"

/* The trailer is a few KiB; QEMU's own can reach a few hundred. */
#define TRAILER_SEARCH_BYTES (4 * MiB)

/*
 * The file is read through the file: transport, which a mapped-ram file
 * needs (its pages are read at their offsets); @fdp gets a second
 * descriptor of it for the trailer.
 */
static QEMUFile *open_stream(const char *path, int *fdp, Error **errp)
{
    MigChannel *ch;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open %s", path);
        return NULL;
    }
    ch = mig_channel_open_file(path, errp);
    if (!ch) {
        close(fd);
        return NULL;
    }
    *fdp = fd;
    return qemu_file_new_input(ch);
}

/*
 * The JSON trailer is the file's tail after "00 06 <be32 length>" (EOF,
 * VMDESCRIPTION): find the last such spot whose length reaches exactly to
 * the end of the file.
 */
static VMStateLayout *read_layout(int fd, Error **errp)
{
    struct stat st;
    g_autofree uint8_t *tail = NULL;
    size_t len;

    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "cannot stat the file");
        return NULL;
    }
    len = MIN((uint64_t)st.st_size, TRAILER_SEARCH_BYTES);
    tail = g_malloc(len);
    if (pread(fd, tail, len, st.st_size - len) != (ssize_t)len) {
        error_setg(errp, "cannot read the end of the file");
        return NULL;
    }
    for (size_t i = len >= 6 ? len - 6 : 0; len >= 6; i--) {
        uint32_t json_len = (uint32_t)tail[i + 2] << 24 | tail[i + 3] << 16 |
                            tail[i + 4] << 8 | tail[i + 5];
        if (tail[i] == 0x00 && tail[i + 1] == 0x06 &&
            json_len == len - i - 6) {
            return vmstate_layout_from_json((const char *)tail + i + 6,
                                            json_len, errp);
        }
        if (i == 0) {
            break;
        }
    }
    error_setg(errp, "no JSON device description at the end of the file "
               "(is it complete?)");
    return NULL;
}


bool inspect(const char *path, Inspection *in,
                    bool (*ram_page)(void *, const StreamRAMBlockInfo *,
                                     unsigned, uint64_t, const uint8_t *,
                                     Error **),
                    void *opaque)
{
    StreamInspector insp = { .ram_page = ram_page, .opaque = opaque };
    QEMUFile *f;
    int fd;

    stream_summary_init(&in->sum);
    f = open_stream(path, &fd, &in->err);
    if (!f) {
        return false;
    }
    in->layout = read_layout(fd, &in->layout_err);
    if (in->layout) {
        insp.devices = vmstate_layout_registry(in->layout);
    }
    in->ok = qemu_loadvm_inspect(f, &insp, &in->sum, &in->err);
    close(fd);
    if (!in->ok && in->layout_err &&
        strstr(error_get_pretty(in->err), "no device description")) {
        error_prepend(&in->err, "%s; ", error_get_pretty(in->layout_err));
    }
    qemu_file_abort(f);
    return in->ok;
}

void inspection_clear(Inspection *in)
{
    stream_summary_clear(&in->sum);
    vmstate_layout_free(in->layout);
    error_free(in->layout_err);
    error_free(in->err);
}

/* How the checksums came out, for info, check and verify. */
static const char *checksums_verdict(const Inspection *in)
{
    if (in->sum.checksums) {
        return "verified";
    }
    return in->ok ? "none (written before snapvm had them, or with "
                    "x-checksums off): RAM and device state not verified"
                  : "not verified";
}

static int cmd_info(const char *path)
{
    Inspection in = { 0 };
    uint64_t ram_pages = 0;
    struct stat st;

    inspect(path, &in, NULL, NULL);
    if (!in.sum.stream_bytes && in.err) {
        fprintf(stderr, "snapvm-img: %s\n", error_get_pretty(in.err));
        inspection_clear(&in);
        return 1;
    }
    printf("file: %s\n", path);
    printf("layout: %s\n", in.sum.mapped_ram ?
           "mapped-ram (one place per page, holes for zero pages)" :
           "stream");
    if (in.sum.mapped_ram && stat(path, &st) == 0) {
        printf("file size: %" PRIu64 " bytes, %" PRIu64 " allocated\n",
               (uint64_t)st.st_size, (uint64_t)st.st_blocks * 512);
    }
    printf("machine type: %s\n",
           in.sum.machine_type ? in.sum.machine_type : "(unknown)");
    printf("RAM: %" PRIu64 " bytes in %u block(s)\n", in.sum.ram_total,
           in.sum.ram_blocks->len);
    for (unsigned i = 0; i < in.sum.ram_blocks->len; i++) {
        StreamRAMBlockInfo *b = &g_array_index(in.sum.ram_blocks,
                                               StreamRAMBlockInfo, i);
        printf("  %-16s %12" PRIu64 " bytes  %8" PRIu64 " pages written  %8"
               PRIu64 " zero pages\n", b->idstr, b->used_length, b->pages,
               b->zero_pages);
        if (in.sum.mapped_ram) {
            printf("  %-16s header at %" PRIu64 ", bitmap at %" PRIu64
                   " (%" PRIu64 " bytes), pages at %" PRIu64 " to %" PRIu64
                   "\n", "", b->header_offset, b->bitmap_offset,
                   BITS_TO_LONGS(b->used_length / TARGET_PAGE_SIZE) *
                   (uint64_t)sizeof(uint64_t), b->pages_offset,
                   b->pages_offset + b->used_length);
        }
        ram_pages += b->used_length / TARGET_PAGE_SIZE;
    }
    printf("pages written: %" PRIu64 ", zero pages: %" PRIu64
           " (of %" PRIu64 " pages of RAM), in %u RAM section(s)\n",
           in.sum.pages, in.sum.zero_pages, ram_pages, in.sum.ram_sections);
    printf("device sections: %u\n", in.sum.devices->len);
    for (unsigned i = 0; i < in.sum.devices->len; i++) {
        StreamDeviceInfo *d = &g_array_index(in.sum.devices,
                                             StreamDeviceInfo, i);
        printf("  %-16s instance %u, version %u, section id %u, %" PRIu64
               " bytes at offset %" PRIu64 "\n", d->idstr, d->instance_id,
               d->version_id, d->section_id, d->size, d->offset);
    }
    printf("stream bytes read: %" PRIu64 "\n", in.sum.stream_bytes);
    printf("complete: %s\n", in.ok ? "yes (EOF and description present)"
                                   : "no");
    printf("checksums: %s\n", checksums_verdict(&in));
    if (!in.ok) {
        printf("error: %s\n", error_get_pretty(in.err));
    }
    inspection_clear(&in);
    return in.ok ? 0 : 1;
}

/*
 * Reads every byte (every page of either layout), so every checksum is
 * compared.  @need_checksums: a file without them fails too.
 */
static int cmd_check(const char *path, bool need_checksums)
{
    Inspection in = { 0 };
    int ret = 0;

    if (inspect(path, &in, NULL, NULL) &&
        (in.sum.checksums || !need_checksums)) {
        printf("%s: OK, %" PRIu64 " bytes, complete; checksums: %s", path,
               in.sum.stream_bytes, checksums_verdict(&in));
        if (in.sum.checksums) {
            printf(" (%" PRIu64 " RAM regions, %u device sections, the "
                   "framing and the trailer)", in.sum.checksummed_regions,
                   in.sum.devices->len);
        }
        printf("\n");
    } else if (in.ok) {
        fprintf(stderr, "%s: complete, but it has no checksums (written "
                "before snapvm had them, or with x-checksums off): its "
                "contents cannot be verified\n", path);
        ret = 1;
    } else {
        fprintf(stderr, "%s: %s\n", path, error_get_pretty(in.err));
        ret = 1;
    }
    inspection_clear(&in);
    return ret;
}


int dump_open_block(RamDump *d, const StreamRAMBlockInfo *block,
                           unsigned index, Error **errp)
{
    g_autofree char *name = g_strdup(block->idstr);
    g_autofree char *path = NULL;
    int fd;

    while (d->fds->len <= index) {
        int none = -1;
        g_array_append_val(d->fds, none);
    }
    if (g_array_index(d->fds, int, index) >= 0) {
        return g_array_index(d->fds, int, index);
    }
    /* An idstr is a name, not a path: keep every file inside DIR. */
    g_strdelimit(name, "/", '_');
    if (name[0] == '.') {
        name[0] = '_';
    }
    if (d->dir) {
        path = g_build_filename(d->dir, name, NULL);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    } else {
        path = g_strdup_printf("a temporary file in %s", d->tmp_dir);
        fd = open(d->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    }
    if (fd < 0 || ftruncate(fd, block->used_length) < 0) {
        error_setg_errno(errp, errno, "cannot create %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    g_array_index(d->fds, int, index) = fd;
    return fd;
}

bool dump_page(void *opaque, const StreamRAMBlockInfo *block,
                      unsigned index, uint64_t offset, const uint8_t *data,
                      Error **errp)
{
    static const uint8_t zero[TARGET_PAGE_SIZE];
    RamDump *d = opaque;
    int fd = dump_open_block(d, block, index, errp);

    if (fd < 0) {
        return false;
    }
    /* A zero page may follow an earlier copy of the same page. */
    if (!data && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, TARGET_PAGE_SIZE) == 0) {
        return true;
    }
    if (pwrite(fd, data ? data : zero, TARGET_PAGE_SIZE, offset) !=
        TARGET_PAGE_SIZE) {
        error_setg_errno(errp, errno, "cannot write block '%s'",
                         block->idstr);
        return false;
    }
    return true;
}

static int cmd_dump_ram(const char *path, const char *dir)
{
    RamDump d = { .dir = dir, .fds = g_array_new(false, false, sizeof(int)) };
    Inspection in = { 0 };
    int ret = 0;

    if (g_mkdir_with_parents(dir, 0755) < 0) {
        fprintf(stderr, "snapvm-img: cannot create %s: %s\n", dir,
                strerror(errno));
        g_array_free(d.fds, true);
        return 1;
    }
    if (!inspect(path, &in, dump_page, &d)) {
        fprintf(stderr, "%s: %s\n", path, error_get_pretty(in.err));
        ret = 1;
    }
    /* Blocks without a single page item still get their (zero) file. */
    for (unsigned i = 0; ret == 0 && i < in.sum.ram_blocks->len; i++) {
        Error *err = NULL;
        StreamRAMBlockInfo *b = &g_array_index(in.sum.ram_blocks,
                                               StreamRAMBlockInfo, i);
        if (dump_open_block(&d, b, i, &err) < 0) {
            fprintf(stderr, "snapvm-img: %s\n", error_get_pretty(err));
            error_free(err);
            ret = 1;
        } else {
            printf("%s/%s: %" PRIu64 " bytes\n", dir, b->idstr,
                   b->used_length);
        }
    }
    for (unsigned i = 0; i < d.fds->len; i++) {
        int fd = g_array_index(d.fds, int, i);
        if (fd >= 0 && close(fd) < 0) {
            ret = 1;
        }
    }
    g_array_free(d.fds, true);
    inspection_clear(&in);
    return ret;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: snapvm-img info FILE\n"
            "       snapvm-img check FILE\n"
            "       snapvm-img verify FILE\n"
            "       snapvm-img dump-ram FILE DIR\n"
            "       snapvm-img convert IN OUT [--to mapped-ram|stream]\n");
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "info")) {
        return cmd_info(argv[2]);
    }
    if (argc == 3 && !strcmp(argv[1], "check")) {
        return cmd_check(argv[2], false);
    }
    if (argc == 3 && !strcmp(argv[1], "verify")) {
        return cmd_check(argv[2], true);
    }
    if (argc == 4 && !strcmp(argv[1], "dump-ram")) {
        return cmd_dump_ram(argv[2], argv[3]);
    }
    if ((argc == 4 || (argc == 6 && !strcmp(argv[4], "--to"))) &&
        !strcmp(argv[1], "convert")) {
        const char *to = argc == 6 ? argv[5] : NULL;

        if (to && strcmp(to, "mapped-ram") && strcmp(to, "stream")) {
            usage();
            return 2;
        }
        if (!to) {
            /* The other layout than the input's. */
            Inspection in = { 0 };

            inspect(argv[2], &in, NULL, NULL);
            to = in.sum.mapped_ram ? "stream" : "mapped-ram";
            inspection_clear(&in);
        }
        return cmd_convert(argv[2], argv[3], to);
    }
    usage();
    return 2;
}
