/*
 * QEMU v3 migration streams, the load side (the save side is
 * migration/savevm.c).
 *
 * The loader trusts nothing: every length is bounded before use, every
 * section id and footer is checked, and every error names the section and
 * the byte offset where the stream went wrong.  It runs in two modes that
 * share all the parsing: into a machine (qemu_loadvm_state()), and
 * without one (qemu_loadvm_inspect(), for snapvm-img).
 */
#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qemu/crc32c.h"
#include "hw/boards.h"
#include "migration/checksums.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "savevm-format.h"

void stream_summary_init(StreamSummary *sum)
{
    memset(sum, 0, sizeof(*sum));
    sum->ram_blocks = g_array_new(false, true, sizeof(StreamRAMBlockInfo));
    sum->devices = g_array_new(false, true, sizeof(StreamDeviceInfo));
}

void stream_summary_clear(StreamSummary *sum)
{
    g_free(sum->machine_type);
    g_free(sum->description);
    if (sum->checksum_values) {
        stream_checksums_clear(sum->checksum_values);
        g_free(sum->checksum_values);
    }
    g_array_free(sum->ram_blocks, true);
    g_array_free(sum->devices, true);
    memset(sum, 0, sizeof(*sum));
}

typedef struct LoadVMState {
    QEMUFile *f;
    MachineState *ms;               /* NULL: inspect mode */
    VMStateRegistry *devices;       /* where device sections go, or NULL */
    StreamSummary *sum;
    RAMLoadState *rl;
    GHashTable *section_ids;        /* every id a START/FULL used */
    bool *device_loaded;            /* per registry entry */
    bool config_seen;
    bool caps_seen;
    bool ram_open;                  /* START seen, END not yet */
    const MappedRamLoadOptions *mapped_ram_opts;

    /* What the stream's bytes give, to compare with its checksums. */
    uint32_t framing_crc;
    GArray *device_crcs;            /* uint32_t, parallel to sum->devices */
    StreamChecksums checksums;      /* the section, once read */
} LoadVMState;

static const char *section_type_name(uint8_t type)
{
    switch (type) {
    case QEMU_VM_SECTION_START: return "START";
    case QEMU_VM_SECTION_PART: return "PART";
    case QEMU_VM_SECTION_END: return "END";
    case QEMU_VM_SECTION_FULL: return "FULL";
    default: return "?";
    }
}

static bool load_footer(LoadVMState *s, const char *idstr, uint32_t id,
                        Error **errp)
{
    uint64_t at = qemu_file_transferred(s->f);
    uint8_t marker = qemu_get_byte(s->f);
    uint32_t footer_id = qemu_get_be32(s->f);

    if (qemu_file_get_error_obj(s->f, errp)) {
        error_prepend(errp, "section '%s' (id %u) footer: ", idstr, id);
        return false;
    }
    if (marker != QEMU_VM_SECTION_FOOTER) {
        error_setg(errp, "section '%s' (id %u): expected its footer (0x7e) "
                   "at offset %" PRIu64 ", found 0x%02x: the section's "
                   "content does not match its description", idstr, id, at,
                   marker);
        return false;
    }
    if (footer_id != id) {
        error_setg(errp, "section '%s' (id %u): footer at offset %" PRIu64
                   " names section id %u", idstr, id, at, footer_id);
        return false;
    }
    return true;
}

static bool load_configuration(LoadVMState *s, uint64_t at, Error **errp)
{
    char name[MAX_MACHINE_TYPE_BYTES + 1];
    uint32_t len;

    if (s->config_seen || g_hash_table_size(s->section_ids)) {
        error_setg(errp, "configuration section at offset %" PRIu64 " is "
                   "not right after the header", at);
        return false;
    }
    len = qemu_get_be32(s->f);
    if (qemu_file_get_error_obj(s->f, errp)) {
        return false;
    }
    if (!len || len > MAX_MACHINE_TYPE_BYTES) {
        error_setg(errp, "configuration section at offset %" PRIu64 ": "
                   "machine type length %u is not in [1, %u]", at, len,
                   MAX_MACHINE_TYPE_BYTES);
        return false;
    }
    qemu_get_buffer(s->f, name, len);
    name[len] = 0;
    if (qemu_file_get_error_obj(s->f, errp)) {
        return false;
    }
    g_free(s->sum->machine_type);
    s->sum->machine_type = g_strndup(name, len);
    if (strlen(name) != len || strcmp(name, SNAPVM_MACHINE_TYPE)) {
        error_setg(errp, "the stream is for machine type '%s' (offset %"
                   PRIu64 "), this is '%s'", s->sum->machine_type, at + 5,
                   SNAPVM_MACHINE_TYPE);
        return false;
    }
    s->config_seen = true;
    return true;
}

/* The capabilities subsection, right after the configuration. */
static bool load_config_capabilities(LoadVMState *s, uint64_t at,
                                     Error **errp)
{
    char name[256];
    uint8_t len;
    uint32_t version, count;

    if (!s->config_seen || s->caps_seen ||
        g_hash_table_size(s->section_ids)) {
        error_setg(errp, "subsection at offset %" PRIu64 " is not the "
                   "configuration's capabilities", at);
        return false;
    }
    len = qemu_get_byte(s->f);
    qemu_get_buffer(s->f, name, len);
    name[len] = 0;
    version = qemu_get_be32(s->f);
    count = qemu_get_be32(s->f);
    if (qemu_file_get_error_obj(s->f, errp)) {
        error_prepend(errp, "configuration subsection at offset %" PRIu64
                      ": ", at);
        return false;
    }
    if (strcmp(name, CONFIG_CAPS_SUBSECTION) ||
        version != CONFIG_CAPS_VERSION || count > CONFIG_CAPS_MAX) {
        error_setg(errp, "configuration subsection at offset %" PRIu64 ": "
                   "expected '%s' version %u with at most %u capabilities, "
                   "found '%s' version %u with %u", at, CONFIG_CAPS_SUBSECTION,
                   CONFIG_CAPS_VERSION, CONFIG_CAPS_MAX, name, version, count);
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint64_t cap_at = qemu_file_transferred(s->f);

        len = qemu_get_byte(s->f);
        qemu_get_buffer(s->f, name, len);
        name[len] = 0;
        if (qemu_file_get_error_obj(s->f, errp)) {
            return false;
        }
        if (strcmp(name, MAPPED_RAM_CAPABILITY_NAME)) {
            error_setg(errp, "the stream needs capability '%s' (offset %"
                       PRIu64 "), which snapvm does not have", name, cap_at);
            return false;
        }
        if (!ram_load_set_mapped_ram(s->rl, s->f, s->mapped_ram_opts,
                                     errp)) {
            error_prepend(errp, "offset %" PRIu64 ": ", cap_at);
            return false;
        }
        s->sum->mapped_ram = true;
    }
    s->caps_seen = true;
    return true;
}

static bool load_device_section(LoadVMState *s, const char *idstr,
                                uint32_t id, uint32_t instance_id,
                                uint32_t version_id, uint64_t at,
                                Error **errp)
{
    const VMStateEntry *e = NULL;
    uint32_t crc;
    StreamDeviceInfo info = { .instance_id = instance_id,
                              .version_id = version_id,
                              .section_id = id, .offset = at };
    unsigned index;

    if (s->devices) {
        e = vmstate_registry_find(s->devices, idstr, instance_id);
    }
    if (!e) {
        error_setg(errp, "section '%s' instance %u (id %u) at offset %"
                   PRIu64 ": %s", idstr, instance_id, id, at,
                   s->devices ? "no such device here"
                              : "no device description to read it with");
        return false;
    }
    index = e - vmstate_registry_entry(s->devices, 0);
    if (s->device_loaded[index]) {
        error_setg(errp, "section '%s' instance %u (id %u) at offset %"
                   PRIu64 ": this device's state was already loaded",
                   idstr, instance_id, id, at);
        return false;
    }
    if (!vmstate_load_state(s->f, e->vmsd, e->opaque, version_id, errp)) {
        error_prepend(errp, "section '%s' instance %u (id %u) at offset %"
                      PRIu64 ": ", idstr, instance_id, id, at);
        return false;
    }
    if (!load_footer(s, idstr, id, errp)) {
        return false;
    }
    crc = qemu_file_digest_take(s->f);
    g_array_append_val(s->device_crcs, crc);
    s->device_loaded[index] = true;
    g_strlcpy(info.idstr, idstr, sizeof(info.idstr));
    info.size = qemu_file_transferred(s->f) - at;
    g_array_append_val(s->sum->devices, info);
    return true;
}

/*
 * Everything the checksums cover has been read when they arrive (the
 * section is the last before EOF), except the JSON trailer, checked in
 * load_description(), and the pages of a lazy restore, checked as they
 * are filled.  So a stream that does not match is refused here, before
 * the guest could run on it.
 */
static bool load_checksums_compare(LoadVMState *s, Error **errp)
{
    StreamChecksums *sc = &s->checksums;

    if (s->framing_crc != sc->framing) {
        error_setg(errp, "the stream's framing (offsets 0 to the end of its "
                   "RAM section: header, configuration, RAM block list and "
                   "page headers, page contents aside) does not match its "
                   "checksum: CRC32C 0x%08x, the checksums section at "
                   "offset %" PRIu64 " says 0x%08x", s->framing_crc,
                   sc->offset, sc->framing);
        return false;
    }
    if (sc->ndevices != s->device_crcs->len) {
        error_setg(errp, "the checksums section at offset %" PRIu64 " "
                   "covers %u device sections, the stream has %u",
                   sc->offset, sc->ndevices, s->device_crcs->len);
        return false;
    }
    for (unsigned i = 0; i < sc->ndevices; i++) {
        const StreamDeviceInfo *d = &g_array_index(s->sum->devices,
                                                   StreamDeviceInfo, i);
        uint32_t got = g_array_index(s->device_crcs, uint32_t, i);

        if (got != sc->devices[i]) {
            error_setg(errp, "device state of '%s' instance %u (section id "
                       "%u, offsets %" PRIu64 " to %" PRIu64 ") does not "
                       "match its checksum: CRC32C 0x%08x, the checksums "
                       "section says 0x%08x", d->idstr, d->instance_id,
                       d->section_id, d->offset, d->offset + d->size - 1,
                       got, sc->devices[i]);
            return false;
        }
    }
    return ram_load_verify(s->rl, sc, errp);
}

static bool load_checksums(LoadVMState *s, uint8_t type, uint32_t id,
                           uint32_t instance_id, uint32_t version_id,
                           uint64_t at, Error **errp)
{
    uint64_t nregions = 0;

    if (type != QEMU_VM_SECTION_FULL || instance_id != 0 ||
        version_id != CHECKSUMS_SECTION_VERSION || !s->sum->ram_complete ||
        s->sum->checksums) {
        error_setg(errp, "section '%s' (id %u) at offset %" PRIu64 ": "
                   "expected one FULL section of instance 0, version %u, "
                   "after the RAM section; found %s, instance %u, version "
                   "%u%s%s", CHECKSUMS_SECTION_IDSTR, id, at,
                   CHECKSUMS_SECTION_VERSION, section_type_name(type),
                   instance_id, version_id,
                   s->sum->ram_complete ? "" : ", before the RAM section's "
                   "end", s->sum->checksums ? ", a second time" : "");
        return false;
    }
    for (unsigned i = 0; i < s->sum->ram_blocks->len; i++) {
        nregions += checksums_block_regions(
            g_array_index(s->sum->ram_blocks, StreamRAMBlockInfo,
                          i).used_length);
    }
    s->checksums.offset = at;
    if (!checksums_get_body(s->f, &s->checksums, nregions, errp) ||
        !load_footer(s, CHECKSUMS_SECTION_IDSTR, id, errp)) {
        return false;
    }
    /* A reader with layouts from the trailer has one for this section. */
    if (s->devices) {
        const VMStateEntry *e = vmstate_registry_find(
            s->devices, CHECKSUMS_SECTION_IDSTR, 0);

        if (e) {
            s->device_loaded[e - vmstate_registry_entry(s->devices, 0)] =
                true;
        }
    }
    s->sum->checksums_offset = at;
    s->sum->checksummed_regions = nregions;
    if (!load_checksums_compare(s, errp)) {
        return false;
    }
    /* Only now: snapvm-img info says "verified" on this flag. */
    s->sum->checksums = true;
    return true;
}

static bool load_start_or_full(LoadVMState *s, uint8_t type, uint64_t at,
                               Error **errp)
{
    uint32_t id = qemu_get_be32(s->f);
    uint8_t len = qemu_get_byte(s->f);
    char idstr[256];
    uint32_t instance_id, version_id;

    qemu_get_buffer(s->f, idstr, len);
    idstr[len] = 0;
    instance_id = qemu_get_be32(s->f);
    version_id = qemu_get_be32(s->f);
    if (qemu_file_get_error_obj(s->f, errp)) {
        error_prepend(errp, "%s section header at offset %" PRIu64 ": ",
                      section_type_name(type), at);
        return false;
    }
    if (!len || strlen(idstr) != len) {
        error_setg(errp, "%s section (id %u) at offset %" PRIu64 ": its "
                   "name is empty or holds a NUL byte",
                   section_type_name(type), id, at);
        return false;
    }
    if (g_hash_table_contains(s->section_ids, GUINT_TO_POINTER(id))) {
        error_setg(errp, "section '%s' at offset %" PRIu64 " reuses "
                   "section id %u", idstr, at, id);
        return false;
    }
    g_hash_table_add(s->section_ids, GUINT_TO_POINTER(id));

    if (!strcmp(idstr, CHECKSUMS_SECTION_IDSTR)) {
        return load_checksums(s, type, id, instance_id, version_id, at,
                              errp);
    }
    if (strcmp(idstr, RAM_SECTION_IDSTR)) {
        if (type != QEMU_VM_SECTION_FULL) {
            error_setg(errp, "section '%s' (id %u) at offset %" PRIu64 " is "
                       "a START section; only 'ram' is iterative", idstr, id,
                       at);
            return false;
        }
        return load_device_section(s, idstr, id, instance_id, version_id,
                                   at, errp);
    }
    if (type != QEMU_VM_SECTION_START || instance_id != 0 ||
        version_id != RAM_SECTION_VERSION || s->sum->ram_sections) {
        error_setg(errp, "section 'ram' (id %u) at offset %" PRIu64 ": "
                   "expected the one START section of instance 0, version "
                   "%u; found %s, instance %u, version %u%s", id, at,
                   RAM_SECTION_VERSION, section_type_name(type), instance_id,
                   version_id, s->sum->ram_sections ? ", a second time" : "");
        return false;
    }
    s->sum->ram_sections++;
    if (!ram_load_section(s->rl, s->f, true, errp)) {
        error_prepend(errp, "section 'ram' (id %u): ", id);
        return false;
    }
    s->ram_open = true;
    return load_footer(s, idstr, id, errp);
}

static bool load_part_or_end(LoadVMState *s, uint8_t type, uint64_t at,
                             Error **errp)
{
    uint32_t id = qemu_get_be32(s->f);

    if (qemu_file_get_error_obj(s->f, errp)) {
        return false;
    }
    if (!s->ram_open || id != RAM_SECTION_ID) {
        error_setg(errp, "%s section at offset %" PRIu64 " names section "
                   "id %u, which is not an open iterative section",
                   section_type_name(type), at, id);
        return false;
    }
    s->sum->ram_sections++;
    if (!ram_load_section(s->rl, s->f, false, errp)) {
        error_prepend(errp, "section 'ram' (id %u, %s at offset %" PRIu64
                      "): ", id, section_type_name(type), at);
        return false;
    }
    if (!load_footer(s, RAM_SECTION_IDSTR, id, errp)) {
        return false;
    }
    if (type == QEMU_VM_SECTION_END) {
        s->ram_open = false;
        s->sum->ram_complete = true;
        s->framing_crc = qemu_file_digest_take(s->f);
    }
    return true;
}

/* Every device this side expects, with the state it was described with. */
static bool load_check_devices(LoadVMState *s, uint64_t at, Error **errp)
{
    unsigned n = s->devices ? vmstate_registry_count(s->devices) : 0;

    for (unsigned i = 0; i < n; i++) {
        const VMStateEntry *e = vmstate_registry_entry(s->devices, i);
        if (!s->device_loaded[i]) {
            error_setg(errp, "the stream ends (EOF at offset %" PRIu64 ") "
                       "without a section for device '%s' instance %u", at,
                       e->vmsd->name, e->instance_id);
            return false;
        }
    }
    return true;
}

static bool load_description(LoadVMState *s, Error **errp)
{
    uint64_t at = qemu_file_transferred(s->f);
    uint8_t type = qemu_get_byte(s->f);
    g_autoptr(GByteArray) json = g_byte_array_new();
    g_autoptr(VMStateLayout) layout = NULL;
    uint32_t len;

    if (qemu_file_get_error_obj(s->f, errp)) {
        error_prepend(errp, "no JSON description after EOF: ");
        return false;
    }
    if (type != QEMU_VM_VMDESCRIPTION) {
        error_setg(errp, "expected the JSON description (0x06) after EOF, "
                   "at offset %" PRIu64 ", found 0x%02x", at, type);
        return false;
    }
    len = qemu_get_be32(s->f);
    if (!qemu_file_get_error(s->f) && (!len || len > MAX_DESCRIPTION_BYTES)) {
        error_setg(errp, "JSON description at offset %" PRIu64 ": length "
                   "%u is not in [1, %" PRId64 "]", at, len,
                   MAX_DESCRIPTION_BYTES);
        return false;
    }
    /* Grow as bytes arrive, so a lying length costs only what is there. */
    while (json->len < len && !qemu_file_get_error(s->f)) {
        uint32_t n = MIN(len - json->len, 64 * KiB);
        g_byte_array_set_size(json, json->len + n);
        qemu_get_buffer(s->f, json->data + json->len - n, n);
    }
    if (qemu_file_get_error_obj(s->f, errp)) {
        error_prepend(errp, "JSON description at offset %" PRIu64 ": ", at);
        return false;
    }
    layout = vmstate_layout_from_json((const char *)json->data, json->len,
                                      errp);
    if (!layout) {
        error_prepend(errp, "JSON description at offset %" PRIu64 ": ", at);
        return false;
    }
    /* The description must describe what the sections held. */
    for (unsigned i = 0; i < s->sum->devices->len; i++) {
        StreamDeviceInfo *d = &g_array_index(s->sum->devices,
                                             StreamDeviceInfo, i);
        const VMStateEntry *e =
            vmstate_registry_find(vmstate_layout_registry(layout), d->idstr,
                                  d->instance_id);
        if (!e || e->vmsd->version_id != d->version_id) {
            error_setg(errp, "JSON description at offset %" PRIu64 " does "
                       "not describe section '%s' instance %u version %u",
                       at, d->idstr, d->instance_id, d->version_id);
            return false;
        }
    }
    if (s->sum->checksums &&
        crc32c(json->data, json->len) != s->checksums.description) {
        error_setg(errp, "JSON description at offset %" PRIu64 " (%u bytes) "
                   "does not match its checksum: CRC32C 0x%08x, the "
                   "checksums section at offset %" PRIu64 " says 0x%08x",
                   at, len, crc32c(json->data, json->len),
                   s->checksums.offset, s->checksums.description);
        return false;
    }
    s->sum->description = g_strndup((const char *)json->data, json->len);
    if (!qemu_file_at_eof(s->f)) {
        if (!qemu_file_get_error_obj(s->f, errp)) {
            error_setg(errp, "unexpected data after the JSON description, "
                       "at offset %" PRIu64, qemu_file_transferred(s->f));
        }
        return false;
    }
    return true;
}

static bool load_sections(LoadVMState *s, Error **errp)
{
    for (;;) {
        uint64_t at = qemu_file_transferred(s->f);
        uint8_t type = qemu_get_byte(s->f);
        bool ok;

        if (qemu_file_get_error_obj(s->f, errp)) {
            return false;
        }
        if (type != QEMU_VM_EOF && s->sum->checksums) {
            error_setg(errp, "section type 0x%02x at offset %" PRIu64 " "
                       "after the checksums section, which must be the last",
                       type, at);
            return false;
        }
        if (type != QEMU_VM_CONFIGURATION && type != QEMU_VM_EOF &&
            !s->config_seen) {
            error_setg(errp, "section type 0x%02x at offset %" PRIu64 " "
                       "before the configuration section", type, at);
            return false;
        }
        switch (type) {
        case QEMU_VM_CONFIGURATION:
            ok = load_configuration(s, at, errp);
            break;
        case QEMU_VM_SUBSECTION:
            ok = load_config_capabilities(s, at, errp);
            break;
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
            ok = load_start_or_full(s, type, at, errp);
            break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            ok = load_part_or_end(s, type, at, errp);
            break;
        case QEMU_VM_EOF:
            s->sum->eof_seen = true;
            if (!s->config_seen || !s->sum->ram_complete) {
                error_setg(errp, "the stream ends (EOF at offset %" PRIu64
                           ") before %s", at, !s->config_seen ?
                           "its configuration section" :
                           "the end of its RAM section");
                return false;
            }
            return load_check_devices(s, at, errp);
        default:
            error_setg(errp, "unknown section type 0x%02x at offset %"
                       PRIu64, type, at);
            return false;
        }
        if (!ok) {
            return false;
        }
    }
}

static bool loadvm_run(QEMUFile *f, MachineState *ms,
                       const StreamInspector *insp, StreamSummary *sum,
                       const MappedRamLoadOptions *mapped_ram_opts,
                       Error **errp)
{
    LoadVMState s = {
        .f = f, .ms = ms, .sum = sum, .mapped_ram_opts = mapped_ram_opts,
        .devices = ms ? machine_vmstate(ms) : (insp ? insp->devices : NULL),
        .section_ids = g_hash_table_new(NULL, NULL),
        .device_crcs = g_array_new(false, false, sizeof(uint32_t)),
    };
    uint32_t magic, version;
    bool ok = false;

    qemu_file_digest_start(f);
    s.rl = ram_load_new(ms, insp, sum);
    s.device_loaded = g_new0(bool, s.devices ?
                             vmstate_registry_count(s.devices) + 1 : 1);
    magic = qemu_get_be32(f);
    version = qemu_get_be32(f);
    if (qemu_file_get_error_obj(f, errp)) {
        error_prepend(errp, "stream header: ");
    } else if (magic != QEMU_VM_FILE_MAGIC) {
        error_setg(errp, "not a migration stream: magic 0x%08x at offset 0, "
                   "expected 0x%08x ('QEVM')", magic, QEMU_VM_FILE_MAGIC);
    } else if (version != QEMU_VM_FILE_VERSION) {
        error_setg(errp, "stream format version %u at offset 4 is not "
                   "supported (only %u)", version, QEMU_VM_FILE_VERSION);
    } else if (load_sections(&s, errp) && load_description(&s, errp)) {
        sum->complete = true;
        ok = true;
    }
    sum->stream_bytes = qemu_file_transferred(f);
    if (ok && sum->checksums) {
        sum->checksum_values = g_memdup2(&s.checksums, sizeof(s.checksums));
        memset(&s.checksums, 0, sizeof(s.checksums));
    }
    ram_load_free(s.rl);
    g_free(s.device_loaded);
    g_hash_table_destroy(s.section_ids);
    g_array_free(s.device_crcs, true);
    stream_checksums_clear(&s.checksums);
    return ok;
}

bool qemu_loadvm_state(QEMUFile *f, MachineState *ms, Error **errp)
{
    return qemu_loadvm_state_mapped_ram(f, ms, NULL, errp);
}

bool qemu_loadvm_state_mapped_ram(QEMUFile *f, MachineState *ms,
                                  const MappedRamLoadOptions *opts,
                                  Error **errp)
{
    StreamSummary sum;
    bool ok;

    stream_summary_init(&sum);
    ok = loadvm_run(f, ms, NULL, &sum, opts, errp);
    if (ok && !sum.checksums) {
        warn_report("the stream carries no checksums (written before "
                    "snapvm had them, or with x-checksums off): its RAM and "
                    "device state are loaded without being verified");
    }
    stream_summary_clear(&sum);
    return ok;
}

bool qemu_loadvm_inspect(QEMUFile *f, const StreamInspector *insp,
                         StreamSummary *sum, Error **errp)
{
    return loadvm_run(f, NULL, insp, sum, NULL, errp);
}
