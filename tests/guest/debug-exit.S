/*
 * debug-exit: vCPU 0 prints "bye" and writes 0x2a to isa-debug-exit, so
 * snapvm ends with status (0x2a << 1) | 1 = 85.  Other vCPUs halt.
 */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    test    %rsi, %rsi
    jnz     halt
    mov     $0x3f8, %edx
    mov     $'b', %al
    out     %al, %dx
    mov     $'y', %al
    out     %al, %dx
    mov     $'e', %al
    out     %al, %dx
    mov     $0xf4, %edx
    mov     $0x2a, %al
    out     %al, %dx
halt:
    hlt
    jmp     halt
