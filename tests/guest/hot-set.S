/*
 * hot-set: vCPU i of N first writes every 4 KiB page of its slice of
 * [1 MiB, end of RAM) once, so that all of RAM is populated and belongs
 * in a snapshot, then writes the first byte of every page of its slice of
 * the hot set [1 MiB, 1 MiB + 64 MiB) over and over, and writes 'H' to
 * the serial port after each pass over it.  Nothing is printed for the
 * first pass over all of RAM, so every 'H' is one pass over the hot set.
 *
 * A background snapshot should cost this guest little: only its first
 * write to each hot region after the command faults, while a guest that
 * writes all of RAM (a-b-sweep) faults everywhere.
 *
 * Entry (board ABI): RDI = RAM size, RSI = vCPU index, RDX = vCPU count.
 */
    .set    HOT_SET, 64 << 20
    .set    BASE, 0x100000

    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    mov     %rdx, %rcx              /* rcx = vCPU count */
    mov     %rsi, %r11              /* r11 = vCPU index */

    /* Whole-RAM slice, as a-b-sweep computes it. */
    mov     %rdi, %rax
    sub     $BASE, %rax
    shr     $12, %rax
    xor     %edx, %edx
    div     %rcx
    shl     $12, %rax
    mov     %rax, %r8
    imul    %r11, %rax
    lea     BASE(%rax), %rbx
    lea     (%rbx, %r8), %r10
    test    %r8, %r8
    jz      idle
populate:
    incb    (%rbx)
    add     $4096, %rbx
    cmp     %r10, %rbx
    jb      populate

    /* Hot slice: the hot set (or all of RAM above 1 MiB if smaller). */
    mov     %rdi, %rax
    sub     $BASE, %rax
    mov     $HOT_SET, %r8
    cmp     %r8, %rax
    cmovb   %rax, %r8
    mov     %r8, %rax
    shr     $12, %rax
    xor     %edx, %edx
    div     %rcx
    shl     $12, %rax
    mov     %rax, %r8
    imul    %r11, %rax
    lea     BASE(%rax), %r9         /* r9 = hot slice start */
    lea     (%r9, %r8), %r10        /* r10 = hot slice end */
    test    %r8, %r8
    jz      idle
    mov     $0x3f8, %edx
    mov     %r9, %rbx
hot:
    incb    (%rbx)
    add     $4096, %rbx
    cmp     %r10, %rbx
    jb      hot
    mov     $'H', %al
    out     %al, %dx
    mov     %r9, %rbx
    jmp     hot

idle:
    hlt
    jmp     idle
