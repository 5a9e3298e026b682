/*
 * Device state on the wire: the fields of a VMStateDescription, big-endian,
 * in declaration order, with no framing of their own (the section header
 * and footer around them are savevm.c's).
 */
#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "migration/vmstate.h"
#include "migration/qemu-file.h"

/* Bounds for layouts read from a stream: far above any real device. */
#define LAYOUT_MAX_DEVICES      4096
#define LAYOUT_MAX_FIELDS       4096
#define LAYOUT_MAX_DEVICE_BYTES (16 * MiB)

static const char *const vmstate_type_names[] = {
    [VMS_UINT8] = "uint8",
    [VMS_UINT16] = "uint16",
    [VMS_UINT32] = "uint32",
    [VMS_UINT64] = "uint64",
    [VMS_BUFFER] = "buffer",
};

size_t vmstate_wire_size(const VMStateDescription *vmsd)
{
    size_t total = 0;

    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        total += fl->size;
    }
    return total;
}

void vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque)
{
    if (vmsd->pre_save) {
        vmsd->pre_save(opaque);
    }
    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        const uint8_t *p = (const uint8_t *)opaque + fl->offset;
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;

        /* memcpy: fields need not be aligned (packed device structs). */
        switch (fl->type) {
        case VMS_UINT8:
            qemu_put_byte(f, *p);
            break;
        case VMS_UINT16:
            memcpy(&v16, p, 2);
            qemu_put_be16(f, v16);
            break;
        case VMS_UINT32:
            memcpy(&v32, p, 4);
            qemu_put_be32(f, v32);
            break;
        case VMS_UINT64:
            memcpy(&v64, p, 8);
            qemu_put_be64(f, v64);
            break;
        case VMS_BUFFER:
            qemu_put_buffer(f, p, fl->size);
            break;
        }
    }
}

bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, uint32_t version_id, Error **errp)
{
    if (version_id > vmsd->version_id) {
        error_setg(errp, "'%s' version %u is newer than this build's %u",
                   vmsd->name, version_id, vmsd->version_id);
        return false;
    }
    if (version_id < vmsd->minimum_version_id) {
        error_setg(errp, "'%s' version %u is older than the oldest this "
                   "build reads (%u)", vmsd->name, version_id,
                   vmsd->minimum_version_id);
        return false;
    }
    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        uint8_t *p = (uint8_t *)opaque + fl->offset;
        uint64_t field_offset = qemu_file_transferred(f);
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;

        switch (fl->type) {
        case VMS_UINT8:
            *p = qemu_get_byte(f);
            break;
        case VMS_UINT16:
            v16 = qemu_get_be16(f);
            memcpy(p, &v16, 2);
            break;
        case VMS_UINT32:
            v32 = qemu_get_be32(f);
            memcpy(p, &v32, 4);
            break;
        case VMS_UINT64:
            v64 = qemu_get_be64(f);
            memcpy(p, &v64, 8);
            break;
        case VMS_BUFFER:
            qemu_get_buffer(f, p, fl->size);
            break;
        }
        if (qemu_file_get_error_obj(f, errp)) {
            error_prepend(errp, "'%s' field '%s' (at offset %" PRIu64 "): ",
                          vmsd->name, fl->name, field_offset);
            return false;
        }
    }
    if (vmsd->post_load && !vmsd->post_load(opaque, version_id, errp)) {
        error_prepend(errp, "'%s' refused its state: ", vmsd->name);
        return false;
    }
    return true;
}

void vmstate_describe_entry(JsonBuilder *b, const VMStateEntry *e)
{
    const VMStateDescription *vmsd = e->vmsd;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, vmsd->name);
    json_builder_set_member_name(b, "instance_id");
    json_builder_add_int_value(b, e->instance_id);
    json_builder_set_member_name(b, "vmsd_name");
    json_builder_add_string_value(b, vmsd->name);
    json_builder_set_member_name(b, "version");
    json_builder_add_int_value(b, vmsd->version_id);
    json_builder_set_member_name(b, "fields");
    json_builder_begin_array(b);
    for (const VMStateField *fl = vmsd->fields; fl->name; fl++) {
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, fl->name);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, vmstate_type_names[fl->type]);
        json_builder_set_member_name(b, "size");
        json_builder_add_int_value(b, fl->size);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
}

/* ---- layouts from a JSON description ---- */

struct VMStateLayout {
    VMStateRegistry *reg;
    GPtrArray *allocations;     /* names, field arrays, vmsds, scratch */
    uint64_t bytes;             /* of all devices' state, bounded */
};

static void *layout_keep(VMStateLayout *l, void *p)
{
    g_ptr_array_add(l->allocations, p);
    return p;
}

static bool json_get_uint(JsonObject *o, const char *key, uint64_t max,
                          uint64_t *out, const char *what, Error **errp)
{
    JsonNode *n = json_object_get_member(o, key);

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_INT64 ||
        json_node_get_int(n) < 0 || (uint64_t)json_node_get_int(n) > max) {
        error_setg(errp, "%s: \"%s\" missing or not an integer in "
                   "[0, %" PRIu64 "]", what, key, max);
        return false;
    }
    *out = json_node_get_int(n);
    return true;
}

static const char *json_get_name(JsonObject *o, const char *key,
                                 const char *what, Error **errp)
{
    JsonNode *n = json_object_get_member(o, key);
    const char *s;

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING ||
        !(s = json_node_get_string(n)) || !*s || strlen(s) > 255) {
        error_setg(errp, "%s: \"%s\" missing or not a name of 1 to 255 "
                   "characters", what, key);
        return NULL;
    }
    return s;
}

static VMStateFieldType layout_field_type(const char *type, uint64_t size)
{
    for (unsigned t = VMS_UINT8; t <= VMS_UINT64; t++) {
        if (!strcmp(type, vmstate_type_names[t]) && size == (1u << t)) {
            return t;
        }
    }
    /* Any other type is opaque bytes, as analyze-migration.py reads it. */
    return VMS_BUFFER;
}

static bool layout_add_device(VMStateLayout *l, JsonNode *node,
                              unsigned index, Error **errp)
{
    g_autofree char *what = g_strdup_printf("description of device %u",
                                            index);
    JsonObject *dev;
    JsonArray *fields;
    JsonNode *fields_node;
    VMStateDescription *vmsd;
    VMStateField *vf;
    const char *name;
    uint64_t instance_id, version, total = 0;
    unsigned nfields;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "%s is not an object", what);
        return false;
    }
    dev = json_node_get_object(node);
    name = json_get_name(dev, "name", what, errp);
    if (!name ||
        !json_get_uint(dev, "instance_id", UINT32_MAX, &instance_id, what,
                       errp) ||
        !json_get_uint(dev, "version", UINT32_MAX, &version, what, errp)) {
        return false;
    }
    fields_node = json_object_get_member(dev, "fields");
    if (!fields_node || !JSON_NODE_HOLDS_ARRAY(fields_node)) {
        error_setg(errp, "%s ('%s'): \"fields\" missing or not an array",
                   what, name);
        return false;
    }
    fields = json_node_get_array(fields_node);
    nfields = json_array_get_length(fields);
    if (nfields > LAYOUT_MAX_FIELDS) {
        error_setg(errp, "%s ('%s'): %u fields, more than %u", what, name,
                   nfields, LAYOUT_MAX_FIELDS);
        return false;
    }
    vf = layout_keep(l, g_new0(VMStateField, nfields + 1));
    for (unsigned i = 0; i < nfields; i++) {
        JsonNode *fn = json_array_get_element(fields, i);
        g_autofree char *fwhat = g_strdup_printf("%s ('%s') field %u",
                                                 what, name, i);
        const char *fname, *ftype;
        uint64_t size;

        if (!JSON_NODE_HOLDS_OBJECT(fn)) {
            error_setg(errp, "%s is not an object", fwhat);
            return false;
        }
        fname = json_get_name(json_node_get_object(fn), "name", fwhat, errp);
        ftype = fname ? json_get_name(json_node_get_object(fn), "type",
                                      fwhat, errp) : NULL;
        if (!ftype ||
            !json_get_uint(json_node_get_object(fn), "size",
                           LAYOUT_MAX_DEVICE_BYTES, &size, fwhat, errp)) {
            return false;
        }
        /* Bound the sum over devices too: each one's scratch is allocated. */
        if (l->bytes + total + size > LAYOUT_MAX_DEVICE_BYTES) {
            error_setg(errp, "%s ('%s'): more than %" PRId64 " bytes of "
                       "fields, all devices together", what, name,
                       LAYOUT_MAX_DEVICE_BYTES);
            return false;
        }
        vf[i].name = layout_keep(l, g_strdup(fname));
        vf[i].type = layout_field_type(ftype, size);
        vf[i].size = size;
        vf[i].offset = total;
        total += size;
    }
    if (vmstate_registry_find(l->reg, name, instance_id)) {
        error_setg(errp, "%s: '%s' instance %" PRIu64 " is described twice",
                   what, name, instance_id);
        return false;
    }
    l->bytes += total;
    vmsd = layout_keep(l, g_new0(VMStateDescription, 1));
    vmsd->name = layout_keep(l, g_strdup(name));
    /* The section must carry exactly the version the description names. */
    vmsd->version_id = version;
    vmsd->minimum_version_id = version;
    vmsd->fields = vf;
    vmstate_register(l->reg, instance_id, vmsd,
                     layout_keep(l, g_malloc0(MAX(total, 1))));
    return true;
}

VMStateLayout *vmstate_layout_from_json(const char *json, size_t len,
                                        Error **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) gerr = NULL;
    VMStateLayout *l;
    JsonNode *root, *devices;
    JsonArray *arr;

    if (!json_parser_load_from_data(parser, json, len, &gerr)) {
        error_setg(errp, "description is not valid JSON: %s", gerr->message);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(errp, "description is not a JSON object");
        return NULL;
    }
    devices = json_object_get_member(json_node_get_object(root), "devices");
    if (!devices || !JSON_NODE_HOLDS_ARRAY(devices)) {
        error_setg(errp, "description has no \"devices\" array");
        return NULL;
    }
    arr = json_node_get_array(devices);
    if (json_array_get_length(arr) > LAYOUT_MAX_DEVICES) {
        error_setg(errp, "description lists more than %u devices",
                   LAYOUT_MAX_DEVICES);
        return NULL;
    }
    l = g_new0(VMStateLayout, 1);
    l->reg = vmstate_registry_new();
    l->allocations = g_ptr_array_new_with_free_func(g_free);
    for (unsigned i = 0; i < json_array_get_length(arr); i++) {
        if (!layout_add_device(l, json_array_get_element(arr, i), i, errp)) {
            vmstate_layout_free(l);
            return NULL;
        }
    }
    return l;
}

VMStateRegistry *vmstate_layout_registry(VMStateLayout *layout)
{
    return layout->reg;
}

void vmstate_layout_free(VMStateLayout *layout)
{
    if (layout) {
        vmstate_registry_free(layout->reg);
        g_ptr_array_free(layout->allocations, true);
        g_free(layout);
    }
}
