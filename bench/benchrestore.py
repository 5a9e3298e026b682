"""Restore a snapshot file and check that it is exact, for bench/run.

a-b-sweep guests (snapvm's and QEMU's boot-sector twin): restore paused
(-S), dump guest RAM with pmemsave and check the sweep against the saved
RBX (scripts/sweepcheck.py).  Other guests: restore, then
'snapvm-img check' on the file.  The time from starting the process to
the end of the incoming migration is the restore time.
"""

import mmap
import os
import shutil
import subprocess
import time

import sweepcheck
from qmp import SnapVM
from snapbench import time_limits

MiB = 1 << 20
GiB = 1 << 30


def _wait_incoming(qmp, timeout):
    deadline = time.monotonic() + timeout
    while True:
        status = qmp.command("query-migrate").get("status")
        if status in ("completed", "failed", "cancelled"):
            return status
        if time.monotonic() > deadline:
            return "timeout"
        time.sleep(0.01)


def _dump_ram(qmp, ram, lowmem, dump):
    """Guest RAM as the guest sees it, [0, ram), into @dump.  With
    @lowmem (QEMU's pc machine), RAM above it sits from 4 GiB up and the
    guest's page tables map it right after @lowmem."""
    low = lowmem or ram
    qmp.command("pmemsave", val=0, size=low, filename=dump)
    if ram > low:
        high = dump + ".high"
        qmp.command("pmemsave", val=4 * GiB, size=ram - low, filename=high)
        with open(dump, "ab") as out, open(high, "rb") as src:
            shutil.copyfileobj(src, out, 16 * MiB)
        os.unlink(high)


def check_sweep(qmp, ram, lowmem, dump):
    """(exact, message) for the a-b-sweep guest paused behind @qmp,
    its RAM dumped to the file @dump for the check and then removed."""
    regs = qmp.command("human-monitor-command",
                       **{"command-line": "info registers"})
    rbx = sweepcheck.rbx_from_info_registers(regs)
    if not rbx:
        return False, "no RBX in 'info registers'"
    try:
        _dump_ram(qmp, ram, lowmem, dump)
        with open(dump, "rb") as f, \
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return sweepcheck.check_sweep(m, ram, rbx)
    finally:
        if os.path.exists(dump):
            os.unlink(dump)


def restore_check(ctx, engine, path, ram, workload, lowmem=None):
    """(exact, message, restore ms) for the snapshot at @path."""
    if engine == "qemu":
        binary = ctx["qemu"]
        args = list(ctx["qemu_args"][ram // MiB])
    else:
        binary = ctx["snapvm"]
        args = []
    args += ["-m", "%dM" % (ram // MiB), "-smp", "1", "-S",
             "-incoming", "exec:cat %s" % path]
    limits = time_limits(ram)
    t0 = time.monotonic()
    # pmemsave of all RAM is one QMP reply: QEMU's wrote 0.5 GiB/s here.
    with SnapVM(binary, args, start_timeout=limits["start"],
                qmp_timeout=limits["qmp"]) as vm:
        status = _wait_incoming(vm.qmp, limits["migration"])
        restore_ms = (time.monotonic() - t0) * 1000
        if status != "completed":
            return False, "restore %s" % status, None
        if workload == "a-b-sweep":
            ok, msg = check_sweep(vm.qmp, ram, lowmem, path + ".ram")
            return ok, msg, restore_ms
    p = subprocess.run([ctx["img"], "check", path], capture_output=True,
                       text=True)
    msg = (p.stdout + p.stderr).strip().split("\n")[-1][:120]
    return p.returncode == 0, "snapvm-img check: " + msg, restore_ms
