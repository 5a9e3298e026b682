/*
 * snapvm-img convert: the same snapshot in the other layout (stream to
 * mapped-ram or back).  The input is read whole first (and checked,
 * checksums included), its pages into one sparse temporary file per
 * block; the output is written to a temporary name, read back whole, and
 * only then renamed.  It carries the input's checksums over.
 */
#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/crc32c.h"
#include "qemu/cutils.h"
#include "migration/checksums.h"
#include "migration/mapped-ram.h"
#include "migration/ram.h"
#include "snapvm-img.h"

/*
 * convert writes the other layout itself, byte by byte as
 * docs/interop/snapshot-format.md gives it: the RAM (the final content
 * of every page, gathered first into one sparse temporary file per
 * block), then the device sections and the JSON trailer copied as they
 * are.
 */

/* Stream framing bytes (QEMU's). */
#define FILE_MAGIC          0x5145564d
#define FILE_VERSION        3
#define SEC_EOF             0x00
#define SEC_START           0x01
#define SEC_END             0x03
#define SEC_FULL            0x04
#define SEC_SUBSECTION      0x05
#define SEC_VMDESCRIPTION   0x06
#define SEC_CONFIGURATION   0x07
#define SEC_FOOTER          0x7e
#define CONFIG_CAPS         "configuration/capabilities"

#define CONVERT_CHUNK_PAGES 2048    /* 8 MiB read at a time */

/* Buffered output at a known file offset. */
typedef struct Out {
    int fd;
    uint64_t pos;               /* file offset of buf->data[0] */
    GByteArray *buf;
    int err;                    /* errno of the first failure */
    /* As QEMUFile's digest: the bytes out_bytes() wrote since a take. */
    bool digesting;
    uint32_t digest;
    uint32_t bitmaps_crc;       /* mapped-ram: the bitmaps written */
} Out;

static uint32_t out_digest_take(Out *o)
{
    uint32_t crc = o->digest;

    o->digest = 0;
    return crc;
}

static uint64_t out_tell(Out *o)
{
    return o->pos + o->buf->len;
}

static bool out_flush(Out *o)
{
    size_t done = 0;

    while (!o->err && done < o->buf->len) {
        ssize_t n = pwrite(o->fd, o->buf->data + done, o->buf->len - done,
                           o->pos + done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            o->err = n < 0 ? errno : EIO;
        } else {
            done += n;
        }
    }
    o->pos += o->buf->len;
    g_byte_array_set_size(o->buf, 0);
    return !o->err;
}

static void out_bytes(Out *o, const void *p, size_t n)
{
    if (o->digesting) {
        o->digest = crc32c_extend(o->digest, p, n);
    }
    g_byte_array_append(o->buf, p, n);
    if (o->buf->len >= 8 * MiB) {
        out_flush(o);
    }
}

/* A page's content: covered by its region's CRC, not the digest. */
static void out_payload(Out *o, const void *p, size_t n)
{
    bool digesting = o->digesting;

    o->digesting = false;
    out_bytes(o, p, n);
    o->digesting = digesting;
}

static void out_u8(Out *o, uint8_t v)
{
    out_bytes(o, &v, 1);
}

static void out_be32(Out *o, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    out_bytes(o, &v, 4);
}

static void out_be64(Out *o, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    out_bytes(o, &v, 8);
}

static void out_name(Out *o, const char *s)
{
    out_u8(o, strlen(s));
    out_bytes(o, s, strlen(s));
}

/* One block's pages as a stream: ZERO or PAGE items, CONTINUE after the first. */
static bool convert_block_stream(Out *o, const StreamRAMBlockInfo *b, int fd,
                                 uint8_t *chunk)
{
    uint64_t pages = b->used_length / TARGET_PAGE_SIZE;

    for (uint64_t first = 0; first < pages; first += CONVERT_CHUNK_PAGES) {
        uint64_t n = MIN(CONVERT_CHUNK_PAGES, pages - first);

        if (!qemu_pread_all(fd, chunk, n * TARGET_PAGE_SIZE,
                       first * TARGET_PAGE_SIZE)) {
            return false;
        }
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *page = chunk + i * TARGET_PAGE_SIZE;
            bool zero = ram_page_is_zero(page);
            uint64_t item = (first + i) * TARGET_PAGE_SIZE |
                            (zero ? RAM_SAVE_FLAG_ZERO : RAM_SAVE_FLAG_PAGE);

            out_be64(o, item | (first + i ? RAM_SAVE_FLAG_CONTINUE : 0));
            if (!(first + i)) {
                out_name(o, b->idstr);
            }
            if (zero) {
                out_u8(o, 0);
            } else {
                out_payload(o, page, TARGET_PAGE_SIZE);
            }
        }
    }
    return true;
}

/*
 * One block in the mapped-ram layout, right after its used_length: the
 * header, the bitmap, the page area with the non-zero pages in place
 * and holes for the rest.  @o continues after the page area.
 */
static bool convert_block_mapped(Out *o, const StreamRAMBlockInfo *b, int fd,
                                 uint8_t *chunk)
{
    uint64_t pages = b->used_length / TARGET_PAGE_SIZE;
    g_autofree unsigned long *present = bitmap_new(pages);
    size_t words = BITS_TO_LONGS(pages);
    g_autofree uint64_t *le = g_new(uint64_t, words);
    MappedRamBlockLayout l;

    mapped_ram_block_layout(out_tell(o), b->used_length, &l);
    out_be32(o, MAPPED_RAM_HDR_VERSION);
    out_be64(o, TARGET_PAGE_SIZE);
    out_be64(o, l.bitmap_offset);
    out_be64(o, l.pages_offset);
    if (!out_flush(o)) {
        return false;
    }
    if (ftruncate(o->fd, l.end) < 0) {
        return false;
    }
    for (uint64_t first = 0; first < pages; first += CONVERT_CHUNK_PAGES) {
        uint64_t n = MIN(CONVERT_CHUNK_PAGES, pages - first);
        uint64_t run = 0;

        if (!qemu_pread_all(fd, chunk, n * TARGET_PAGE_SIZE,
                       first * TARGET_PAGE_SIZE)) {
            return false;
        }
        /* Runs of non-zero pages, one pwrite each. */
        for (uint64_t i = 0; i <= n; i++) {
            bool zero = i == n || ram_page_is_zero(chunk + i * TARGET_PAGE_SIZE);

            if (zero && i > run &&
                !qemu_pwrite_all(o->fd, chunk + run * TARGET_PAGE_SIZE,
                            (i - run) * TARGET_PAGE_SIZE,
                            l.pages_offset +
                            (first + run) * TARGET_PAGE_SIZE)) {
                return false;
            }
            if (zero) {
                run = i + 1;
            } else {
                set_bit(first + i, present);
            }
        }
    }
    for (size_t w = 0; w < words; w++) {
        le[w] = GUINT64_TO_LE(present[w]);
    }
    o->bitmaps_crc = crc32c_extend(o->bitmaps_crc, le,
                                   words * sizeof(uint64_t));
    if (!qemu_pwrite_all(o->fd, le, words * sizeof(uint64_t), l.bitmap_offset)) {
        return false;
    }
    o->pos = l.end;
    return true;
}

/* The input of a conversion, read whole before anything is written. */
typedef struct ConvertInput {
    const char *path;
    Inspection in;
    RamDump ram;                /* one sparse temporary file per block */
    int fd;                     /* the input again, for device sections */
} ConvertInput;

/*
 * Read @ci->path into @ci: its summary, the final content of every page,
 * a descriptor for its device sections.  Prints why it fails.
 */
static bool convert_read_input(ConvertInput *ci, const char *to, bool mapped)
{
    StreamSummary *sum = &ci->in.sum;

    if (!inspect(ci->path, &ci->in, dump_page, &ci->ram)) {
        fprintf(stderr, "%s: %s\n", ci->path, error_get_pretty(ci->in.err));
        return false;
    }
    if (sum->mapped_ram == mapped) {
        fprintf(stderr, "snapvm-img: %s is already in the %s layout\n",
                ci->path, to);
        return false;
    }
    /* Blocks that held no page at all still need their (zero) file. */
    for (unsigned i = 0; i < sum->ram_blocks->len; i++) {
        Error *err = NULL;

        if (dump_open_block(&ci->ram, &g_array_index(sum->ram_blocks,
                                                     StreamRAMBlockInfo, i),
                            i, &err) < 0) {
            fprintf(stderr, "snapvm-img: %s\n", error_get_pretty(err));
            error_free(err);
            return false;
        }
    }
    ci->fd = open(ci->path, O_RDONLY | O_CLOEXEC);
    if (ci->fd < 0) {
        fprintf(stderr, "snapvm-img: %s: %s\n", ci->path, strerror(errno));
        return false;
    }
    return true;
}

static void convert_input_clear(ConvertInput *ci)
{
    if (ci->fd >= 0) {
        close(ci->fd);
    }
    for (unsigned i = 0; i < ci->ram.fds->len; i++) {
        if (g_array_index(ci->ram.fds, int, i) >= 0) {
            close(g_array_index(ci->ram.fds, int, i));
        }
    }
    g_array_free(ci->ram.fds, true);
    inspection_clear(&ci->in);
}

/* RAM takes the first section id no device section uses. */
static uint32_t convert_ram_section_id(const StreamSummary *sum)
{
    uint32_t ram_id = 0;

    for (unsigned i = 0; i < sum->devices->len; i++) {
        if (g_array_index(sum->devices, StreamDeviceInfo, i).section_id ==
            ram_id) {
            ram_id++;
            i = -1;
        }
    }
    return ram_id;
}

/* Magic, version and the configuration section (with mapped-ram on). */
static void convert_write_head(Out *o, const StreamSummary *sum, bool mapped)
{
    out_be32(o, FILE_MAGIC);
    out_be32(o, FILE_VERSION);
    out_u8(o, SEC_CONFIGURATION);
    out_be32(o, strlen(sum->machine_type));
    out_bytes(o, sum->machine_type, strlen(sum->machine_type));
    if (mapped) {
        out_u8(o, SEC_SUBSECTION);
        out_name(o, CONFIG_CAPS);
        out_be32(o, 1);
        out_be32(o, 1);
        out_name(o, MAPPED_RAM_CAPABILITY_NAME);
    }
}

/*
 * RAM's START section: the block list, each mapped-ram block followed
 * by its header, bitmap and page area.  False if the output failed.
 */
static bool convert_write_ram_start(Out *o, const ConvertInput *ci,
                                    uint32_t ram_id, bool mapped,
                                    uint8_t *chunk)
{
    const StreamSummary *sum = &ci->in.sum;

    out_u8(o, SEC_START);
    out_be32(o, ram_id);
    out_name(o, RAM_SECTION_IDSTR);
    out_be32(o, 0);
    out_be32(o, RAM_SECTION_VERSION);
    out_be64(o, sum->ram_total | RAM_SAVE_FLAG_MEM_SIZE);
    for (unsigned i = 0; i < sum->ram_blocks->len; i++) {
        StreamRAMBlockInfo *b = &g_array_index(sum->ram_blocks,
                                               StreamRAMBlockInfo, i);

        out_name(o, b->idstr);
        out_be64(o, b->used_length);
        if (mapped &&
            !convert_block_mapped(o, b, g_array_index(ci->ram.fds, int, i),
                                  chunk)) {
            return false;
        }
    }
    out_be64(o, RAM_SAVE_FLAG_EOS);
    out_u8(o, SEC_FOOTER);
    out_be32(o, ram_id);
    return true;
}

/*
 * RAM's END section: in the stream layout every page of every block.
 * False if a block's temporary file could not be read.
 */
static bool convert_write_ram_end(Out *o, const ConvertInput *ci,
                                  uint32_t ram_id, bool mapped,
                                  uint8_t *chunk)
{
    const StreamSummary *sum = &ci->in.sum;

    out_u8(o, SEC_END);
    out_be32(o, ram_id);
    for (unsigned i = 0; !mapped && i < sum->ram_blocks->len; i++) {
        if (!convert_block_stream(o, &g_array_index(sum->ram_blocks,
                                                    StreamRAMBlockInfo, i),
                                  g_array_index(ci->ram.fds, int, i), chunk)) {
            return false;
        }
    }
    out_be64(o, RAM_SAVE_FLAG_EOS);
    out_u8(o, SEC_FOOTER);
    out_be32(o, ram_id);
    return true;
}

/*
 * The checksums section of the output.  RAM, the device sections and the
 * trailer are what the input held (and the input's checksums, checked as
 * it was read, vouch for them); only the framing and the mapped-ram
 * bitmaps are new.  Nothing if the input had no checksums.
 */
static void convert_write_checksums(Out *o, const ConvertInput *ci,
                                    uint32_t framing)
{
    const StreamChecksums *in = ci->in.sum.checksum_values;
    uint32_t id = 0;

    if (!in) {
        return;
    }
    for (unsigned i = 0; i < ci->in.sum.devices->len; i++) {
        id = MAX(id, g_array_index(ci->in.sum.devices, StreamDeviceInfo,
                                   i).section_id);
    }
    id = MAX(id, convert_ram_section_id(&ci->in.sum)) + 1;
    out_digest_take(o);
    out_u8(o, SEC_FULL);
    out_be32(o, id);
    out_name(o, CHECKSUMS_SECTION_IDSTR);
    out_be32(o, 0);
    out_be32(o, CHECKSUMS_SECTION_VERSION);
    out_be32(o, CHECKSUMS_ALGORITHM_CRC32C);
    out_be32(o, CHECKSUMS_REGION_SIZE);
    out_be32(o, framing);
    out_be32(o, o->bitmaps_crc);       /* 0 unless the output is mapped */
    out_be32(o, in->description);
    out_be32(o, in->ndevices);
    out_be32(o, in->nregions);
    for (uint32_t i = 0; i < in->ndevices; i++) {
        out_be32(o, in->devices[i]);
    }
    for (uint32_t i = 0; i < in->nregions; i++) {
        out_be32(o, in->regions[i]);
    }
    out_be32(o, out_digest_take(o));
    out_u8(o, SEC_FOOTER);
    out_be32(o, id);
}

/*
 * Device sections as they are, in their order, then the JSON trailer.
 * False if the input could not be read.
 */
static bool convert_write_devices(Out *o, const ConvertInput *ci,
                                  uint32_t framing)
{
    const StreamSummary *sum = &ci->in.sum;

    for (unsigned i = 0; i < sum->devices->len; i++) {
        StreamDeviceInfo *dev = &g_array_index(sum->devices,
                                               StreamDeviceInfo, i);
        g_autofree uint8_t *sec = g_malloc(dev->size);

        if (!qemu_pread_all(ci->fd, sec, dev->size, dev->offset)) {
            return false;
        }
        out_bytes(o, sec, dev->size);
    }
    convert_write_checksums(o, ci, framing);
    out_u8(o, SEC_EOF);
    out_u8(o, SEC_VMDESCRIPTION);
    out_be32(o, strlen(sum->description));
    out_bytes(o, sum->description, strlen(sum->description));
    return true;
}

/*
 * The converted file is in @tmp, written through @o: make it durable,
 * check that it reads back whole (into @check), and only then give it
 * the name @out_path.  Prints why it fails.
 */
static bool convert_install(Out *o, const char *tmp, const char *out_path,
                            Inspection *check)
{
    const char *what = tmp;

    if (out_flush(o) && fsync(o->fd) == 0) {
        if (!inspect(tmp, check, NULL, NULL)) {
            fprintf(stderr, "snapvm-img: the converted file does not read "
                    "back: %s\n", error_get_pretty(check->err));
            return false;
        }
        if (rename(tmp, out_path) == 0) {
            return true;
        }
        what = out_path;
    }
    fprintf(stderr, "snapvm-img: %s: %s\n", what,
            strerror(o->err ? o->err : errno));
    return false;
}

int cmd_convert(const char *in_path, const char *out_path,
                       const char *to)
{
    g_autofree char *dir = g_path_get_dirname(out_path);
    g_autofree char *base = g_path_get_basename(out_path);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
    g_autofree uint8_t *chunk = g_malloc(CONVERT_CHUNK_PAGES *
                                         TARGET_PAGE_SIZE);
    ConvertInput ci = {
        .path = in_path, .fd = -1,
        .ram = { .tmp_dir = dir,
                 .fds = g_array_new(false, false, sizeof(int)) },
    };
    Out o = { .fd = -1, .buf = g_byte_array_new() };
    Inspection check = { 0 };
    bool mapped = !strcmp(to, "mapped-ram");
    uint32_t ram_id;
    int ret = 1;
    const char *what = tmp;

    if (!convert_read_input(&ci, to, mapped)) {
        goto out;
    }
    ram_id = convert_ram_section_id(&ci.in.sum);
    o.fd = mkostemp(tmp, O_CLOEXEC);
    if (o.fd < 0) {
        goto io_error;
    }
    o.digesting = ci.in.sum.checksum_values != NULL;
    convert_write_head(&o, &ci.in.sum, mapped);
    if (!convert_write_ram_start(&o, &ci, ram_id, mapped, chunk)) {
        goto io_error;
    }
    if (!convert_write_ram_end(&o, &ci, ram_id, mapped, chunk)) {
        what = "a temporary file";
        goto io_error;
    }
    if (!convert_write_devices(&o, &ci, out_digest_take(&o))) {
        what = in_path;
        goto io_error;
    }
    if (!convert_install(&o, tmp, out_path, &check)) {
        goto out;
    }
    printf("%s (%s) -> %s (%s): %u RAM block(s), %" PRIu64 " pages with "
           "data, %u device section(s), %" PRIu64 " bytes\n", in_path,
           ci.in.sum.mapped_ram ? "mapped-ram" : "stream", out_path, to,
           ci.in.sum.ram_blocks->len, check.sum.pages,
           ci.in.sum.devices->len, out_tell(&o));
    ret = 0;
    goto out;

io_error:
    fprintf(stderr, "snapvm-img: %s: %s\n", what,
            strerror(o.err ? o.err : errno));
out:
    if (o.fd >= 0) {
        close(o.fd);
        if (ret) {
            unlink(tmp);
        }
    }
    g_byte_array_free(o.buf, true);
    convert_input_clear(&ci);
    inspection_clear(&check);
    return ret;
}

