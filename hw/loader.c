/*
 * ELF loader for freestanding x86-64 guests.  Segments go to their
 * physical addresses (p_paddr): the guest runs with paging off.
 */
#include "qemu/osdep.h"
#include "hw/loader.h"
#include "hw/boards.h"
#include "hw/machine-config.h"

#include <elf.h>

static bool elf_check_header(const char *path, const Elf64_Ehdr *eh,
                             gsize len, Error **errp)
{
    if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
        error_setg(errp, "-kernel '%s': not an ELF file", path);
        return false;
    }
    if (eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
        error_setg(errp, "-kernel '%s': not an x86-64 ELF (this machine "
                   "runs 64-bit little-endian x86 code only)", path);
        return false;
    }
    if (eh->e_type != ET_EXEC) {
        error_setg(errp, "-kernel '%s': not a static executable (ELF type "
                   "%u; link with -static -no-pie)", path, eh->e_type);
        return false;
    }
    if (eh->e_phentsize != sizeof(Elf64_Phdr) ||
        eh->e_phoff > len ||
        (len - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
        error_setg(errp, "-kernel '%s': program headers lie outside the "
                   "file", path);
        return false;
    }
    return true;
}

static bool elf_load_segment(MachineState *ms, const char *path,
                             const uint8_t *file, gsize len,
                             const Elf64_Phdr *ph, Error **errp)
{
    uint64_t ram = machine_ram_size(ms);

    if (ph->p_filesz > ph->p_memsz || ph->p_offset > len ||
        len - ph->p_offset < ph->p_filesz) {
        error_setg(errp, "-kernel '%s': a segment lies outside the file",
                   path);
        return false;
    }
    if (ph->p_paddr > ram || ram - ph->p_paddr < ph->p_memsz) {
        error_setg(errp, "-kernel '%s': segment at 0x%" PRIx64 " of %"
                   PRIu64 " bytes does not fit in %" PRIu64 " bytes of "
                   "guest RAM", path, (uint64_t)ph->p_paddr,
                   (uint64_t)ph->p_memsz, ram);
        return false;
    }
    if (!machine_memory_write(ms, ph->p_paddr, file + ph->p_offset,
                              ph->p_filesz, errp)) {
        return false;
    }
    /* bss: RAM starts zero, but a file backend may hold old content. */
    uint64_t bss = ph->p_memsz - ph->p_filesz;
    if (bss) {
        g_autofree uint8_t *zeros = g_malloc0(bss);
        return machine_memory_write(ms, ph->p_paddr + ph->p_filesz, zeros,
                                    bss, errp);
    }
    return true;
}

bool load_elf_kernel(MachineState *ms, const char *path, uint64_t *entry,
                     Error **errp)
{
    g_autofree uint8_t *file = NULL;
    g_autoptr(GError) gerr = NULL;
    gsize len;
    unsigned loaded = 0;

    if (!g_file_get_contents(path, (char **)&file, &len, &gerr)) {
        error_setg(errp, "-kernel: %s", gerr->message);
        return false;
    }
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
    if (!elf_check_header(path, eh, len, errp)) {
        return false;
    }
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        /* memcpy: e_phoff need not be aligned. */
        memcpy(&ph, file + eh->e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) {
            continue;
        }
        if (!elf_load_segment(ms, path, file, len, &ph, errp)) {
            return false;
        }
        loaded++;
    }
    if (!loaded) {
        error_setg(errp, "-kernel '%s': no loadable segment", path);
        return false;
    }
    if (!machine_gpa_to_host(ms, eh->e_entry, 1)) {
        error_setg(errp, "-kernel '%s': entry point 0x%" PRIx64 " is "
                   "outside guest RAM", path, (uint64_t)eh->e_entry);
        return false;
    }
    *entry = eh->e_entry;
    return true;
}
