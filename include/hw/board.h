/*
 * The board's own migratable state: the shape of the machine (RAM size
 * and layout, vCPU count), so that a stream for another shape is refused
 * by name before a guest starts from it.
 */
#ifndef HW_BOARD_H
#define HW_BOARD_H

#include "qemu/osdep.h"
#include "migration/vmstate.h"

typedef struct MachineState MachineState;
typedef struct BoardState BoardState;

BoardState *board_new(MachineState *ms);
void board_free(BoardState *board);

extern const VMStateDescription vmstate_board;

#endif
