/*
 * idle: does nothing.  hlt makes Unicorn return to snapvm, which parks
 * the vCPU thread until something sets its registers, so an idle guest
 * costs no host CPU; the jmp keeps it halted if it is ever resumed.
 */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
    hlt
    jmp     _start
