/*
 * QEMU v3 migration streams, the save side: the header, the configuration
 * section, the framing of every section, device sections, the checksums
 * section, EOF and the JSON trailer.  Its mirror image, the loader, is
 * migration/loadvm.c; the constants both use are in savevm-format.h.
 */
#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qemu/crc32c.h"
#include "hw/boards.h"
#include "migration/channel.h"
#include "migration/checksums.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "savevm-format.h"


static void save_section_header(QEMUFile *f, uint8_t type, uint32_t id,
                                const char *idstr, uint32_t instance_id,
                                uint32_t version_id)
{
    qemu_put_byte(f, type);
    qemu_put_be32(f, id);
    if (type == QEMU_VM_SECTION_START || type == QEMU_VM_SECTION_FULL) {
        qemu_put_byte(f, strlen(idstr));
        qemu_put_buffer(f, idstr, strlen(idstr));
        qemu_put_be32(f, instance_id);
        qemu_put_be32(f, version_id);
    }
}

static void save_section_footer(QEMUFile *f, uint32_t id)
{
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, id);
}

/*
 * The layout changes how RAM is read, so the reader must know before the
 * RAM section: QEMU says so with this subsection of the configuration.
 */
static void save_config_capabilities(QEMUFile *f)
{
    qemu_put_byte(f, QEMU_VM_SUBSECTION);
    qemu_put_byte(f, strlen(CONFIG_CAPS_SUBSECTION));
    qemu_put_buffer(f, CONFIG_CAPS_SUBSECTION, strlen(CONFIG_CAPS_SUBSECTION));
    qemu_put_be32(f, CONFIG_CAPS_VERSION);
    qemu_put_be32(f, 1);
    qemu_put_byte(f, strlen(MAPPED_RAM_CAPABILITY_NAME));
    qemu_put_buffer(f, MAPPED_RAM_CAPABILITY_NAME,
                    strlen(MAPPED_RAM_CAPABILITY_NAME));
}

bool qemu_savevm_state_begin(QEMUFile *f, MachineState *ms,
                             RAMSaveState *rs, Error **errp)
{
    if (ram_save_checksums(rs)) {
        qemu_file_digest_start(f);
    }
    qemu_put_be32(f, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(f, QEMU_VM_FILE_VERSION);

    qemu_put_byte(f, QEMU_VM_CONFIGURATION);
    qemu_put_be32(f, strlen(SNAPVM_MACHINE_TYPE));
    qemu_put_buffer(f, SNAPVM_MACHINE_TYPE, strlen(SNAPVM_MACHINE_TYPE));
    if (ram_save_is_mapped_ram(rs)) {
        save_config_capabilities(f);
    }

    save_section_header(f, QEMU_VM_SECTION_START, RAM_SECTION_ID,
                        RAM_SECTION_IDSTR, 0, RAM_SECTION_VERSION);
    if (!ram_save_setup(f, rs, errp)) {
        return false;
    }
    save_section_footer(f, RAM_SECTION_ID);
    return !qemu_file_get_error_obj(f, errp);
}

bool qemu_savevm_state_iterate(QEMUFile *f, RAMSaveState *rs,
                               uint64_t max_bytes, bool *done, Error **errp)
{
    *done = ram_save_remaining(rs) == 0;
    if (*done) {
        return true;
    }
    save_section_header(f, QEMU_VM_SECTION_PART, RAM_SECTION_ID, NULL, 0, 0);
    if (!ram_save_iterate(f, rs, max_bytes, errp)) {
        return false;
    }
    save_section_footer(f, RAM_SECTION_ID);
    *done = ram_save_remaining(rs) == 0;
    return !qemu_file_get_error_obj(f, errp);
}

bool qemu_savevm_ram_complete(QEMUFile *f, RAMSaveState *rs, Error **errp)
{
    uint64_t left;

    save_section_header(f, QEMU_VM_SECTION_END, RAM_SECTION_ID, NULL, 0, 0);
    if (!ram_save_iterate(f, rs, UINT64_MAX, errp)) {
        return false;
    }
    save_section_footer(f, RAM_SECTION_ID);
    left = ram_save_remaining(rs);
    if (left) {
        error_setg(errp, "%" PRIu64 " RAM pages were never handed out to "
                   "be saved", left);
        return false;
    }
    if (!ram_save_mapped_ram_complete(rs, errp)) {
        return false;
    }
    if (ram_save_checksums(rs)) {
        ram_save_checksums(rs)->framing = qemu_file_digest_take(f);
    }
    return !qemu_file_get_error_obj(f, errp);
}

/* Each section's CRC goes to @ck (if any), from its type byte on. */
static void save_device_sections(QEMUFile *f, MachineState *ms,
                                 SaveChecksums *ck)
{
    VMStateRegistry *reg = machine_vmstate(ms);

    qemu_file_digest_take(f);
    for (unsigned i = 0; i < vmstate_registry_count(reg); i++) {
        const VMStateEntry *e = vmstate_registry_entry(reg, i);

        save_section_header(f, QEMU_VM_SECTION_FULL, DEVICE_SECTION_ID(i),
                            e->vmsd->name, e->instance_id,
                            e->vmsd->version_id);
        vmstate_save_state(f, e->vmsd, e->opaque);
        save_section_footer(f, DEVICE_SECTION_ID(i));
        if (ck && i < ck->ndevices) {
            ck->devices[i] = qemu_file_digest_take(f);
        }
    }
}

bool qemu_savevm_device_state_to_buffer(MachineState *ms, RAMSaveState *rs,
                                        GByteArray *buf, Error **errp)
{
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(buf));

    qemu_file_digest_start(f);
    save_device_sections(f, ms, ram_save_checksums(rs));
    return qemu_fclose(f, errp);
}

void qemu_savevm_put_checksums(QEMUFile *f, MachineState *ms,
                               RAMSaveState *rs)
{
    SaveChecksums *ck = ram_save_checksums(rs);
    uint32_t id = DEVICE_SECTION_ID(
        vmstate_registry_count(machine_vmstate(ms)));
    RAMBlock *const *blocks;
    unsigned nblocks;

    if (!ck) {
        return;
    }
    blocks = ram_save_blocks(rs, &nblocks);
    /* The section's own CRC starts at its type byte. */
    qemu_file_digest_take(f);
    save_section_header(f, QEMU_VM_SECTION_FULL, id, CHECKSUMS_SECTION_IDSTR,
                        0, CHECKSUMS_SECTION_VERSION);
    checksums_put_body(f, ck, blocks, nblocks);
    save_section_footer(f, id);
}

static uint64_t save_checksum_regions(RAMSaveState *rs)
{
    unsigned nblocks;
    RAMBlock *const *blocks = ram_save_blocks(rs, &nblocks);
    uint64_t n = 0;

    for (unsigned i = 0; i < nblocks; i++) {
        n += checksums_block_regions(blocks[i]->used_length);
    }
    return n;
}

/*
 * QEMU's analyze-migration.py finds the JSON by looking for the last NUL
 * byte of the file and the first '{' after it, so no byte of the length
 * after its last NUL may be '{': pad with spaces until none is.
 */
char *qemu_savevm_description(const VMStateRegistry *reg, RAMSaveState *rs,
                              uint32_t *len)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    GString *s;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "page_size");
    json_builder_add_int_value(b, TARGET_PAGE_SIZE);
    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (unsigned i = 0; i < vmstate_registry_count(reg); i++) {
        vmstate_describe_entry(b, vmstate_registry_entry(reg, i));
    }
    if (rs && ram_save_checksums(rs)) {
        checksums_describe(b, ram_save_checksums(rs)->ndevices,
                           save_checksum_regions(rs));
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    s = g_string_new(NULL);
    json_generator_to_gstring(gen, s);
    for (;;) {
        uint8_t be[4] = { s->len >> 24, s->len >> 16, s->len >> 8, s->len };
        bool clash = false, after_nul = false;

        for (int i = 0; i < 4; i++) {
            after_nul = after_nul || !be[i];
            clash = clash || (after_nul && be[i] == '{');
        }
        if (!clash) {
            break;
        }
        g_string_append_c(s, ' ');
    }
    *len = s->len;
    return g_string_free(s, false);
}

/* EOF and the JSON trailer, whose CRC goes into the checksums. */
static void save_tail(QEMUFile *f, MachineState *ms, RAMSaveState *rs)
{
    uint32_t len;
    g_autofree char *json = qemu_savevm_description(machine_vmstate(ms), rs,
                                                    &len);

    if (ram_save_checksums(rs)) {
        ram_save_checksums(rs)->description = crc32c(json, len);
    }
    qemu_put_byte(f, QEMU_VM_EOF);
    qemu_put_byte(f, QEMU_VM_VMDESCRIPTION);
    qemu_put_be32(f, len);
    qemu_put_buffer(f, json, len);
}

bool qemu_savevm_tail_to_buffer(MachineState *ms, RAMSaveState *rs,
                                GByteArray *tail, Error **errp)
{
    QEMUFile *f = qemu_file_new_output(mig_channel_new_buffer(tail));

    save_tail(f, ms, rs);
    return qemu_fclose(f, errp);
}

/* The checksums section, EOF and the trailer, flushed. */
static bool save_end(QEMUFile *f, MachineState *ms, RAMSaveState *rs,
                     Error **errp)
{
    g_autoptr(GByteArray) tail = g_byte_array_new();

    /* The trailer's CRC is in the section before it: render it first. */
    if (!qemu_savevm_tail_to_buffer(ms, rs, tail, errp)) {
        return false;
    }
    qemu_savevm_put_checksums(f, ms, rs);
    qemu_put_buffer(f, tail->data, tail->len);
    qemu_fflush(f);
    return !qemu_file_get_error_obj(f, errp);
}

bool qemu_savevm_state_finish(QEMUFile *f, MachineState *ms,
                              RAMSaveState *rs,
                              const GByteArray *device_state, Error **errp)
{
    qemu_put_buffer(f, device_state->data, device_state->len);
    return save_end(f, ms, rs, errp);
}

bool qemu_savevm_state_complete(QEMUFile *f, MachineState *ms,
                                RAMSaveState *rs, Error **errp)
{
    if (!qemu_savevm_ram_complete(f, rs, errp)) {
        return false;
    }
    save_device_sections(f, ms, ram_save_checksums(rs));
    return save_end(f, ms, rs, errp);
}
