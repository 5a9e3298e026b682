/*
 * Start-up registers the shells: the monitor's own commands, then the
 * QMP and HMP commands of the machine and of migration.  The cores below
 * (machine.c, runstate.c, migration.c) do not know their shells.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/options.h"
#include "monitor/monitor.h"
#include "monitor/qmp-schema.h"
#include "sysemu/commands.h"
#include "sysemu/machine-cmds.h"
#include "sysemu/runstate.h"

void snapvm_register_commands(MachineState *ms, MigrationState *mig)
{
    monitor_register_commands(ms);
    machine_register_qmp_commands(ms);
    machine_register_hmp_commands(ms);
    migration_register_qmp_commands(mig);
    migration_register_hmp_commands(mig);
}

bool snapvm_check_schema(Error **errp)
{
    static const QEnumLookup *const enums[] = {
        &MigrationCapability_lookup, &MigrationStatus_lookup,
        &DirtyTrackingMethod_lookup, &BackgroundSnapshotMethod_lookup,
        &RunState_lookup, &ShutdownCause_lookup,
        &MappedRamRestoreMode_lookup,
    };

    if (!qmp_commands_check_schema(errp)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(enums); i++) {
        if (!qmp_schema_check_enum(enums[i], errp)) {
            return false;
        }
    }
    return true;
}
