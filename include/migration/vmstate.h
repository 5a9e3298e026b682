/*
 * Device state descriptions.  A device says *what* its state is (named,
 * typed fields at offsets in its state struct, a version); the migration
 * core says how it travels (migration/vmstate.c writes and reads the fields
 * big-endian in a FULL section and describes them in the JSON trailer).
 * A device never writes to a stream itself.
 */
#ifndef MIGRATION_VMSTATE_H
#define MIGRATION_VMSTATE_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef enum VMStateFieldType {
    VMS_UINT8,
    VMS_UINT16,
    VMS_UINT32,
    VMS_UINT64,
    VMS_BUFFER,     /* @size raw bytes */
} VMStateFieldType;

typedef struct VMStateField {
    const char *name;
    size_t offset;
    VMStateFieldType type;
    size_t size;            /* bytes on the wire */
} VMStateField;

typedef struct VMStateDescription {
    const char *name;       /* section idstr, e.g. "cpu", "serial" */
    uint32_t version_id;
    uint32_t minimum_version_id;
    /* Called with the machine paused, before the fields are read. */
    void (*pre_save)(void *opaque);
    /* Called after the fields were written into @opaque; may refuse. */
    bool (*post_load)(void *opaque, uint32_t version_id, Error **errp);
    const VMStateField *fields;     /* ends with VMSTATE_END_OF_LIST() */
} VMStateDescription;

#define VMSTATE_FIELD_(f, st, t, sz) \
    { .name = #f, .offset = offsetof(st, f), .type = (t), .size = (sz) }
#define VMSTATE_UINT8(f, st)  VMSTATE_FIELD_(f, st, VMS_UINT8, 1)
#define VMSTATE_UINT16(f, st) VMSTATE_FIELD_(f, st, VMS_UINT16, 2)
#define VMSTATE_UINT32(f, st) VMSTATE_FIELD_(f, st, VMS_UINT32, 4)
#define VMSTATE_UINT64(f, st) VMSTATE_FIELD_(f, st, VMS_UINT64, 8)
#define VMSTATE_BUFFER(f, st) \
    VMSTATE_FIELD_(f, st, VMS_BUFFER, sizeof(((st *)0)->f))
/* Element i of an array member, named "f[i]". */
#define VMSTATE_UINT64_ELEM(f, i, name_, st) \
    { .name = (name_), .offset = offsetof(st, f) + (i) * sizeof(uint64_t), \
      .type = VMS_UINT64, .size = 8 }
#define VMSTATE_END_OF_LIST() { .name = NULL }

/*
 * The devices of one machine whose state travels in a stream, in
 * registration order (which is the order of their sections).
 */
typedef struct VMStateEntry {
    const VMStateDescription *vmsd;
    uint32_t instance_id;
    void *opaque;
} VMStateEntry;

typedef struct VMStateRegistry VMStateRegistry;

VMStateRegistry *vmstate_registry_new(void);
void vmstate_registry_free(VMStateRegistry *reg);
void vmstate_register(VMStateRegistry *reg, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque);
unsigned vmstate_registry_count(const VMStateRegistry *reg);
const VMStateEntry *vmstate_registry_entry(const VMStateRegistry *reg,
                                           unsigned index);
const VMStateEntry *vmstate_registry_find(const VMStateRegistry *reg,
                                          const char *idstr,
                                          uint32_t instance_id);

/* ---- writing and reading device state (migration/vmstate.c) ---- */

typedef struct QEMUFile QEMUFile;
typedef struct _JsonBuilder JsonBuilder;

/* Bytes that @vmsd's fields take in a stream. */
size_t vmstate_wire_size(const VMStateDescription *vmsd);

/* Call pre_save, then write every field big-endian. */
void vmstate_save_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque);
/*
 * Read fields written by @version_id of @vmsd into @opaque, then call
 * post_load.  Refuses a version outside [minimum_version_id, version_id],
 * a stream that ends early and a post_load refusal, naming the field.
 */
bool vmstate_load_state(QEMUFile *f, const VMStateDescription *vmsd,
                        void *opaque, uint32_t version_id, Error **errp);

/*
 * Add @e to the "devices" array of a stream's JSON description:
 * {"name", "instance_id", "vmsd_name", "version", "fields": [{"name",
 * "type", "size"}]}, the keys QEMU's scripts/analyze-migration.py reads.
 */
void vmstate_describe_entry(JsonBuilder *b, const VMStateEntry *e);

/*
 * Device layouts rebuilt from a stream's JSON description, so a stream
 * can be parsed without the machine that wrote it (snapvm-img): every
 * device becomes an entry whose fields are read into a scratch buffer.
 */
typedef struct VMStateLayout VMStateLayout;

VMStateLayout *vmstate_layout_from_json(const char *json, size_t len,
                                        Error **errp);
VMStateRegistry *vmstate_layout_registry(VMStateLayout *layout);
void vmstate_layout_free(VMStateLayout *layout);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VMStateLayout, vmstate_layout_free)

#endif
