/*
 * The machine's monitor commands.  QMP (machine-qmp-cmds.c) and HMP
 * (machine-hmp-cmds.c) are thin shells over these functions.
 */
#ifndef SYSEMU_MACHINE_CMDS_H
#define SYSEMU_MACHINE_CMDS_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct MachineState MachineState;

typedef struct VersionInfo {
    int major, minor, micro;
    const char *package;
} VersionInfo;

void qmp_query_version(VersionInfo *info);
bool qmp_stop(MachineState *ms, Error **errp);
bool qmp_cont(MachineState *ms, Error **errp);
void qmp_quit(MachineState *ms);
/* Guest physical [addr, addr + size) to @filename. */
bool qmp_pmemsave(MachineState *ms, uint64_t addr, uint64_t size,
                  const char *filename, Error **errp);

/*
 * The shells' registration (machine-qmp-cmds.c, machine-hmp-cmds.c); once,
 * from start-up (snapvm_register_commands()).
 */
void machine_register_qmp_commands(MachineState *ms);
void machine_register_hmp_commands(MachineState *ms);

#endif
