#!/usr/bin/env python3
"""The main job: boot a guest and drive it over QMP, checking each step.

For now (the machine): boot a-b-sweep, show over QMP that it runs and
that its serial output grows, stop it (the output stops growing), cont
(it grows again), quit (snapvm exits with status 0).  Later steps
(snapshot, restore, consistency check) are added as functions here.

Exit status 0 when every check held, 1 otherwise.  The snapvm process
this starts is ended on every path, by its pid.
"""

import argparse
import json
import os
import re
import sys
import subprocess
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import QMPError, SnapVM  # noqa: E402


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


def serial_growth(vm, seconds):
    """How many bytes the guest wrote to its serial port in @seconds."""
    before = len(vm.serial_output())
    time.sleep(seconds)
    return len(vm.serial_output()) - before


MiB = 1 << 20


def parse_size(text):
    """-m's syntax: a number with an optional K/M/G/T suffix, MiB if none."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text) * MiB


def guest_rbx(qmp):
    """vCPU 0's RBX, read with HMP through QMP (human-monitor-command)."""
    out = qmp.command("human-monitor-command",
                      **{"command-line": "info registers"})
    match = re.search(r"RBX=([0-9a-fA-F]+)", out)
    if not match:
        raise CheckFailed("no RBX in 'info registers': %r" % out[:200])
    return int(match.group(1), 16)


def wait_serial_output(vm, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if vm.serial_output():
            return True
        time.sleep(0.1)
    return False


def boot_and_pause_resume(args):
    vm_args = ["-m", args.mem, "-smp", str(args.smp), "-name", "demo",
               "-kernel", args.kernel]
    trace = show_qmp if not args.quiet else None
    step("start: %s" % " ".join([args.snapvm] + vm_args))
    with SnapVM(args.snapvm, vm_args, trace=trace,
                keep_dir=args.keep) as vm:
        qmp = vm.qmp
        print("   snapvm pid %d, QMP at %s, serial in %s"
              % (vm.proc.pid, vm.qmp_path, vm.serial_path))

        step("who is there")
        version = qmp.command("query-version")
        check("qemu" in version and "package" in version,
              "query-version answers in QEMU's shape")
        check(qmp.command("query-name").get("name") == "demo",
              "query-name returns the -name we gave")

        step("the guest runs")
        status = qmp.command("query-status")
        check(status["status"] == "running" and status["running"],
              "query-status says running")
        check(wait_serial_output(vm, args.timeout),
              "the guest writes to its serial port")
        grown = serial_growth(vm, args.interval)
        check(grown > 0, "serial output grew by %d bytes in %.1f s"
              % (grown, args.interval))

        step("stop")
        qmp.command("stop")
        qmp.wait_event("STOP")
        check(qmp.command("query-status")["status"] == "paused",
              "STOP event, query-status says paused")
        grown = serial_growth(vm, args.interval)
        check(grown == 0, "serial output did not grow while paused")
        rbx = guest_rbx(qmp)
        check(MiB <= rbx < parse_size(args.mem),
              "HMP 'info registers': RBX = %#x, a page of the sweep" % rbx)
        check(guest_rbx(qmp) == rbx, "RBX stays put while paused")

        step("cont")
        qmp.command("cont")
        qmp.wait_event("RESUME")
        check(qmp.command("query-status")["status"] == "running",
              "RESUME event, query-status says running")
        grown = serial_growth(vm, args.interval)
        check(grown > 0, "serial output grew by %d bytes again" % grown)
        qmp.command("stop")
        qmp.wait_event("STOP")
        check(guest_rbx(qmp) != rbx, "RBX moved on while running")
        qmp.command("cont")
        qmp.wait_event("RESUME")

        step("quit")
        qmp.command("quit")
        qmp.wait_event("SHUTDOWN")
        status = vm.wait_exit(args.timeout)
        check(status == 0, "snapvm exited with status %d" % status)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.environ.get("BUILD_DIR",
                           os.path.join(os.path.dirname(here), "build"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapvm", default=os.path.join(build, "snapvm"),
                        help="the snapvm binary (default: %(default)s)")
    parser.add_argument("--kernel",
                        default=os.path.join(build, "tests", "guest",
                                             "a-b-sweep.elf"),
                        help="guest program (default: %(default)s)")
    parser.add_argument("--mem", default="128M", help="-m (default: 128M)")
    parser.add_argument("--smp", type=int, default=1, help="-smp (default 1)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds to watch the serial port per step")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for anything (default 10)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (serial log)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print the QMP conversation")
    args = parser.parse_args()

    try:
        boot_and_pause_resume(args)
    except (CheckFailed, QMPError, RuntimeError, OSError,
            subprocess.TimeoutExpired) as e:
        print("\nFAILED: %s" % e, file=sys.stderr)
        return 1
    print("\ndemo passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
