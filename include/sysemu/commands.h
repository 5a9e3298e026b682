/*
 * Every QMP and HMP command, registered once from start-up
 * (system/commands.c).  The shells sit above the subsystems they call:
 * the machine and migration cores never register their own shells.
 */
#ifndef SYSEMU_COMMANDS_H
#define SYSEMU_COMMANDS_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct MachineState MachineState;
typedef struct MigrationState MigrationState;

/*
 * Register the monitor's, the machine's and migration's QMP and HMP
 * commands over @ms and @mig.  The commands only keep the pointers until
 * they run: the build-time schema check (qapi-schema-check) registers
 * them over NULL and never dispatches one.
 */
void snapvm_register_commands(MachineState *ms, MigrationState *mig);

/*
 * The registered QMP argument tables and the C enum name tables against
 * the qapi/ schema; false with the first difference in @errp.  Run at
 * build time (system/qapi-schema-check.c): a difference fails the build.
 */
bool snapvm_check_schema(Error **errp);

#endif
