/*
 * The machine's HMP commands: shells over the functions of
 * sysemu/machine-cmds.h, printing the way QEMU's monitor does.
 */
#include "qemu/osdep.h"
#include "hw/boards.h"
#include "hw/machine-config.h"
#include "monitor/monitor.h"
#include "sysemu/cpus.h"
#include "sysemu/machine-cmds.h"

static bool hmp_parse_u64(const char *s, uint64_t *v)
{
    char *end;

    if (!s || !*s) {
        return false;
    }
    errno = 0;
    *v = g_ascii_strtoull(s, &end, 0);
    return errno == 0 && *end == '\0';
}

static void hmp_info_status(Monitor *mon, int argc, char **argv, void *opaque)
{
    RunState state = runstate_get(opaque);

    if (state == RUN_STATE_RUNNING) {
        monitor_printf(mon, "VM status: running\n");
    } else if (state == RUN_STATE_PAUSED) {
        monitor_printf(mon, "VM status: paused\n");
    } else {
        monitor_printf(mon, "VM status: paused (%s)\n", runstate_name(state));
    }
}

static void hmp_info_version(Monitor *mon, int argc, char **argv,
                             void *opaque)
{
    VersionInfo info;

    qmp_query_version(&info);
    monitor_printf(mon, "%d.%d.%d (%s)\n", info.major, info.minor,
                   info.micro, info.package);
}

static void hmp_info_name(Monitor *mon, int argc, char **argv, void *opaque)
{
    const char *name = machine_name(opaque);

    if (name) {
        monitor_printf(mon, "%s\n", name);
    }
}

static void hmp_print_cpu_regs(Monitor *mon, unsigned index,
                               const X86CPURegs *r)
{
    static const char *const gpr[CPU_NB_REGS] = {
        "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
        "R8 ", "R9 ", "R10", "R11", "R12", "R13", "R14", "R15",
    };
    /* QEMU's order: RAX RBX RCX RDX / RSI RDI RBP RSP / R8.. */
    static const int order[CPU_NB_REGS] = {
        R_EAX, R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_EBP, R_ESP,
        R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15,
    };
    const struct { const char *name; uint32_t sel; uint64_t base; } segs[] = {
        { "ES", r->es, 0 }, { "CS", r->cs, 0 }, { "SS", r->ss, 0 },
        { "DS", r->ds, 0 }, { "FS", r->fs, r->fs_base },
        { "GS", r->gs, r->gs_base },
    };
    uint64_t fl = r->rflags;

    monitor_printf(mon, "CPU#%u\n", index);
    for (int i = 0; i < CPU_NB_REGS; i++) {
        monitor_printf(mon, "%s=%016" PRIx64 "%s", gpr[order[i]],
                       r->regs[order[i]], (i % 4 == 3) ? "\n" : " ");
    }
    monitor_printf(mon, "RIP=%016" PRIx64 " RFL=%08" PRIx64
                   " [%c%c%c%c%c%c%c]\n", r->rip, fl,
                   fl & 0x400 ? 'D' : '-', fl & 0x800 ? 'O' : '-',
                   fl & 0x80 ? 'S' : '-', fl & 0x40 ? 'Z' : '-',
                   fl & 0x10 ? 'A' : '-', fl & 0x4 ? 'P' : '-',
                   fl & 0x1 ? 'C' : '-');
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++) {
        monitor_printf(mon, "%s =%04x %016" PRIx64 "\n", segs[i].name,
                       segs[i].sel, segs[i].base);
    }
    monitor_printf(mon, "CR0=%08" PRIx64 " CR2=%016" PRIx64 " CR3=%016"
                   PRIx64 " CR4=%08" PRIx64 "\n", r->cr0, r->cr2, r->cr3,
                   r->cr4);
    monitor_printf(mon, "EFER=%016" PRIx64 "\n", r->efer);
    monitor_printf(mon, "MXCSR=%08x\n", r->mxcsr);
    for (int i = 0; i < 16; i++) {
        uint64_t lo, hi;
        memcpy(&lo, r->xmm[i], 8);
        memcpy(&hi, r->xmm[i] + 8, 8);
        monitor_printf(mon, "XMM%02d=%016" PRIx64 " %016" PRIx64 "%s", i,
                       hi, lo, (i % 2) ? "\n" : " ");
    }
}

static void hmp_info_registers(Monitor *mon, int argc, char **argv,
                               void *opaque)
{
    MachineState *ms = opaque;

    for (unsigned i = 0; i < machine_cpu_count(ms); i++) {
        X86CPURegs regs;
        if (vm_cpu_get_regs(ms, i, &regs)) {
            hmp_print_cpu_regs(mon, i, &regs);
        }
    }
}

static const char *ram_backend_name(RAMBackendKind kind)
{
    switch (kind) {
    case RAM_BACKEND_MEMFD:
        return "memfd";
    case RAM_BACKEND_FILE:
        return "file";
    default:
        return "ram";
    }
}

/*
 * One line per RAMBlock.  The host address is there for debugging and
 * for tests that inspect the process's mappings (/proc/PID/pagemap).
 */
static void hmp_info_ramblock(Monitor *mon, int argc, char **argv,
                              void *opaque)
{
    MachineState *ms = opaque;
    RAMBlock *rb;

    monitor_printf(mon, "%24s %8s %6s %18s %18s %18s\n", "Block Name",
                   "PSize", "Kind", "Offset", "Used", "HVA");
    RAMBLOCK_FOREACH(ms, rb) {
        monitor_printf(mon, "%24s %4zu KiB %6s 0x%016" PRIx64 " 0x%016"
                       PRIx64 " 0x%016" PRIxPTR "\n", rb->idstr,
                       rb->page_size / 1024, ram_backend_name(rb->backend),
                       rb->offset, rb->used_length, (uintptr_t)rb->host);
    }
}

static void hmp_stop(Monitor *mon, int argc, char **argv, void *opaque)
{
    Error *err = NULL;

    if (!qmp_stop(opaque, &err)) {
        hmp_handle_error(mon, err);
    }
}

static void hmp_cont(Monitor *mon, int argc, char **argv, void *opaque)
{
    Error *err = NULL;

    if (!qmp_cont(opaque, &err)) {
        hmp_handle_error(mon, err);
    }
}

static void hmp_quit(Monitor *mon, int argc, char **argv, void *opaque)
{
    qmp_quit(opaque);
}

static void hmp_pmemsave(Monitor *mon, int argc, char **argv, void *opaque)
{
    uint64_t addr, size;
    Error *err = NULL;

    if (argc != 4 || !hmp_parse_u64(argv[1], &addr) ||
        !hmp_parse_u64(argv[2], &size)) {
        error_setg(&err, "usage: pmemsave addr size file");
        hmp_handle_error(mon, err);
        return;
    }
    if (!qmp_pmemsave(opaque, addr, size, argv[3], &err)) {
        hmp_handle_error(mon, err);
    }
}

typedef struct DumpFormat {
    uint64_t count;
    char format;        /* x d u o c */
    int size;           /* bytes per unit: 1, 2, 4, 8 */
} DumpFormat;

/* "/[count][format][size]", as QEMU's x and xp take it. */
static bool hmp_parse_dump_format(const char *s, DumpFormat *f, Error **errp)
{
    f->count = 1;
    f->format = 'x';
    f->size = 0;
    s++;
    if (g_ascii_isdigit(*s)) {
        char *end;
        f->count = g_ascii_strtoull(s, &end, 10);
        s = end;
    }
    for (; *s; s++) {
        switch (*s) {
        case 'x': case 'd': case 'u': case 'o': case 'c':
            f->format = *s;
            break;
        case 'b': f->size = 1; break;
        case 'h': f->size = 2; break;
        case 'w': f->size = 4; break;
        case 'g': f->size = 8; break;
        default:
            error_setg(errp, "invalid char '%c' in format (use "
                       "/[count][x|d|u|o|c][b|h|w|g])", *s);
            return false;
        }
    }
    if (!f->size) {
        f->size = f->format == 'c' ? 1 : 4;
    }
    return true;
}

static void hmp_print_unit(Monitor *mon, const DumpFormat *f, uint64_t v)
{
    int bits = f->size * 8;
    int64_t sv = bits == 64 ? (int64_t)v : (int64_t)(v << (64 - bits)) >>
                                           (64 - bits);

    switch (f->format) {
    case 'x':
        monitor_printf(mon, " 0x%0*" PRIx64, f->size * 2, v);
        break;
    case 'o':
        monitor_printf(mon, " %#" PRIo64, v);
        break;
    case 'u':
        monitor_printf(mon, " %" PRIu64, v);
        break;
    case 'd':
        monitor_printf(mon, " %" PRId64, sv);
        break;
    case 'c':
        if (g_ascii_isprint(v & 0xff)) {
            monitor_printf(mon, " '%c'", (char)(v & 0xff));
        } else {
            monitor_printf(mon, " '\\x%02x'", (unsigned)(v & 0xff));
        }
        break;
    }
}

static void hmp_xp(Monitor *mon, int argc, char **argv, void *opaque)
{
    MachineState *ms = opaque;
    DumpFormat f = { .count = 1, .format = 'x', .size = 4 };
    Error *err = NULL;
    uint64_t addr;
    int argi = 1;

    if (argc > 1 && argv[1][0] == '/') {
        if (!hmp_parse_dump_format(argv[1], &f, &err)) {
            hmp_handle_error(mon, err);
            return;
        }
        argi++;
    }
    if (argc != argi + 1 || !hmp_parse_u64(argv[argi], &addr)) {
        error_setg(&err, "usage: xp /fmt addr");
        hmp_handle_error(mon, err);
        return;
    }
    if (f.count > 1 * MiB) {
        error_setg(&err, "xp: count %" PRIu64 " is too large", f.count);
        hmp_handle_error(mon, err);
        return;
    }
    uint64_t len = f.count * f.size;
    g_autofree uint8_t *buf = g_malloc(MAX(len, 1));
    if (!machine_memory_read(ms, addr, buf, len, &err)) {
        hmp_handle_error(mon, err);
        return;
    }
    const unsigned line_size = f.format == 'c' ? 8 : 16;
    for (uint64_t off = 0; off < len; off += f.size) {
        if (off % line_size == 0) {
            monitor_printf(mon, "%s%016" PRIx64 ":", off ? "\n" : "",
                           addr + off);
        }
        uint64_t v = 0;
        memcpy(&v, buf + off, f.size);     /* little-endian host and guest */
        hmp_print_unit(mon, &f, v);
    }
    monitor_printf(mon, "\n");
}

void machine_register_hmp_commands(MachineState *ms)
{
    hmp_register_info("status", "show the current VM status (running|paused)",
                      hmp_info_status, ms);
    hmp_register_info("version", "show the version of snapvm",
                      hmp_info_version, ms);
    hmp_register_info("name", "show the current VM name", hmp_info_name, ms);
    hmp_register_info("registers", "show the cpu registers of every vCPU",
                      hmp_info_registers, ms);
    hmp_register_info("ramblock", "show the RAMBlocks: name, host page "
                      "size, backend, guest offset, size, host address",
                      hmp_info_ramblock, ms);
    hmp_register_command("stop", "", "stop emulation", hmp_stop, ms);
    hmp_register_command("cont", "", "resume emulation", hmp_cont, ms);
    hmp_register_command("quit", "", "quit the emulator", hmp_quit, ms);
    hmp_register_command("xp", "/fmt addr",
                         "physical memory dump starting at 'addr'",
                         hmp_xp, ms);
    hmp_register_command("pmemsave", "addr size file",
                         "save to disk physical memory dump starting at "
                         "'addr' of size 'size'", hmp_pmemsave, ms);
}
