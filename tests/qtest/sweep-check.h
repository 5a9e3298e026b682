/*
 * The a-b-sweep consistency check, for qtests (scripts/sweepcheck.py is
 * the same check for the demo and the benchmarks).
 *
 * tests/guest/a-b-sweep.S: vCPU i of N increments the first byte of every
 * 4 KiB page of the i-th of N equal slices of [1 MiB, end of RAM), in
 * address order, and keeps in RBX the address of the page it is about to
 * increment.  RAM and registers taken at one instant therefore show, in
 * every slice, pages below RBX holding v + 1 and pages at and above it
 * holding v (mod 256): at most one step, exactly at RBX.  A stop that is
 * not exact, or a snapshot whose pages are not all of the same instant as
 * its registers, breaks that somewhere (almost surely).
 */
#ifndef SWEEP_CHECK_H
#define SWEEP_CHECK_H

#include <stdint.h>
#include "libqtest.h"

#define SWEEP_BASE (1024 * 1024)
#define SWEEP_PAGE 4096

/* Guest physical [@addr, @addr + @size) through pmemsave (caller frees). */
guint8 *sweep_read_guest_ram(QTestState *qts, uint64_t addr, uint64_t size);

/* RBX of vCPU @index in the output of HMP "info registers". */
uint64_t sweep_cpu_rbx(const char *info_registers, unsigned index);

/*
 * @mem: guest physical [SWEEP_BASE, @ram_size); @rbx: each of @ncpus
 * vCPUs' RBX.  NULL if every slice has at most one step and it is exactly
 * at the slice's RBX, else what is wrong (caller frees).  *@steps (if not
 * NULL) counts the slices whose step lies strictly inside them.
 */
char *sweep_check_image(const guint8 *mem, uint64_t ram_size,
                        const uint64_t *rbx, unsigned ncpus,
                        unsigned *steps);

/*
 * Read all RAM and every vCPU's RBX from the stopped guest of @qts and
 * assert the check; returns the number of slices with a step inside.
 */
unsigned sweep_assert_consistent(QTestState *qts, uint64_t ram_size,
                                 unsigned ncpus);

#endif
