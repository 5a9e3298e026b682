/*
 * What main() needs from migration.
 */
#ifndef MIGRATION_MISC_H
#define MIGRATION_MISC_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct MachineState MachineState;
typedef struct MigrationState MigrationState;

/*
 * Create the migration state of @ms.  Called once, after the machine;
 * start-up then registers the QMP and HMP shells over it
 * (snapvm_register_commands()).
 */
MigrationState *migration_init(MachineState *ms, Error **errp);

/*
 * -incoming: @uri is a transport URI or "defer".  Called after the
 * monitors are up; a URI starts loading (the machine is in "inmigrate"
 * and starts running when the load ends, unless -S was given).
 */
bool migration_incoming_start(MigrationState *s, const char *uri,
                              bool autostart, Error **errp);

/* At exit: cancel whatever runs and join the threads. */
void migration_shutdown(MigrationState *s);

#endif
