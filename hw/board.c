/*
 * The board: I/O port decoding (serial port, isa-debug-exit) and the
 * "board" device state.
 */
#include "qemu/osdep.h"
#include "hw/board.h"
#include "hw/boards.h"
#include "hw/ioport.h"
#include "hw/serial.h"
#include "sysemu/runstate.h"

struct BoardState {
    /* Migrated fields first; vmstate_board's offsets are into these. */
    uint64_t ram_size;
    uint32_t nr_cpus;
    uint32_t nr_ram_blocks;

    MachineState *machine;
};

BoardState *board_new(MachineState *ms)
{
    BoardState *board = g_new0(BoardState, 1);
    board->machine = ms;
    return board;
}

void board_free(BoardState *board)
{
    g_free(board);
}

uint32_t board_ioport_read(MachineState *ms, uint16_t port, int size)
{
    if (port >= SERIAL_IOPORT_BASE && port < SERIAL_IOPORT_BASE + 8) {
        return serial_ioport_read(machine_serial(ms),
                                  port - SERIAL_IOPORT_BASE);
    }
    /* Nothing decodes the port: the bus floats high. */
    return size >= 4 ? UINT32_MAX : (1u << (size * 8)) - 1;
}

void board_ioport_write(MachineState *ms, uint16_t port, int size,
                        uint32_t value)
{
    if (port >= SERIAL_IOPORT_BASE && port < SERIAL_IOPORT_BASE + 8) {
        serial_ioport_write(machine_serial(ms), port - SERIAL_IOPORT_BASE,
                            value);
    } else if (port == DEBUG_EXIT_IOPORT) {
        /* QEMU's isa-debug-exit: the status is always odd. */
        qemu_system_shutdown_request_cause(ms, (value << 1) | 1,
                                           SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    }
}

static void board_pre_save(void *opaque)
{
    BoardState *board = opaque;
    MachineState *ms = board->machine;

    board->ram_size = machine_ram_size(ms);
    board->nr_cpus = machine_cpu_count(ms);
    board->nr_ram_blocks = machine_ram_block_count(ms);
}

static bool board_post_load(void *opaque, uint32_t version_id, Error **errp)
{
    BoardState *board = opaque;
    MachineState *ms = board->machine;

    if (board->ram_size != machine_ram_size(ms)) {
        error_setg(errp, "board: the stream is for %" PRIu64 " bytes of "
                   "RAM, this machine has %" PRIu64 " (-m)",
                   board->ram_size, machine_ram_size(ms));
        return false;
    }
    if (board->nr_cpus != machine_cpu_count(ms)) {
        error_setg(errp, "board: the stream is for %u vCPUs, this machine "
                   "has %u (-smp)", board->nr_cpus, machine_cpu_count(ms));
        return false;
    }
    if (board->nr_ram_blocks != machine_ram_block_count(ms)) {
        error_setg(errp, "board: the stream is for %u RAM blocks, this "
                   "machine has %u (-numa)", board->nr_ram_blocks,
                   machine_ram_block_count(ms));
        return false;
    }
    return true;
}

static const VMStateField board_fields[] = {
    VMSTATE_UINT64(ram_size, BoardState),
    VMSTATE_UINT32(nr_cpus, BoardState),
    VMSTATE_UINT32(nr_ram_blocks, BoardState),
    VMSTATE_END_OF_LIST()
};

const VMStateDescription vmstate_board = {
    .name = "board",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = board_pre_save,
    .post_load = board_post_load,
    .fields = board_fields,
};
