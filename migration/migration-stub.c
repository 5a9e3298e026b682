/*
 * Stand-in until migration.c lands: no migration commands, no -incoming.
 */
#include "qemu/osdep.h"
#include "migration/misc.h"

struct MigrationState {
    MachineState *machine;
};

MigrationState *migration_init(MachineState *ms, Error **errp)
{
    MigrationState *s = g_new0(MigrationState, 1);
    s->machine = ms;
    return s;
}

bool migration_incoming_start(MigrationState *s, const char *uri,
                              bool autostart, Error **errp)
{
    error_setg(errp, "-incoming is not supported yet");
    return false;
}

void migration_shutdown(MigrationState *s)
{
    g_free(s);
}
