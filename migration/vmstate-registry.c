/*
 * The list of device states a machine registered (include/migration/vmstate.h).
 */
#include "qemu/osdep.h"
#include "migration/vmstate.h"

struct VMStateRegistry {
    GArray *entries;    /* of VMStateEntry */
};

VMStateRegistry *vmstate_registry_new(void)
{
    VMStateRegistry *reg = g_new0(VMStateRegistry, 1);
    reg->entries = g_array_new(false, true, sizeof(VMStateEntry));
    return reg;
}

void vmstate_registry_free(VMStateRegistry *reg)
{
    if (reg) {
        g_array_free(reg->entries, true);
        g_free(reg);
    }
}

void vmstate_register(VMStateRegistry *reg, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque)
{
    /* Two entries with one (name, instance) could not be told apart on load. */
    g_assert(!vmstate_registry_find(reg, vmsd->name, instance_id));
    g_assert(strlen(vmsd->name) < 256);
    VMStateEntry e = { .vmsd = vmsd, .instance_id = instance_id,
                       .opaque = opaque };
    g_array_append_val(reg->entries, e);
}

unsigned vmstate_registry_count(const VMStateRegistry *reg)
{
    return reg->entries->len;
}

const VMStateEntry *vmstate_registry_entry(const VMStateRegistry *reg,
                                           unsigned index)
{
    g_assert(index < reg->entries->len);
    return &g_array_index(reg->entries, VMStateEntry, index);
}

const VMStateEntry *vmstate_registry_find(const VMStateRegistry *reg,
                                          const char *idstr,
                                          uint32_t instance_id)
{
    for (unsigned i = 0; i < reg->entries->len; i++) {
        const VMStateEntry *e = &g_array_index(reg->entries, VMStateEntry, i);
        if (e->instance_id == instance_id && !strcmp(e->vmsd->name, idstr)) {
            return e;
        }
    }
    return NULL;
}
