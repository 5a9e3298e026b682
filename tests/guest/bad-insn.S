/*
 * bad-insn: prints "x" then executes ud2, which the CPU engine cannot
 * run: snapvm must enter run state internal-error, not crash.
 */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    mov     $0x3f8, %edx
    mov     $'x', %al
    out     %al, %dx
    ud2
