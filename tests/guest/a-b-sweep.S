/*
 * a-b-sweep: vCPU i of N increments the first byte of every 4 KiB page of
 * its slice of [1 MiB, end of RAM), in address order, forever, and writes
 * 'B' to the serial port after each full pass.
 *
 * Invariant (what the snapshot consistency checks rely on): at every
 * instruction boundary RBX holds the address of the next page to be
 * incremented, so pages below RBX in the slice hold v + 1 and pages at and
 * above it hold v.  RBX moves only after the increment has happened.
 *
 * Entry (board ABI): RDI = RAM size, RSI = vCPU index, RDX = vCPU count.
 */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    /* pages per slice = ((RAM - 1 MiB) / 4 KiB) / N */
    mov     %rdx, %rcx
    mov     %rdi, %rax
    sub     $0x100000, %rax
    shr     $12, %rax
    xor     %edx, %edx
    div     %rcx
    shl     $12, %rax
    mov     %rax, %r8               /* r8 = slice length in bytes */
    imul    %rsi, %rax
    add     $0x100000, %rax
    mov     %rax, %r9               /* r9 = slice start */
    lea     (%r9, %r8), %r10        /* r10 = slice end */
    mov     $0x3f8, %edx
    mov     %r9, %rbx
    test    %r8, %r8
    jz      no_slice

sweep:
    incb    (%rbx)
    add     $4096, %rbx
    cmp     %r10, %rbx
    jb      sweep
    /* Pass done: every page is v + 1 and RBX = end, which still holds. */
    mov     $'B', %al
    out     %al, %dx
    mov     %r9, %rbx
    jmp     sweep

no_slice:
    hlt
    jmp     no_slice
