#!/usr/bin/python3
"""The QEMU series on a real Linux guest: ./run-demo.sh --qemu (or --stock).

Boots Debian 12's kernel with the self-checking workload (tests/linux-guest)
in QEMU, takes a background snapshot of the running guest to each target
(`exec:cat > FILE` and `file:FILE`), restores each file into a second QEMU
with -incoming, and checks that the restored guest resumes at the
snapshot's instant and runs on with every page holding what its workload
expects.  With --corrupt it also changes one page in a copy of a snapshot
and checks that the restored workload reports that page: the check can
fail.

Prints one line per check and `demo passed` only if every check held
(exit 0); otherwise `demo FAILED` and exit 1.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxguest as lg  # noqa: E402
import snapbench as sb  # noqa: E402

MiB = 1 << 20


class Checks:
    def __init__(self, label):
        self.label = label
        self.failed = 0
        self.passed = 0
        self.n = 0

    def ok(self, cond, what, detail=""):
        self.n += 1
        if cond:
            self.passed += 1
        else:
            self.failed += 1
        print("%s %d - %s: %s%s" % ("ok" if cond else "not ok", self.n,
                                    self.label, what,
                                    (" (%s)" % detail) if detail else ""),
              flush=True)
        return cond


def huge_mib(pid, mem_mib):
    """MiB of the guest's RAM QEMU has on transparent huge pages."""
    ranges = sb.guest_ram_ranges_from_maps(pid, mem_mib * MiB)
    return sb.huge_pages_bytes(pid, ranges) / MiB


def one_target(c, args, guest, target, workdir):
    path = os.path.join(workdir, "linux-%s.snap" % target)
    rate0 = guest.pages_rate(1.0)
    snap = lg.background_snapshot(guest, target, path, args.timeout)
    info = snap["info"]
    moved = snap["end"][0] - snap["after"][0]
    c.ok(True, "background snapshot to %s completed" % target,
         "%.2f s, pause %.1f ms, %d MiB file"
         % (snap["total_s"], snap["pause_ms"],
            os.path.getsize(path) // MiB))
    c.ok(guest.run_state() == "running" and moved > 0,
         "%s: the guest ran on during the snapshot" % target,
         "%d pages checked meanwhile, %.0f%% of its speed before; "
         "run states seen %s" % (moved, 100 * moved / snap["total_s"] /
                                 rate0 if rate0 else 0,
                                 ",".join(sorted(snap["states"]))))
    if "background-snapshot" in info:
        bs = info["background-snapshot"]
        print("#   %s: %d write faults, %d pages copied, %d waited"
              % (target, bs.get("faults", 0), bs.get("copied-pages", 0),
                 bs.get("waited-faults", 0)))
    if not c.ok(not guest.bad_line(), "%s: source workload's checks good"
                % target, guest.bad_line() or ""):
        return None

    with lg.restore(args.qemu, args.guestdir, args.mem, target, path,
                    args.timeout, mode=args.mode,
                    counters_addr=guest.counters_addr) as r:
        try:
            at, end = lg.check_restored(r, snap, 2, args.timeout)
            c.ok(True, "%s: restored guest resumed at the snapshot's "
                 "instant and checked every page twice over" % target,
                 "restore %.2f s; passes %d -> %d" % (r.restore_s, at[1],
                                                      end[1]))
        except lg.GuestError as e:
            c.ok(False, "%s: restored guest runs on with its checks good"
                 % target, str(e))
    return path


def corrupt_check(c, args, path, guest_addr, workdir):
    """A page changed in a copy of @path must be reported by the workload."""
    bad = os.path.join(workdir, "corrupt.snap")
    shutil.copyfile(path, bad)
    offset, page = lg.corrupt_one_page(bad)
    with lg.restore(args.qemu, args.guestdir, args.mem, "file", bad,
                    args.timeout, mode=args.mode,
                    counters_addr=guest_addr) as r:
        r.qmp.command("cont")
        deadline = time.monotonic() + args.timeout
        line = None
        while time.monotonic() < deadline and not line:
            line = r.bad_line()
            time.sleep(0.1)
        c.ok(line is not None and ("BAD page %d " % page) in line,
             "a bit flipped in page %d (file offset %d) is reported by "
             "the restored workload" % (page, offset), line or "nothing")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qemu", required=True, help="qemu-system-x86_64")
    ap.add_argument("--label", default=None, help="name in the output")
    ap.add_argument("--guestdir", default=None,
                    help="built guest (default: build it)")
    ap.add_argument("--mem", type=int, default=1024, help="guest MiB")
    ap.add_argument("--mode", default="sweep", choices=("sweep", "hot",
                                                         "read"))
    ap.add_argument("--targets", default="exec,file")
    ap.add_argument("--corrupt", action="store_true",
                    help="also check that a changed page is reported")
    ap.add_argument("--boot-timeout", type=float, default=240)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    label = args.label or os.path.basename(os.path.dirname(args.qemu))
    c = Checks(label)
    if args.guestdir is None:
        args.guestdir = lg.build_guest()
    workdir = tempfile.mkdtemp(prefix="qemu-demo-", dir=args.workdir)
    try:
        with lg.LinuxGuest(args.qemu, args.guestdir, args.mem,
                           args.mode) as g:
            t0 = time.monotonic()
            ready = g.wait_ready(args.boot_timeout)
            c.ok(True, "Linux booted and the workload is ready",
                 "%.0f s, %s over %d MiB of %d MiB"
                 % (time.monotonic() - t0, ready["mode"], ready["mib"],
                    args.mem))
            g.wait_passes(2, args.timeout)
            print("#   huge pages before: %.0f MiB"
                  % huge_mib(g.proc.pid, args.mem), flush=True)
            paths = []
            for target in args.targets.split(","):
                paths.append(one_target(c, args, g, target, workdir))
            print("#   huge pages after: %.0f MiB"
                  % huge_mib(g.proc.pid, args.mem), flush=True)
            addr = g.counters_addr
        if args.corrupt and paths and paths[-1]:
            corrupt_check(c, args, paths[-1], addr, workdir)
    except (lg.GuestError, lg.QMPError, RuntimeError, OSError) as e:
        c.ok(False, "the demo ran to its end", str(e))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("%s: %d passed, %d failed" % (label, c.passed, c.failed))
    if c.failed or not c.passed:
        print("demo FAILED")
        return 1
    print("demo passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
