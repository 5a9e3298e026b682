#!/usr/bin/env python3
"""The main job: a background snapshot of a running guest, restored.

1. Boot a-b-sweep and show over QMP that it runs (stop and cont too).
2. Take a background snapshot (migrate_set_capability background-snapshot
   on; migrate exec:cat > FILE) while the guest keeps running, and print
   what it cost: the pause, the total time, the guest's speed during and
   after, huge pages, extra memory, the file's size.
3. Save the same guest by stop-and-copy to the same target, for the ratio.
4. Check the file with snapvm-img, restore it in a second snapvm with -S,
   and check that RAM and registers are of one instant: in every vCPU's
   slice of the sweep, one step, exactly at its saved RBX.  Then let the
   restored guest run on.

Exit status 0 when every check held, 1 otherwise.  Every snapvm process
this starts is ended on every path, by its pid.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from qmp import QMPError, SnapVM  # noqa: E402
import sweepcheck  # noqa: E402
import snapbench  # noqa: E402

MiB = 1 << 20


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)
    print("   ok: %s" % message)


def step(title):
    print("\n== %s" % title)


def show_qmp(direction, msg):
    text = json.dumps(msg)
    if len(text) > 160:
        text = text[:157] + "..."
    print("   %s %s" % (direction, text))


def parse_size(text):
    """-m's syntax: a number with an optional K/M/G/T suffix, MiB if none."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text) * MiB


def serial_bytes(vm):
    try:
        return os.path.getsize(vm.serial_path)
    except FileNotFoundError:
        return 0


def passes_per_second(vm, seconds):
    """The guest's speed: a-b-sweep prints one byte per pass per vCPU."""
    before, t0 = serial_bytes(vm), time.monotonic()
    time.sleep(seconds)
    return (serial_bytes(vm) - before) / (time.monotonic() - t0)


def wait_passes(vm, count, timeout):
    deadline = time.monotonic() + timeout
    while serial_bytes(vm) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def registers(qmp):
    return qmp.command("human-monitor-command",
                       **{"command-line": "info registers"})


def wait_migration(vm, timeout):
    """Poll query-migrate quietly (no trace) until the migration ends."""
    trace, vm.qmp.trace = vm.qmp.trace, None
    try:
        return snapbench.wait_migration(vm.qmp, timeout)
    finally:
        vm.qmp.trace = trace


def boot_and_show(vm, args, ram):
    qmp = vm.qmp
    step("the guest runs")
    check(qmp.command("query-status")["status"] == "running",
          "query-status says running")
    check(wait_passes(vm, 2 * args.smp, args.timeout),
          "a-b-sweep has swept its RAM (it prints 'B' after each pass)")

    step("stop and cont")
    qmp.command("stop")
    qmp.wait_event("STOP")
    check(qmp.command("query-status")["status"] == "paused",
          "STOP event, query-status says paused")
    held = serial_bytes(vm)
    time.sleep(0.3)
    check(serial_bytes(vm) == held, "no pass while paused")
    rbx = sweepcheck.rbx_from_info_registers(registers(qmp))
    check(len(rbx) == args.smp and all(MiB <= r <= ram for r in rbx),
          "HMP 'info registers': RBX of each vCPU is in its sweep (%s)"
          % ", ".join("%#x" % r for r in rbx))
    qmp.command("cont")
    qmp.wait_event("RESUME")
    check(wait_passes(vm, held + args.smp, args.timeout),
          "RESUME event, the guest sweeps again")


def background_snapshot(vm, args, ram, path):
    qmp = vm.qmp
    pid = vm.proc.pid
    step("background snapshot while the guest runs")
    qmp.command("migrate-set-capabilities", capabilities=[
        {"capability": "events", "state": True},
        {"capability": "background-snapshot", "state": True}])
    # Unlimited, like the stop-and-copy it is compared with.
    qmp.command("migrate-set-parameters", **{"max-bandwidth": 0})
    speed_before = passes_per_second(vm, args.interval)
    ranges = snapbench.ram_ranges(qmp)
    huge_before = snapbench.huge_pages_bytes(pid, ranges)
    rss_before = snapbench.proc_status(pid)["VmRSS"]
    snapbench.reset_peak_rss(pid)
    passes_at_start = serial_bytes(vm)

    t0 = time.monotonic()
    qmp.command("migrate", uri="exec:cat > %s" % path)
    info = wait_migration(vm, args.timeout * 30)
    wall_ms = (time.monotonic() - t0) * 1000
    peak = snapbench.proc_status(pid)["VmHWM"]
    check(info["status"] == "completed",
          "query-migrate: completed (%s)" % info.get("error-desc", "ok"))
    during = serial_bytes(vm) - passes_at_start
    check(during > 0, "the guest kept running: %d passes during the "
          "snapshot" % during)
    check(qmp.command("query-status")["status"] == "running",
          "the guest is still running (not postmigrate)")
    qmp.wait_event("MIGRATION")
    speed_after = passes_per_second(vm, args.interval)
    huge_after = snapbench.huge_pages_bytes(pid, ranges)
    rss = snapbench.proc_status(pid)["VmRSS"]
    bg = info["background-snapshot"]
    return {
        "pause_ms": bg["pause-us"] / 1000,
        "total_ms": info["total-time"],
        "wall_ms": wall_ms,
        "speed_before": speed_before,
        "speed_during": during / (wall_ms / 1000),
        "speed_after": speed_after,
        "huge_before": huge_before,
        "huge_after": huge_after,
        "extra_mem": max(peak, rss) - rss_before,
        "file": os.path.getsize(path),
        "bg": bg,
    }


def stop_and_copy(vm, args, path):
    qmp = vm.qmp
    step("the same guest by stop-and-copy, to the same target")
    qmp.command("migrate-set-capabilities", capabilities=[
        {"capability": "background-snapshot", "state": False}])
    t0 = time.monotonic()
    qmp.command("stop")
    qmp.command("migrate", uri="exec:cat > %s" % path)
    info = wait_migration(vm, args.timeout * 30)
    qmp.command("cont")
    ms = (time.monotonic() - t0) * 1000
    check(info["status"] == "completed",
          "stop, migrate, cont: completed in %.0f ms (all of it a pause)"
          % ms)
    os.unlink(path)
    return ms


def check_file(args, path):
    step("the file: snapvm-img")
    img = os.path.join(os.path.dirname(args.snapvm), "snapvm-img")
    out = subprocess.run([img, "info", path], capture_output=True,
                         text=True, timeout=args.timeout * 10)
    print("   " + out.stdout.strip().replace("\n", "\n   "))
    status = subprocess.run([img, "check", path], capture_output=True,
                            text=True, timeout=args.timeout * 10)
    check(status.returncode == 0, "snapvm-img check: whole and well formed")


def restore_and_check(args, ram, path, trace):
    step("restore in a second snapvm, paused (-S -incoming)")
    vm_args = ["-m", args.mem, "-smp", str(args.smp), "-S",
               "-incoming", "exec:cat %s" % path]
    t0 = time.monotonic()
    with SnapVM(args.snapvm, vm_args, trace=trace) as vm:
        qmp = vm.qmp
        deadline = time.monotonic() + args.timeout * 30
        qmp.trace = None        # not every poll: the first and last
        while qmp.command("query-status")["status"] == "inmigrate":
            if time.monotonic() > deadline:
                raise CheckFailed("the restore did not finish")
            time.sleep(0.02)
        qmp.trace = trace
        restore_ms = (time.monotonic() - t0) * 1000
        check(qmp.command("query-status")["status"] == "paused",
              "restored in %.0f ms, paused as asked" % restore_ms)
        rbx = sweepcheck.rbx_from_info_registers(registers(qmp))
        with tempfile.NamedTemporaryFile(prefix="snapvm-ram-") as dump:
            qmp.command("pmemsave", val=0, size=ram, filename=dump.name)
            ok, message = sweepcheck.check_sweep(dump.read(), ram, rbx)
        check(ok, "consistency: %s" % message)
        step("the restored guest goes on")
        qmp.command("cont")
        check(wait_passes(vm, 1, args.timeout),
              "it sweeps on from where it was")
        qmp.command("quit")
        check(vm.wait_exit(args.timeout) == 0, "quit: exit status 0")
    return restore_ms


def print_figures(f, sc_ms, restore_ms, ram):
    step("what it cost")
    rows = [
        ("pause (vCPUs stopped)", "%.2f ms" % f["pause_ms"]),
        ("total time", "%d ms (stop-and-copy: %.0f ms, ratio %.2f)"
         % (f["total_ms"], sc_ms, f["total_ms"] / sc_ms)),
        ("guest speed before", "%.1f passes/s" % f["speed_before"]),
        ("guest speed during / before", "%.2f" %
         (f["speed_during"] / f["speed_before"])),
        ("guest speed after / before", "%.2f" %
         (f["speed_after"] / f["speed_before"])),
        ("huge pages in guest RAM", "%d MiB before, %d MiB after"
         % (f["huge_before"] // MiB, f["huge_after"] // MiB)),
        ("file size / RAM", "%.3f" % (f["file"] / ram)),
        ("extra memory (peak RSS - RSS before)", "%.1f MiB (copy buffer "
         "%d MiB)" % (f["extra_mem"] / MiB, f["bg"]["buffer-size"] // MiB)),
        ("write faults / pages copied / faults that waited",
         "%d / %d / %d (%.1f ms in all)" % (
             f["bg"]["faults"], f["bg"]["copied-pages"],
             f["bg"]["waited-faults"], f["bg"]["wait-time-us"] / 1000)),
        ("restore", "%.0f ms" % restore_ms),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print("   %-*s  %s" % (width, label, value))
    print("   (speed ratios are noisy on a busy machine; bench/bg-snapshot "
          "gives medians over runs)")


def run(args):
    ram = parse_size(args.mem)
    vm_args = ["-m", args.mem, "-smp", str(args.smp), "-name", "demo",
               "-kernel", args.kernel]
    trace = show_qmp if not args.quiet else None
    workdir = tempfile.mkdtemp(prefix="snapvm-demo-")
    path = os.path.join(workdir, "vm.snap")
    step("start: %s" % " ".join([args.snapvm] + vm_args))
    try:
        with SnapVM(args.snapvm, vm_args, trace=trace) as vm:
            print("   snapvm pid %d, QMP at %s" % (vm.proc.pid, vm.qmp_path))
            boot_and_show(vm, args, ram)
            figures = background_snapshot(vm, args, ram, path)
            sc_ms = stop_and_copy(vm, args, path + ".stop-and-copy")
            vm.qmp.command("quit")
            check(vm.wait_exit(args.timeout) == 0,
                  "first snapvm: quit, exit status 0")
        check_file(args, path)
        restore_ms = restore_and_check(args, ram, path, trace)
        print_figures(figures, sc_ms, restore_ms, ram)
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


def main():
    build = os.environ.get("BUILD_DIR",
                           os.path.join(os.path.dirname(HERE), "build"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapvm", default=os.path.join(build, "snapvm"),
                        help="the snapvm binary (default: %(default)s)")
    parser.add_argument("--kernel",
                        default=os.path.join(build, "tests", "guest",
                                             "a-b-sweep.elf"),
                        help="guest program (default: %(default)s)")
    parser.add_argument("--mem", default="1G", help="-m (default: 1G)")
    parser.add_argument("--smp", type=int, default=1, help="-smp (default 1)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds over which guest speed is measured")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for a step (default 20)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print the QMP conversation")
    args = parser.parse_args()

    try:
        run(args)
    except (CheckFailed, QMPError, RuntimeError, OSError,
            subprocess.TimeoutExpired) as e:
        print("\nFAILED: %s" % e, file=sys.stderr)
        return 1
    print("\ndemo passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
