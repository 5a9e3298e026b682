/*
 * qemu-sweep: a boot sector that does a-b-sweep's work under QEMU, so
 * that QEMU's snapshots can be measured on the same guest as snapvm's.
 *
 * The BIOS loads it at 0x7c00 in real mode.  It enables A20, goes to
 * 32-bit protected mode, builds page tables with 2 MiB pages, enters
 * 64-bit long mode, then increments the first byte of every 4 KiB page
 * of [1 MiB, RAM_SIZE) in address order, forever (after one pass that
 * sets them all to 0), writing 'B' to the
 * serial port (0x3f8) after each pass, with RBX = the next page to
 * increment, exactly as tests/guest/a-b-sweep.S does with one vCPU.
 *
 * For a host that reads guest memory (bench/qemu-bg-snapshot, with HMP
 * xp), two u32 at guest-physical addresses, zeroed first thing:
 *   0x7000  passes done (the clearing pass is not one)
 *   0x7004  RAM_SIZE in MiB, written when the clearing pass is done:
 *           until it reads so, the sweep has not started.
 * From then on, with c = the counter, the first byte of a page below
 * RBX is c + 1 and of one at or above RBX is c (mod 256), and the guest
 * has done c + (RBX - 1 MiB) / (RAM_SIZE - 1 MiB) passes.  It holds
 * between translation blocks, where TCG stops a vCPU: incb and add, and
 * the counter's incl and the reset of RBX, each sit inside one.
 *
 * Build-time constants (bench/run passes them with -D):
 *   RAM_SIZE  guest RAM in bytes (a multiple of 2 MiB)
 *   LOWMEM    how much of it QEMU's pc machine puts below 4 GiB; the rest
 *             sits from 4 GiB up.
 * Virtual address v < LOWMEM maps to physical v, v >= LOWMEM to
 * v + 4 GiB - LOWMEM, so the guest sees its RAM as one range
 * [0, RAM_SIZE) and a RAM image made of [0, LOWMEM) followed by
 * [4 GiB, ...) is checked by scripts/sweepcheck.py unchanged.
 *
 *   gcc -c -DRAM_SIZE=... -DLOWMEM=... qemu-sweep.S
 *   ld -Ttext=0x7c00 -e start; objcopy -O binary -j .text
 */
#define PML4    0x10000
#define PDPT    0x11000
#define PD      0x12000
#define NPDPT   ((RAM_SIZE + (1 << 30) - 1) >> 30)
#define N2M     (RAM_SIZE >> 21)
#define SWEEP_BASE 0x100000
#define COUNTER 0x7000
#define READY   0x7004

    .text
    .globl start
    .code16
start:
    cli
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x7c00, %sp
    ljmp    $0, $normalized        /* some BIOSes enter at 07c0:0000 */
normalized:
    xor     %eax, %eax              /* not what the BIOS left there */
    mov     %eax, COUNTER
    mov     %eax, READY
    in      $0x92, %al              /* fast A20 */
    or      $2, %al
    and     $0xfe, %al
    out     %al, $0x92
    lgdtl   gdt_desc
    mov     %cr0, %eax
    or      $1, %eax
    mov     %eax, %cr0
    ljmpl   $0x08, $pm32

    .code32
pm32:
    mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $0x7c00, %esp

    mov     $PML4, %edi             /* clear PML4, PDPT and the PDs */
    mov     $((PD - PML4) / 4 + NPDPT * 1024), %ecx
    xor     %eax, %eax
    rep stosl
    movl    $(PDPT | 3), PML4

    mov     $PDPT, %edi
    mov     $(PD | 3), %eax
    mov     $NPDPT, %ecx
pdpt_loop:
    mov     %eax, (%edi)
    add     $0x1000, %eax
    add     $8, %edi
    loop    pdpt_loop

    /* edx:eax = physical address of the next 2 MiB page */
    mov     $PD, %edi
    xor     %eax, %eax
    xor     %edx, %edx
    mov     $N2M, %ecx
pd_loop:
    test    %edx, %edx
    jnz     pd_entry
    cmp     $LOWMEM, %eax
    jne     pd_entry
    xor     %eax, %eax              /* the rest of RAM starts at 4 GiB */
    mov     $1, %edx
pd_entry:
    mov     %eax, %ebx
    or      $0x83, %ebx             /* present, writable, 2 MiB page */
    mov     %ebx, (%edi)
    mov     %edx, 4(%edi)
    add     $0x200000, %eax
    adc     $0, %edx
    add     $8, %edi
    loop    pd_loop

    mov     %cr4, %eax
    or      $0x20, %eax             /* PAE */
    mov     %eax, %cr4
    mov     $PML4, %eax
    mov     %eax, %cr3
    mov     $0xc0000080, %ecx       /* EFER.LME */
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     %cr0, %eax
    or      $0x80000000, %eax
    mov     %eax, %cr0
    ljmp    $0x18, $lm64

    .code64
lm64:
    movabs  $RAM_SIZE, %r10
    mov     $SWEEP_BASE, %r9
    mov     $0x3f8, %edx
    /* The BIOS left data in some pages (its tables at the top of low
     * RAM): clear every page's counter first, so that all start equal
     * as in snapvm's zeroed RAM and the sweep check applies.  No 'B'. */
    mov     %r9, %rbx
clear:
    movb    $0, (%rbx)
    add     $4096, %rbx
    cmp     %r10, %rbx
    jb      clear
    movl    $(RAM_SIZE >> 20), READY
    mov     %r9, %rbx
sweep:
    incb    (%rbx)
    add     $4096, %rbx
    cmp     %r10, %rbx
    jb      sweep
    incl    COUNTER
    mov     %r9, %rbx
    mov     $'B', %al
    out     %al, %dx
    jmp     sweep

    .p2align 3
gdt:
    .quad   0
    .quad   0x00cf9a000000ffff      /* 0x08: 32-bit code */
    .quad   0x00cf92000000ffff      /* 0x10: data */
    .quad   0x00af9a000000ffff      /* 0x18: 64-bit code */
gdt_desc:
    .word   gdt_desc - gdt - 1
    .long   gdt

    .org    510
    .byte   0x55, 0xaa
