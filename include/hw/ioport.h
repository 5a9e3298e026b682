/*
 * The board's I/O ports, as the vCPUs' IN and OUT instructions see them:
 * the 16550 serial port at 0x3f8-0x3ff and isa-debug-exit at 0xf4.
 * Called from vCPU threads.
 */
#ifndef HW_IOPORT_H
#define HW_IOPORT_H

#include "qemu/osdep.h"

typedef struct MachineState MachineState;

#define SERIAL_IOPORT_BASE  0x3f8
#define DEBUG_EXIT_IOPORT   0xf4

/* @size is 1, 2 or 4 bytes; an unclaimed port reads all ones. */
uint32_t board_ioport_read(MachineState *ms, uint16_t port, int size);
void board_ioport_write(MachineState *ms, uint16_t port, int size,
                        uint32_t value);

#endif
