"""The Linux guest (tests/linux-guest/) under QEMU: boot it, follow its
self-checking workload, snapshot it in the background, restore it, and
check the restored guest.  Used by scripts/qemu-demo.py (./run-demo.sh
--qemu), tests/qemu/linux-roundtrip and bench/qemu-bg-snapshot.

The workload (snapguest) keeps a counter block in a page of its own and
prints its guest-physical address when it is ready; the host reads it with
HMP `xp` at any moment, paused or not:

    u64 magic, u64 pages checked, u64 passes completed, u64 bad (0 or 1)
"""

import os
import re
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from qmp import QMPError, SnapVM  # noqa: E402,F401
from snapbench import wait_migration  # noqa: E402

MiB = 1 << 20

COUNTERS_MAGIC = 0x736e617067756573
READY_RE = re.compile(rb"snapguest: ready mode=(\w+) mib=(\d+) pages=(\d+) "
                      rb"counters=0x([0-9a-f]+)")
BAD_RE = re.compile(rb"snapguest: BAD [^\r\n]*")
PASS_RE = re.compile(rb"snapguest: \w+ pass (\d+) ok")


class GuestError(RuntimeError):
    """The guest did not do what its workload promises."""


def build_guest(outdir=None):
    """Build (or find up to date) the kernel and initramfs; their folder."""
    cmd = [os.path.join(ROOT, "tests", "linux-guest", "build")]
    if outdir:
        cmd.append(outdir)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def default_workload_mib(mem_mib):
    """The workload's buffer for a guest of @mem_mib: three quarters of
    RAM, which leaves the kernel and the page-state array room."""
    return mem_mib * 3 // 4


def qemu_args(guestdir, mem_mib, mode="sweep", workload_mib=None,
              extra_append=""):
    """Options for QEMU's q35 machine booting the guest (without -S or
    -incoming: a restore adds them to the same list)."""
    if workload_mib is None:
        workload_mib = default_workload_mib(mem_mib)
    append = ("console=ttyS0 quiet panic=-1 snapguest.mode=%s "
              "snapguest.mib=%d %s" % (mode, workload_mib, extra_append))
    return ["-M", "q35", "-accel", "tcg", "-m", "%dM" % mem_mib,
            "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", os.path.join(guestdir, "vmlinuz"),
            "-initrd", os.path.join(guestdir, "initramfs.img"),
            "-append", append.strip()]


def hmp(qmp, line):
    return qmp.command("human-monitor-command", **{"command-line": line})


class LinuxGuest(SnapVM):
    """One QEMU running (or restoring) the Linux guest.

        with LinuxGuest(binary, guestdir, 1024) as g:
            g.wait_ready(120)
            g.wait_passes(2, 30)
    """

    def __init__(self, binary, guestdir, mem_mib, mode="sweep",
                 workload_mib=None, incoming=False, extra=(), **kw):
        args = qemu_args(guestdir, mem_mib, mode, workload_mib)
        if incoming:
            args += ["-S", "-incoming", "defer"]
        args += list(extra)
        kw.setdefault("start_timeout", 30.0)
        kw.setdefault("qmp_timeout", 60.0)
        super().__init__(binary, args, **kw)
        self.counters_addr = None
        self.serial_seen = 0    # bytes of the serial log read before now

    def __enter__(self):
        # restore() hands over a QEMU it has started already.
        if self.proc is None:
            return super().__enter__()
        return self

    # ------------------------------------------------------- the console

    def console(self):
        return self.serial_output()

    def new_console(self):
        """What the guest printed since the last call."""
        out = self.serial_output()
        new = out[self.serial_seen:]
        self.serial_seen = len(out)
        return new

    def bad_line(self):
        m = BAD_RE.search(self.console())
        return m.group(0).decode(errors="replace") if m else None

    def wait_ready(self, timeout):
        """Wait for the workload's ready line; remember the counters."""
        deadline = time.monotonic() + timeout
        while True:
            m = READY_RE.search(self.console())
            if m:
                self.counters_addr = int(m.group(4), 16)
                return {"mode": m.group(1).decode(),
                        "mib": int(m.group(2)), "pages": int(m.group(3))}
            if self.proc.poll() is not None:
                raise GuestError("QEMU exited (status %d) before the "
                                 "workload was ready; console:\n%s"
                                 % (self.proc.returncode, self.tail()))
            if time.monotonic() > deadline:
                raise GuestError("the workload was not ready after %.0f s; "
                                 "console:\n%s" % (timeout, self.tail()))
            time.sleep(0.2)

    def tail(self, lines=15):
        text = self.console().decode(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # ------------------------------------------------------ the counters

    def counters(self):
        """(pages, passes, bad) read from guest memory now."""
        if self.counters_addr is None:
            raise GuestError("the counters' address is not known")
        out = hmp(self.qmp, "xp /4gx %#x" % self.counters_addr)
        words = []
        for line in out.splitlines():
            if ":" in line:
                words += [int(w, 16) for w in line.split(":", 1)[1].split()]
        if len(words) < 4:
            raise GuestError("cannot read the counters: %r" % out)
        if words[0] != COUNTERS_MAGIC:
            raise GuestError("no counters at %#x (found %#x)"
                             % (self.counters_addr, words[0]))
        return words[1], words[2], words[3]

    def wait_passes(self, passes, timeout, since=None):
        """Wait until @passes more passes have completed than @since (a
        counters() result; now if None), with no check failing.  Returns
        the counters at the end."""
        start = since or self.counters()
        deadline = time.monotonic() + timeout
        while True:
            now = self.counters()
            if now[2]:
                raise GuestError("the workload's check failed: %s"
                                 % (self.bad_line() or "(no console line)"))
            if now[1] >= start[1] + passes:
                return now
            if time.monotonic() > deadline:
                raise GuestError("%d passes after %.0f s, expected %d; "
                                 "console:\n%s" % (now[1] - start[1],
                                                   timeout, passes,
                                                   self.tail()))
            time.sleep(0.05)

    def pages_rate(self, window):
        """Pages checked per second over @window seconds."""
        p0, _, _ = self.counters()
        t0 = time.monotonic()
        time.sleep(window)
        p1, _, _ = self.counters()
        return (p1 - p0) / (time.monotonic() - t0)

    def run_state(self):
        return self.qmp.command("query-status")["status"]


# ------------------------------------------------------------ migration

def target_uri(target, path):
    if target == "file":
        return "file:" + path
    if target == "exec":
        return "exec:cat > " + path
    raise ValueError("target must be file or exec, not %r" % target)


def load_uri(target, path):
    return "file:" + path if target == "file" else "exec:cat " + path


def background_snapshot(guest, target, path, timeout):
    """Take a background snapshot of a running guest into @path.

    Returns a dict: the counters just before `migrate` and just after the
    pause it makes (the snapshot's instant lies between them), the time
    from `migrate` to completion,
    the run states seen while it ran, and the last query-migrate."""
    q = guest.qmp
    q.command("migrate-set-capabilities", capabilities=[
        {"capability": "background-snapshot", "state": True}])
    states = set()

    def during(info):
        states.add(guest.run_state())

    # The snapshot's instant is the pause the migration thread makes
    # after `migrate` has returned: the STOP and RESUME events frame it.
    q.events.clear()
    before = guest.counters()
    t0 = time.monotonic()
    q.command("migrate", uri=target_uri(target, path))
    stop = q.wait_event("STOP", timeout)
    resume = q.wait_event("RESUME", timeout)
    after = guest.counters()
    info = wait_migration(q, timeout, during=during)
    total = time.monotonic() - t0
    states.add(guest.run_state())
    end = guest.counters()
    if info.get("status") != "completed":
        raise GuestError("background snapshot to %s: %s (%s)"
                         % (target, info.get("status"),
                            info.get("error-desc", "no error given")))
    return {"before": before, "after": after, "end": end, "total_s": total,
            "pause_ms": (event_time(resume) - event_time(stop)) * 1000,
            "states": states, "info": info}


def event_time(ev):
    return ev["timestamp"]["seconds"] + ev["timestamp"]["microseconds"] / 1e6


def restore(binary, guestdir, mem_mib, target, path, timeout, mode="sweep",
            workload_mib=None, counters_addr=None, **kw):
    """Start a QEMU that loads @path; return it paused after the load
    (a LinuxGuest; the caller ends it, e.g. with a `with` block)."""
    g = LinuxGuest(binary, guestdir, mem_mib, mode, workload_mib,
                   incoming=True, **kw)
    g.start()
    try:
        t0 = time.monotonic()
        g.qmp.command("migrate-incoming", uri=load_uri(target, path))
        info = wait_migration(g.qmp, timeout)
        g.restore_s = time.monotonic() - t0
        if info.get("status") != "completed":
            raise GuestError("restore from %s: %s" % (path,
                                                     info.get("status")))
        g.counters_addr = counters_addr
    except BaseException:
        g.stop()
        raise
    return g


def check_restored(g, snap, passes, timeout):
    """The restored guest @g (paused) holds the counters of the snapshot's
    instant, runs on, and completes @passes passes with every check good.
    Two passes check every page: the rest of the pass it was in, then a
    whole one."""
    at = g.counters()
    lo, hi = snap["before"], snap["after"]
    if not (lo[0] <= at[0] <= hi[0]):
        raise GuestError("restored guest had checked %d pages; the snapshot "
                         "was asked for when it had checked %d to %d"
                         % (at[0], lo[0], hi[0]))
    g.qmp.command("cont")
    end = g.wait_passes(passes, timeout, since=at)
    if g.bad_line():
        raise GuestError("restored guest: %s" % g.bad_line())
    return at, end


# --------------------------------------------- a page changed on purpose

def corrupt_one_page(path, start_fraction=0.5):
    """Change one workload page in a saved stream, the way a bad disk
    would: find a page of stamps after @start_fraction of the file and
    flip a bit in its sixth cache line.  Returns (offset, page index).
    The restored workload must then report that page as bad."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        pos = int(size * start_fraction)
        f.seek(pos)
        data = f.read(4 * MiB)
        for off in range(0, len(data) - 4096):
            v0, = struct.unpack_from("<Q", data, off)
            if v0 & 63 or v0 == 0:
                continue
            ok = all(struct.unpack_from("<Q", data, off + 64 * ln)[0]
                     == v0 | ln for ln in (1, 2, 63))
            if not ok:
                continue
            target = pos + off + 64 * 5
            f.seek(target)
            byte = f.read(1)[0]
            f.seek(target)
            f.write(bytes([byte ^ 0x10]))
            return target, (v0 >> 6) & ((1 << 26) - 1)
    raise GuestError("no workload page found in %s after %d%%"
                     % (path, start_fraction * 100))
