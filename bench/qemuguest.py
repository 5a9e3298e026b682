"""The boot-sector guest for QEMU (bench/qemu-sweep.S), shared by
bench/run and bench/qemu-bg-snapshot: where QEMU's pc machine puts its
RAM, building the sector for a RAM size, and the options that boot it.
"""

import os
import subprocess

MiB = 1 << 20

# What the sector keeps for the host, at guest-physical addresses.
COUNTER_ADDR = 0x7000   # u32: passes done
READY_ADDR = 0x7004     # u32: RAM in MiB once the sweep has started

FIRMWARE_DIRS = ("/usr/share/seabios", "/usr/lib/ipxe/qemu")


def qemu_lowmem(ram):
    """RAM below 4 GiB on QEMU's pc (i440fx) machine: all of it up to
    3.5 GiB, else 3 GiB (the rest is mapped from 4 GiB)."""
    return ram if ram < 0xe0000000 else 0xc0000000


def build_qemu_guest(outdir, ram):
    """The boot-sector sweep for @ram bytes, as a raw disk image."""
    bindir = os.path.join(outdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    base = os.path.join(bindir, "qemu-sweep-%dM" % (ram // MiB))
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["cc", "-c", "-DRAM_SIZE=%#x" % ram,
                    "-DLOWMEM=%#x" % qemu_lowmem(ram),
                    os.path.join(here, "qemu-sweep.S"), "-o", base + ".o"],
                   check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-Ttext=0x7c00", "-e",
                    "start", "-o", base + ".elf", base + ".o"], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text",
                    base + ".elf", base + ".img"], check=True)
    with open(base + ".img", "r+b") as f:
        f.truncate(MiB)         # a whole disk, not a lone sector
    return base + ".img"


def qemu_args(image):
    """Machine options, without -m.  The firmware directories let a QEMU
    run from its build tree find SeaBIOS; an installed one finds the same
    files there."""
    args = ["-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none",
            "-drive", "file=%s,format=raw,if=ide" % image]
    for d in FIRMWARE_DIRS:
        if os.path.isdir(d):
            args += ["-L", d]
    return args
