/*
 * Building a machine without the command line.
 *
 * main() fills a MachineConfig from its options; tests (migration unit
 * tests in particular) fill one by hand to get a small machine: guest RAM
 * in one or more RAMBlocks, parked vCPUs, the serial port, the board, and
 * every device's state registered in machine_vmstate().
 */
#ifndef HW_MACHINE_CONFIG_H
#define HW_MACHINE_CONFIG_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "exec/ramblock.h"

typedef struct MachineState MachineState;

#define MACHINE_DEFAULT_RAM_SIZE (128 * MiB)
#define MACHINE_MAX_RAM_SIZE     (64 * GiB)
#define MACHINE_MAX_CPUS         32

/* One -object memory-backend-*,id=..,size=.. used by a -numa node. */
typedef struct MemoryBackendConfig {
    const char *id;             /* becomes the RAMBlock's idstr */
    RAMBackendKind kind;
    uint64_t size;              /* bytes, a multiple of 4 KiB */
    /*
     * memory-backend-file: a directory (an unlinked temporary file is
     * created inside it, e.g. on hugetlbfs) or the path of a file.
     */
    const char *mem_path;
    bool share;                 /* memory-backend-file share=on */
} MemoryBackendConfig;

typedef struct MachineConfig {
    /* Bytes; 0 means MACHINE_DEFAULT_RAM_SIZE (or the nodes' sum). */
    uint64_t ram_size;
    unsigned smp;               /* vCPUs; 0 means 1 */
    /*
     * NULL: one anonymous RAMBlock "pc.ram" of ram_size bytes.  Otherwise
     * one RAMBlock per node, placed one after the other from guest
     * physical address 0 in this order; their sizes must add up to
     * ram_size (when ram_size is not 0).
     */
    const MemoryBackendConfig *numa_nodes;
    unsigned nr_numa_nodes;
    /*
     * ELF to load and enter.  NULL: RAM stays zero and every vCPU waits
     * halted until its registers are set (by an incoming stream, say).
     */
    const char *kernel;
    const char *serial;         /* "stdio", "file:PATH", "none"; NULL: none */
    const char *name;           /* -name, or NULL */
} MachineConfig;

/*
 * Create the machine in run state "prelaunch" with its vCPUs parked;
 * vm_start() runs them.  On failure returns NULL with @errp set and
 * nothing left allocated.
 */
MachineState *machine_create(const MachineConfig *cfg, Error **errp);

/* Stop and join the vCPU threads, then free RAM and devices.  NULL is ok. */
void machine_free(MachineState *ms);

/*
 * Called in the main loop thread (the GLib default main context) once
 * for the first qemu_system_shutdown_request().  Without a handler the
 * request is only recorded (see machine_shutdown_requested()).
 */
typedef void (*MachineShutdownHandler)(MachineState *ms, int status,
                                       void *opaque);
void machine_set_shutdown_handler(MachineState *ms, MachineShutdownHandler fn,
                                  void *opaque);
/*
 * Called in the main loop thread on the same request, before the vCPUs
 * are stopped: what could keep a vCPU from stopping (a background
 * snapshot whose saver it waits for on a protected page) is let go here,
 * as QEMU cancels a migration before it stops the vCPUs at exit.
 */
void machine_set_shutdown_prepare(MachineState *ms, MachineShutdownHandler fn,
                                  void *opaque);
/* True once a shutdown was requested; *status gets the exit status. */
bool machine_shutdown_requested(MachineState *ms, int *status);

/*
 * Copy guest physical memory [gpa, gpa + len) out of / into guest RAM; the
 * range may span RAMBlocks but must lie inside RAM.
 */
bool machine_memory_read(MachineState *ms, uint64_t gpa, void *buf,
                         uint64_t len, Error **errp);
bool machine_memory_write(MachineState *ms, uint64_t gpa, const void *buf,
                          uint64_t len, Error **errp);

#endif
