"""The a-b-sweep consistency check, on a RAM image.

a-b-sweep's vCPU i of N increments the first byte of every 4 KiB page of
the i-th of N equal slices of [1 MiB, end of RAM), in address order, and
keeps in RBX the address of the page it is about to increment.  RAM
captured at one instant therefore shows, in every slice, pages below RBX
holding v + 1 and pages at and above RBX holding v (mod 256): at most one
step, exactly at RBX.  A snapshot whose RAM and registers are not from
the same instant breaks that (almost surely) somewhere.

tests/qtest has the same check in C for the test suite; this one serves
the demo and the benchmarks.
"""

import re

MiB = 1 << 20
PAGE = 4096
SWEEP_BASE = MiB


def sweep_slices(ram_size, ncpus):
    """[(start, end)] of each vCPU's slice, as tests/guest/a-b-sweep.S
    computes them."""
    pages = ((ram_size - SWEEP_BASE) // PAGE) // ncpus
    length = pages * PAGE
    return [(SWEEP_BASE + i * length, SWEEP_BASE + (i + 1) * length)
            for i in range(ncpus)]


def check_slice(first_bytes, start, rbx):
    """@first_bytes: the first byte of each page of one slice.  Returns
    None if consistent, else a message."""
    k = len(first_bytes)
    if k == 0:
        return None
    j = (rbx - start) // PAGE
    if (rbx - start) % PAGE or not 0 <= j <= k:
        # Caught in its set-up code, before its first store: RBX is not
        # loaded yet and the slice is still all zero.
        if first_bytes.count(0) == k:
            return None
        return "RBX %#x is not a page of the slice at %#x" % (rbx, start)
    low = first_bytes[:j]
    high = first_bytes[j:]
    if low and low.count(low[0]) != len(low):
        bad = next(i for i, b in enumerate(low) if b != low[0])
        return ("below RBX %#x: page %#x holds %d, page %#x holds %d"
                % (rbx, start, low[0], start + bad * PAGE, low[bad]))
    if high and high.count(high[0]) != len(high):
        bad = next(i for i, b in enumerate(high) if b != high[0])
        return ("at/above RBX %#x: page %#x holds %d, page %#x holds %d"
                % (rbx, rbx, high[0], rbx + bad * PAGE, high[bad]))
    if low and high and low[0] != (high[0] + 1) % 256:
        return ("step at RBX %#x goes from %d to %d, not v+1 to v"
                % (rbx, low[0], high[0]))
    return None


def check_sweep(ram, ram_size, rbx_list):
    """@ram: bytes-like image of all guest RAM (guest physical 0..size).
    @rbx_list: each vCPU's RBX.  Returns (ok, message)."""
    view = memoryview(ram)
    if len(view) < ram_size:
        return False, "RAM image is %d bytes, expected %d" % (len(view),
                                                              ram_size)
    steps = 0
    for cpu, ((start, end), rbx) in enumerate(
            zip(sweep_slices(ram_size, len(rbx_list)), rbx_list)):
        first_bytes = bytes(view[start:end:PAGE])
        err = check_slice(first_bytes, start, rbx)
        if err:
            return False, "vCPU %d: %s" % (cpu, err)
        steps += start < rbx and 0 < (rbx - start) // PAGE < len(first_bytes)
    return True, ("%d slice(s) consistent, %d with a step exactly at RBX"
                  % (len(rbx_list), steps))


def rbx_from_info_registers(text):
    """Every vCPU's RBX from HMP 'info registers' output, in order."""
    return [int(m, 16) for m in re.findall(r"RBX=([0-9a-fA-F]+)", text)]
