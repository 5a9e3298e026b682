"""Measure snapshot methods on a running snapvm guest.

One run = one snapvm process: boot a guest, let it reach a steady speed,
take a snapshot by one method, keep measuring for a while after, check
the file, quit.  Everything is sampled from outside the process (serial
port byte count = guest passes, /proc for memory), plus the figures that
snapvm itself reports in query-migrate and the STOP/RESUME events.

Python standard library only; the QMP client is scripts/qmp.py.
"""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from qmp import QMPError, SnapVM  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30


# The serial log is how guest speed is read: on tmpfs, so that its
# one-byte writes from the vCPU thread are not held up by the dirty-page
# throttling (balance_dirty_pages) that a snapshot written to the same
# disk causes.  On disk they took 1.9 ms each during a background
# snapshot to file: and slowed the hot-set guest they were measuring.
SERIAL_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def time_limits(ram_bytes):
    """Seconds each step of one run may take, for a guest of @ram_bytes.

    Every limit grows with guest RAM, at rates several times below the
    slowest seen on a loaded 2-CPU machine (pmemsave 0.5 GiB/s, file:
    with fsync 0.3 GiB/s, the sweeping guest's first passes), so that a
    4 or 16 GiB run is not cut short and a hung one still ends.  A
    fixed 10 s for every QMP reply ended each 4 GiB a-b-sweep run with
    TimeoutError while the restored guest's RAM was dumped for the
    check."""
    gib = max(1.0, ram_bytes / GiB)
    return {
        "start": 10 + 5 * gib,        # the process allocates guest RAM
        "qmp": 10 + 10 * gib,         # one reply: pmemsave of all RAM
        "settle": 60 + 30 * gib,      # the guest's first passes
        "migration": 120 + 60 * gib,  # one snapshot, or one restore
    }


def proc_status(pid):
    """VmRSS and VmHWM of @pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def ram_ranges(qmp):
    """[(host start, length)] of every RAMBlock, from HMP 'info ramblock'."""
    text = qmp.command("human-monitor-command",
                       **{"command-line": "info ramblock"})
    ranges = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 6 and cols[-1].startswith("0x"):
            ranges.append((int(cols[-1], 16), int(cols[-2], 16)))
    return ranges


def huge_pages_bytes(pid, ranges):
    """Bytes of guest RAM (@ranges) mapped by huge pages: anonymous THP
    and shmem PMDs, from the smaps of the mappings inside guest RAM."""
    total = 0
    inside = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = any(lo < start + length and start < hi
                             for start, length in ranges)
            elif inside and head in ("AnonHugePages:", "ShmemPmdMapped:",
                                     "FilePmdMapped:"):
                total += int(line.split()[1]) * 1024
    return total


def guest_ram_ranges_from_maps(pid, ram_bytes):
    """[(start, length)] of the anonymous, non-executable mappings of
    @pid at least half as large as the guest's RAM: guest RAM, for a VMM
    (QEMU) whose 'info ramblock' gives no host address.  TCG's code
    buffer is anonymous and about 1 GiB too, but executable (rwxp): it
    is left out, or a 1 GiB guest would count its huge pages twice."""
    ranges = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            cols = line.split()
            lo, hi = (int(x, 16) for x in cols[0].split("-"))
            if len(cols) < 6 and "x" not in cols[1] and \
                    hi - lo >= ram_bytes // 2:
                ranges.append((lo, hi - lo))
    return ranges


_libc = None


def shares_memory(pid1, pid2):
    """True if the two processes share one address space: a vfork()ed
    child (posix_spawn of an exec: target) before it execs, whose memory
    is its parent's and must not be counted twice.  kcmp(KCMP_VM)."""
    global _libc
    import ctypes
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    SYS_kcmp, KCMP_VM = 312, 1             # x86-64
    return _libc.syscall(SYS_kcmp, pid1, pid2, KCMP_VM, 0, 0) == 0


def same_program_children(pid):
    """Descendants of @pid running the same program (a fork()ed copy of
    the VMM, not the 'sh -c cat' of an exec: target).  Compared by
    executable, not by name: a child forked by the migration thread is
    named after that thread."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return []
    found = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir("/proc/%d/task" % parent)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/children" % (parent, tid)) as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            for kid in kids:
                todo.append(kid)
                try:
                    if os.readlink("/proc/%d/exe" % kid) == exe and \
                            not shares_memory(pid, kid):
                        found.append(kid)
                except OSError:
                    pass
    return found


def private_bytes(pid):
    """Memory only @pid holds (Private_Clean + Private_Dirty): for a
    fork()ed child, the old copies of the pages its parent has written
    since, which exist only because of the child."""
    total = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except OSError:
        pass
    return total


def reset_peak_rss(pid):
    """Make VmHWM start again from the current RSS (clear_refs 5)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """Samples (time, serial bytes, memory) every @interval seconds.
    Memory is the VMM's RSS plus what its fork()ed children hold alone
    (the fork snapshot method), so that a copy-on-write snapshot's cost
    shows up where the copy lives."""

    def __init__(self, vm, interval=0.02):
        super().__init__(daemon=True)
        self.vm = vm
        self.interval = interval
        self.samples = []
        self.stopping = threading.Event()

    def serial_bytes(self):
        try:
            return os.path.getsize(self.vm.serial_path)
        except FileNotFoundError:
            return 0

    def run(self):
        pid = self.vm.proc.pid
        while not self.stopping.is_set():
            t = time.monotonic()
            try:
                rss = proc_status(pid).get("VmRSS", 0)
            except OSError:
                break
            rss += sum(private_bytes(k) for k in same_program_children(pid))
            self.samples.append((t, self.serial_bytes(), rss))
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.join()

    def rate(self, t0, t1):
        """Guest passes per second between monotonic times t0 and t1."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def passes_at(self, t):
        before = [s for s in self.samples if s[0] <= t]
        return before[-1][1] if before else 0

    def time_of_passes(self, count, after):
        """First sample time >= @after where serial bytes reached @count."""
        for s in self.samples:
            if s[0] >= after and s[1] >= count:
                return s[0]
        return None

    def peak_rss(self, t0, t1):
        inside = [s[2] for s in self.samples if t0 <= s[0] <= t1]
        return max(inside) if inside else None


def wait_passes(sampler, count, timeout):
    deadline = time.monotonic() + timeout
    while sampler.serial_bytes() < count:
        if time.monotonic() > deadline:
            raise RuntimeError("guest made fewer than %d passes in %.0f s"
                               % (count, timeout))
        time.sleep(0.02)


def wait_migration(qmp, timeout, poll=0.01, during=None):
    """Poll query-migrate until it ends; return the last answer.
    @during, if given, is called with each answer while it runs."""
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.command("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if during:
            during(info)
        if time.monotonic() > deadline:
            try:
                qmp.command("migrate_cancel")
            except QMPError:
                pass
            raise RuntimeError("migration still %s after %.0f s"
                               % (info.get("status"), timeout))
        time.sleep(poll)


def event_pause_ms(events):
    """Pause seen in the STOP and RESUME events' timestamps, in ms."""
    def ts(ev):
        return ev["timestamp"]["seconds"] + \
            ev["timestamp"]["microseconds"] / 1e6
    stops = [ts(e) for e in events if e["event"] == "STOP"]
    resumes = [ts(e) for e in events if e["event"] == "RESUME"]
    if not stops or not resumes:
        return None
    return (resumes[-1] - stops[0]) * 1000


def target_uri(kind, path):
    if kind == "file":
        return "file:%s" % path
    if kind == "exec":
        return "exec:cat > %s" % path
    if kind == "null":
        return "exec:cat > /dev/null"
    raise ValueError(kind)


def run_once(binary, guest_elf, method, ram_bytes, target, workdir,
             smp=1, buffer_bytes=None, settle_passes=3, before_s=1.5,
             after_s=1.5, timeout=None, check=None, extra_args=(),
             max_bandwidth=0, bg_method=None, qemu=False, guest_args=None,
             downtime_limit=None, keep_samples=True):
    """Take one snapshot of a fresh guest by @method; return a dict of
    figures.  @method: "bg" (background-snapshot), "stop-copy",
    "precopy".

    @bg_method sets x-background-snapshot-method ("userfaultfd", "fork",
    "mprotect") for "bg".  @qemu: @binary is qemu-system-x86_64 and
    @guest_args its machine options (QEMU has no snapvm-only parameters
    and no host addresses in 'info ramblock').  If snapvm refuses the
    method (capability or parameter), the row has status "refused" and
    the reason in "error", and nothing was measured.  @timeout: seconds
    the snapshot may take (None: time_limits()["migration"])."""
    limits = time_limits(ram_bytes)
    if timeout is None:
        timeout = limits["migration"]
    path = os.path.join(workdir, "bench-%s.snap" % method)
    if os.path.exists(path):
        os.unlink(path)
    args = ["-m", "%dM" % (ram_bytes // MiB), "-smp", str(smp)]
    args += list(guest_args) if guest_args else ["-kernel", guest_elf]
    args += list(extra_args)
    row = {"method": method, "ram": ram_bytes, "target": target,
           "smp": smp, "buffer": buffer_bytes, "bg_method": bg_method}
    with SnapVM(binary, args, tmp_parent=SERIAL_DIR,
                start_timeout=limits["start"],
                qmp_timeout=limits["qmp"]) as vm:
        qmp = vm.qmp
        params = {"max-bandwidth": max_bandwidth}
        if downtime_limit is not None:
            params["downtime-limit"] = downtime_limit
        if method == "bg" and buffer_bytes is not None:
            params["background-snapshot-buffer-size"] = buffer_bytes
        if method == "bg" and bg_method is not None:
            params["x-background-snapshot-method"] = bg_method
        try:
            qmp.command("migrate-set-capabilities", capabilities=[
                {"capability": "events", "state": True},
                {"capability": "background-snapshot",
                 "state": method == "bg"}])
            qmp.command("migrate-set-parameters", **params)
        except QMPError as e:
            row["status"] = "refused"
            row["error"] = str(e)
            return row
        sampler = Sampler(vm)
        sampler.start()
        try:
            pid = vm.proc.pid
            # Steady state: the guest has touched all its RAM a few times.
            wait_passes(sampler, settle_passes * smp,
                        timeout=limits["settle"])
            t_before = time.monotonic()
            time.sleep(before_s)
            rss_before = proc_status(pid)["VmRSS"]
            ranges = guest_ram_ranges_from_maps(pid, ram_bytes) if qemu \
                else ram_ranges(qmp)
            row["huge_before"] = huge_pages_bytes(pid, ranges)
            reset_peak_rss(pid)
            qmp.events.clear()

            t_cmd = time.monotonic()
            passes_at_cmd = sampler.serial_bytes()
            try:
                if method == "stop-copy":
                    qmp.command("stop")
                    qmp.command("migrate", uri=target_uri(target, path))
                    info = wait_migration(qmp, timeout)
                    qmp.command("cont")
                else:
                    qmp.command("migrate", uri=target_uri(target, path))
                    info = wait_migration(qmp, timeout)
                    if method == "precopy" and \
                            qmp.command("query-status")["status"] != \
                            "running":
                        qmp.command("cont")
            except QMPError as e:
                # A method the migrate command itself refuses (the fork
                # method on a shared RAM backend, say).
                row["status"] = "refused"
                row["error"] = str(e)
                return row
            t_end = time.monotonic()
            hwm = proc_status(pid)["VmHWM"]
            time.sleep(after_s)
            t_after = time.monotonic()
            row["huge_after"] = huge_pages_bytes(pid, ranges)
            # The RESUME of the 'cont' (or of the snapshot's own pause)
            # stays in qmp.events for event_pause_ms(): wait_event()
            # takes it out, so put it back.
            try:
                qmp.events.append(qmp.wait_event("RESUME", timeout=0.5))
            except QMPError:
                pass
        finally:
            sampler.stop()
        row["status"] = info.get("status")
        row["error"] = info.get("error-desc")
        row["total_ms"] = (t_end - t_cmd) * 1000
        row["reported_total_ms"] = info.get("total-time")
        row["downtime_ms"] = info.get("downtime")
        row["converged"] = info.get("x-precopy-converged")
        row["event_pause_ms"] = event_pause_ms(qmp.events)
        row["speed_before"] = sampler.rate(t_before, t_cmd)
        row["speed_during"] = sampler.rate(t_cmd, t_end)
        row["speed_after"] = sampler.rate(t_end + 0.2, t_after)
        # The first pass that began after the command ends with the
        # second 'B' each vCPU prints after it.
        t_first = sampler.time_of_passes(passes_at_cmd + 2 * smp, t_cmd)
        row["first_pass_ms"] = (t_first - t_cmd) * 1000 if t_first else None
        peak = max(hwm, sampler.peak_rss(t_cmd, t_end) or 0)
        row["extra_mem"] = peak - rss_before
        row["peak_rss"] = peak
        row["rss_before"] = rss_before
        row["file_bytes"] = os.path.getsize(path) if target != "null" and \
            os.path.exists(path) else None
        row["ram_info"] = info.get("ram")
        row["bg_info"] = info.get("background-snapshot")
        if keep_samples:
            # (seconds from the command, serial bytes, memory) for plots
            row["samples"] = [(round(t - t_cmd, 4), n, m)
                              for t, n, m in sampler.samples]
            row["end_s"] = t_end - t_cmd
    if check and row["file_bytes"]:
        row["check"] = check(path)
    if target != "null" and os.path.exists(path) and not row.get("keep"):
        row["path"] = path
    return row


def fmt(v, unit="", digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%." + str(digits) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


def dump_json(rows, path):
    with open(path, "w") as f:
        json.dump(rows, f, indent=1, default=str)


def run_img_check(img_binary, path):
    p = subprocess.run([img_binary, "check", path], capture_output=True,
                       text=True)
    return p.returncode == 0
