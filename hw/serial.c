/*
 * 16550 UART, the part a polling guest uses: transmit, and a register
 * file that reads back what was written.  No receive, no interrupts.
 */
#include "qemu/osdep.h"
#include "hw/serial.h"

enum {
    UART_RBR_THR = 0,   /* DLL when LCR.DLAB */
    UART_IER = 1,       /* DLM when LCR.DLAB */
    UART_IIR_FCR = 2,
    UART_LCR = 3,
    UART_MCR = 4,
    UART_LSR = 5,
    UART_MSR = 6,
    UART_SCR = 7,
};

#define UART_LCR_DLAB      0x80
#define UART_LSR_THRE      0x20
#define UART_LSR_TEMT      0x40
#define UART_IIR_NO_INT    0x01
#define UART_IIR_FIFO      0xc0
#define UART_FCR_ENABLE    0x01
/* DCD, DSR, CTS: a peer is there and ready. */
#define UART_MSR_RESET     0xb0

/* The registers that travel in a stream; first in SerialState. */
typedef struct SerialRegs {
    uint8_t ier;
    uint8_t lcr;
    uint8_t mcr;
    uint8_t lsr;
    uint8_t msr;
    uint8_t scr;
    uint8_t fcr;
    uint8_t dll;
    uint8_t dlm;
} SerialRegs;

struct SerialState {
    SerialRegs regs;    /* first: vmstate_serial's offsets are into it */
    GMutex lock;        /* vCPUs write concurrently */
    int fd;             /* backend, -1 for none */
    bool own_fd;
};

SerialState *serial_new(const char *spec, Error **errp)
{
    int fd = -1;
    bool own_fd = false;

    if (!spec || !strcmp(spec, "none")) {
        /* no backend: output is dropped */
    } else if (!strcmp(spec, "stdio")) {
        fd = STDOUT_FILENO;
    } else if (g_str_has_prefix(spec, "file:") && spec[5]) {
        fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            error_setg_errno(errp, errno, "-serial: cannot open '%s'",
                             spec + 5);
            return NULL;
        }
        own_fd = true;
    } else {
        error_setg(errp, "-serial '%s': expected stdio, file:PATH or none",
                   spec);
        return NULL;
    }

    SerialState *s = g_new0(SerialState, 1);
    g_mutex_init(&s->lock);
    s->fd = fd;
    s->own_fd = own_fd;
    s->regs.lsr = UART_LSR_THRE | UART_LSR_TEMT;
    s->regs.msr = UART_MSR_RESET;
    s->regs.dll = 0x0c;     /* 9600 baud, as firmware leaves it */
    return s;
}

void serial_free(SerialState *s)
{
    if (!s) {
        return;
    }
    if (s->own_fd) {
        close(s->fd);
    }
    g_mutex_clear(&s->lock);
    g_free(s);
}

static void serial_transmit(SerialState *s, uint8_t c)
{
    if (s->fd < 0) {
        return;
    }
    /* A full pipe or disk loses the byte, as a real line would. */
    while (write(s->fd, &c, 1) < 0 && errno == EINTR) {
        continue;
    }
}

uint32_t serial_ioport_read(SerialState *s, unsigned offset)
{
    SerialRegs *r = &s->regs;
    uint32_t val;

    g_mutex_lock(&s->lock);
    switch (offset) {
    case UART_RBR_THR:
        val = (r->lcr & UART_LCR_DLAB) ? r->dll : 0;
        break;
    case UART_IER:
        val = (r->lcr & UART_LCR_DLAB) ? r->dlm : r->ier;
        break;
    case UART_IIR_FCR:
        val = UART_IIR_NO_INT |
              ((r->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0);
        break;
    case UART_LCR:
        val = r->lcr;
        break;
    case UART_MCR:
        val = r->mcr;
        break;
    case UART_LSR:
        /* Output never waits: the transmitter is always empty. */
        val = UART_LSR_THRE | UART_LSR_TEMT;
        break;
    case UART_MSR:
        val = r->msr;
        break;
    case UART_SCR:
        val = r->scr;
        break;
    default:
        val = 0xff;
        break;
    }
    g_mutex_unlock(&s->lock);
    return val;
}

void serial_ioport_write(SerialState *s, unsigned offset, uint8_t value)
{
    SerialRegs *r = &s->regs;

    g_mutex_lock(&s->lock);
    switch (offset) {
    case UART_RBR_THR:
        if (r->lcr & UART_LCR_DLAB) {
            r->dll = value;
        } else {
            serial_transmit(s, value);
        }
        break;
    case UART_IER:
        if (r->lcr & UART_LCR_DLAB) {
            r->dlm = value;
        } else {
            r->ier = value & 0x0f;
        }
        break;
    case UART_IIR_FCR:
        r->fcr = value;
        break;
    case UART_LCR:
        r->lcr = value;
        break;
    case UART_MCR:
        r->mcr = value & 0x1f;
        break;
    case UART_SCR:
        r->scr = value;
        break;
    default:
        /* LSR and MSR are read-only */
        break;
    }
    g_mutex_unlock(&s->lock);
}

static const VMStateField serial_fields[] = {
    VMSTATE_UINT8(ier, SerialRegs),
    VMSTATE_UINT8(lcr, SerialRegs),
    VMSTATE_UINT8(mcr, SerialRegs),
    VMSTATE_UINT8(lsr, SerialRegs),
    VMSTATE_UINT8(msr, SerialRegs),
    VMSTATE_UINT8(scr, SerialRegs),
    VMSTATE_UINT8(fcr, SerialRegs),
    VMSTATE_UINT8(dll, SerialRegs),
    VMSTATE_UINT8(dlm, SerialRegs),
    VMSTATE_END_OF_LIST()
};

const VMStateDescription vmstate_serial = {
    .name = "serial",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = serial_fields,
};
