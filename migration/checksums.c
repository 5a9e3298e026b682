/*
 * The "snapvm-checksums" section (include/migration/checksums.h): its
 * body, both ways, and its entry in the JSON trailer.  What the values
 * are compared with is savevm.c's and ram.c's business.
 */
#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/crc32c.h"
#include "migration/checksums.h"
#include "migration/qemu-file.h"

uint32_t checksums_region_crc(const uint32_t *page_crc, uint64_t npages,
                              uint64_t region)
{
    uint64_t first = region * CHECKSUMS_REGION_PAGES;

    return checksums_fold(page_crc + first,
                          MIN(CHECKSUMS_REGION_PAGES, npages - first));
}

uint32_t checksums_fold(const uint32_t *page_crc, uint64_t n)
{
    uint32_t r = CRC32C_REGION_INIT;

    for (uint64_t p = 0; p < n; p++) {
        r = crc32c_region_add_page(r, page_crc[p]);
    }
    return crc32c_region_final(r);
}

void page_crcs_init(PageCrcs *pc, uint64_t npages)
{
    pc->npages = npages;
    pc->nregions = DIV_ROUND_UP(npages, CHECKSUMS_REGION_PAGES);
    /* Beyond what a checksums section may hold: nothing to compare with. */
    pc->region = pc->nregions <= CHECKSUMS_MAX_REGIONS ?
                 g_new0(uint32_t *, pc->nregions) : NULL;
}

void page_crcs_set(PageCrcs *pc, uint64_t page, uint32_t raw)
{
    uint64_t r = page / CHECKSUMS_REGION_PAGES;
    uint32_t *crcs;

    if (!pc->region || page >= pc->npages) {
        return;
    }
    crcs = qatomic_load_acquire(&pc->region[r]);
    if (!crcs) {
        uint32_t *fresh;

        if (!raw) {
            return;             /* still all zero */
        }
        fresh = g_new0(uint32_t, CHECKSUMS_REGION_PAGES);
        crcs = qatomic_cmpxchg(&pc->region[r], NULL, fresh);
        if (crcs) {
            g_free(fresh);      /* another thread's page got there first */
        } else {
            crcs = fresh;
        }
    }
    crcs[page % CHECKSUMS_REGION_PAGES] = raw;
}

uint32_t page_crcs_region(const PageCrcs *pc, uint64_t region)
{
    static const uint32_t zeros[CHECKSUMS_REGION_PAGES];
    const uint32_t *crcs = pc->region[region] ? pc->region[region] : zeros;
    uint64_t first = region * CHECKSUMS_REGION_PAGES;

    return checksums_fold(crcs, MIN(CHECKSUMS_REGION_PAGES,
                                    pc->npages - first));
}

void page_crcs_clear(PageCrcs *pc)
{
    for (uint64_t r = 0; pc->region && r < pc->nregions; r++) {
        g_free(pc->region[r]);
    }
    g_free(pc->region);
    memset(pc, 0, sizeof(*pc));
}

/* ---- save ---- */

static void describe_field(JsonBuilder *b, const char *name,
                           const char *type, uint64_t size)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "type");
    json_builder_add_string_value(b, type);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, size);
    json_builder_end_object(b);
}

/* The body's fields, in order; the arrays are one "buffer" each. */
void checksums_describe(JsonBuilder *b, unsigned ndevices, uint64_t nregions)
{
    static const char *const head[] = {
        "algorithm", "region_size", "framing_crc", "mapped_ram_crc",
        "description_crc", "device_count", "region_count",
    };

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, CHECKSUMS_SECTION_IDSTR);
    json_builder_set_member_name(b, "instance_id");
    json_builder_add_int_value(b, 0);
    json_builder_set_member_name(b, "vmsd_name");
    json_builder_add_string_value(b, CHECKSUMS_SECTION_IDSTR);
    json_builder_set_member_name(b, "version");
    json_builder_add_int_value(b, CHECKSUMS_SECTION_VERSION);
    json_builder_set_member_name(b, "fields");
    json_builder_begin_array(b);
    for (unsigned i = 0; i < G_N_ELEMENTS(head); i++) {
        describe_field(b, head[i], "uint32", 4);
    }
    describe_field(b, "device_crcs", "buffer", 4 * (uint64_t)ndevices);
    describe_field(b, "region_crcs", "buffer", 4 * nregions);
    describe_field(b, "section_crc", "uint32", 4);
    json_builder_end_array(b);
    json_builder_end_object(b);
}

void checksums_put_body(QEMUFile *f, const SaveChecksums *ck,
                        RAMBlock *const *blocks, unsigned nblocks)
{
    uint64_t nregions = 0;

    for (unsigned i = 0; i < nblocks; i++) {
        nregions += checksums_block_regions(blocks[i]->used_length);
    }
    qemu_put_be32(f, CHECKSUMS_ALGORITHM_CRC32C);
    qemu_put_be32(f, CHECKSUMS_REGION_SIZE);
    qemu_put_be32(f, ck->framing);
    qemu_put_be32(f, ck->mapped_ram);
    qemu_put_be32(f, ck->description);
    qemu_put_be32(f, ck->ndevices);
    qemu_put_be32(f, nregions);
    for (unsigned i = 0; i < ck->ndevices; i++) {
        qemu_put_be32(f, ck->devices[i]);
    }
    for (unsigned i = 0; i < nblocks; i++) {
        uint64_t pages = ramblock_pages(blocks[i]);

        for (uint64_t r = 0; r < checksums_block_regions(
                                     blocks[i]->used_length); r++) {
            qemu_put_be32(f, checksums_region_crc(blocks[i]->page_crc,
                                                  pages, r));
        }
    }
    qemu_put_be32(f, qemu_file_digest_take(f));
}

/* ---- load ---- */

bool checksums_get_body(QEMUFile *f, StreamChecksums *sc, uint64_t nregions,
                        Error **errp)
{
    uint32_t algorithm = qemu_get_be32(f);
    uint32_t region_size = qemu_get_be32(f);
    uint32_t got_regions, computed, stored;

    sc->framing = qemu_get_be32(f);
    sc->mapped_ram = qemu_get_be32(f);
    sc->description = qemu_get_be32(f);
    sc->ndevices = qemu_get_be32(f);
    got_regions = qemu_get_be32(f);
    if (qemu_file_get_error_obj(f, errp)) {
        return false;
    }
    if (algorithm != CHECKSUMS_ALGORITHM_CRC32C ||
        region_size != CHECKSUMS_REGION_SIZE ||
        sc->ndevices > CHECKSUMS_MAX_DEVICES ||
        got_regions != nregions || nregions > CHECKSUMS_MAX_REGIONS) {
        error_setg(errp, "checksums section at offset %" PRIu64 ": expected "
                   "algorithm %u (CRC32C), regions of %u bytes, at most %u "
                   "devices and %" PRIu64 " regions (what the block list "
                   "holds, at most %u); found algorithm %u, regions of %u bytes, %u "
                   "devices, %u regions", sc->offset,
                   CHECKSUMS_ALGORITHM_CRC32C, (unsigned)CHECKSUMS_REGION_SIZE,
                   CHECKSUMS_MAX_DEVICES, nregions, CHECKSUMS_MAX_REGIONS,
                   algorithm, region_size,
                   sc->ndevices, got_regions);
        return false;
    }
    sc->nregions = got_regions;
    sc->devices = g_new(uint32_t, sc->ndevices);
    for (uint32_t i = 0; i < sc->ndevices; i++) {
        sc->devices[i] = qemu_get_be32(f);
    }
    sc->regions = g_new(uint32_t, sc->nregions);
    for (uint32_t i = 0; i < sc->nregions; i++) {
        sc->regions[i] = qemu_get_be32(f);
    }
    computed = qemu_file_digest_take(f);
    stored = qemu_get_be32(f);
    if (qemu_file_get_error_obj(f, errp)) {
        return false;
    }
    if (computed != stored) {
        error_setg(errp, "checksums section at offset %" PRIu64 " is "
                   "damaged: its CRC32C is 0x%08x, it says 0x%08x",
                   sc->offset, computed, stored);
        return false;
    }
    return true;
}

void stream_checksums_clear(StreamChecksums *sc)
{
    g_free(sc->devices);
    g_free(sc->regions);
    memset(sc, 0, sizeof(*sc));
}
