/*
 * random-writer: stores to pseudo-random pages of [1 MiB, end of RAM) as
 * fast as it can, writing 'R' to the serial port every 65536 stores.
 * Each vCPU runs its own xorshift64 sequence from a fixed seed, so a run
 * is repeatable.  The store writes the running count into the first
 * 8 bytes of the page.
 *
 * Entry (board ABI): RDI = RAM size, RSI = vCPU index, RDX = vCPU count.
 */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    mov     %rdi, %r8
    sub     $0x100000, %r8
    shr     $12, %r8                /* r8 = pages above 1 MiB */
    mov     $0x9e3779b97f4a7c15, %r9
    lea     1(%rsi), %rax
    imul    %rax, %r9               /* r9 = xorshift state, per vCPU */
    xor     %ecx, %ecx              /* rcx = stores done */

next:
    /* xorshift64: x ^= x << 13; x ^= x >> 7; x ^= x << 17 */
    mov     %r9, %rax
    shl     $13, %rax
    xor     %rax, %r9
    mov     %r9, %rax
    shr     $7, %rax
    xor     %rax, %r9
    mov     %r9, %rax
    shl     $17, %rax
    xor     %rax, %r9
    /* page = (x * pages) >> 64: uniform in [0, pages) without a div */
    mov     %r9, %rax
    mul     %r8
    shl     $12, %rdx
    add     $0x100000, %rdx
    inc     %rcx
    mov     %rcx, (%rdx)
    test    $0xffff, %cx
    jnz     next
    mov     $0x3f8, %edx
    mov     $'R', %al
    out     %al, %dx
    jmp     next
