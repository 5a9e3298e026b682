/*
 * A 16550 UART at I/O ports 0x3f8-0x3ff, output only: what the guest
 * writes to THR goes to the -serial backend; LSR always says "transmitter
 * empty"; the other registers keep what the guest wrote.
 */
#ifndef HW_SERIAL_H
#define HW_SERIAL_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "migration/vmstate.h"

typedef struct SerialState SerialState;

/* @spec: "stdio", "file:PATH", "none" or NULL (none). */
SerialState *serial_new(const char *spec, Error **errp);
void serial_free(SerialState *s);

/* @offset is 0..7 from the base port.  Thread safe. */
uint32_t serial_ioport_read(SerialState *s, unsigned offset);
void serial_ioport_write(SerialState *s, unsigned offset, uint8_t value);

extern const VMStateDescription vmstate_serial;

#endif
