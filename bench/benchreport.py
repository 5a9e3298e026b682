"""Tables, CSV and plots for bench/run's rows.

Every row is one snapshot of a fresh guest (bench/snapbench.run_once plus
the restore check); rows with the same size, workload, target and method
make a group, shown as median (min-max).  Ratios are taken against
stop-and-copy of the same engine on the same guest and target: snapvm
against snapvm, QEMU against QEMU, because their CPU emulators run at
different speeds.
"""

import csv
import os
import statistics

MiB = 1 << 20

ORDER = ["bg", "bg-buf0", "bg-bufram", "bg-fork", "bg-mprotect",
         "stop-copy", "precopy", "qemu-bg", "qemu-stop-copy"]
LABELS = {
    "bg": "background snapshot (default buffer)",
    "bg-buf0": "background snapshot, buffer 0",
    "bg-bufram": "background snapshot, buffer = RAM",
    "bg-fork": "fork() copy-on-write",
    "bg-mprotect": "mprotect + SIGSEGV",
    "stop-copy": "stop-and-copy",
    "precopy": "live pre-copy",
    "qemu-bg": "QEMU background-snapshot",
    "qemu-stop-copy": "QEMU stop-and-copy",
}


def reference(name):
    return "qemu-stop-copy" if name.startswith("qemu-") else "stop-copy"


def pause_ms(row):
    """Stop of the vCPUs to their resumption: a background snapshot's own
    pause-us; else the STOP..RESUME events (stop-and-copy: from the
    'stop' to the 'cont'), else the reported downtime."""
    info = row.get("bg_info") or {}
    if "pause-us" in info:
        return info["pause-us"] / 1000
    if row.get("method") == "bg":
        return row.get("downtime_ms")       # QEMU: its start pause
    if row.get("event_pause_ms") is not None:
        return row["event_pause_ms"]
    return row.get("downtime_ms")


def _ratio(a, b):
    return a / b if a is not None and b else None


def derive(rows):
    """Add the per-run figures the table shows to every row."""
    for r in rows:
        if r.get("total_ms") is None:
            continue
        ram = r["size_mib"] * MiB
        r["pause_ms"] = pause_ms(r)
        r["mibs"] = r["size_mib"] / (r["total_ms"] / 1000)
        r["during_rel"] = _ratio(r.get("speed_during"), r.get("speed_before"))
        r["after_rel"] = _ratio(r.get("speed_after"), r.get("speed_before"))
        r["huge_before_mib"] = (r.get("huge_before") or 0) / MiB
        r["huge_after_mib"] = (r.get("huge_after") or 0) / MiB
        r["extra_mib"] = r["extra_mem"] / MiB
        r["peak_rss_mib"] = r["peak_rss"] / MiB \
            if r.get("peak_rss") is not None else None
        r["file_rel"] = _ratio(r.get("file_bytes"), ram)
        info = r.get("bg_info") or {}
        r["copied_mib"] = info.get("copied-pages", 0) * 4096 / MiB \
            if info else None
        r["waited"] = info.get("waited-faults")
        r["wait_ms"] = info["wait-time-us"] / 1000 \
            if "wait-time-us" in info else None
    groups = group(rows)
    for key, grp in groups.items():
        ref = groups.get(key[:3] + (reference(key[3]),), [])
        ref_total = median([r.get("total_ms") for r in ref])
        for r in grp:
            r["total_rel"] = _ratio(r.get("total_ms"), ref_total)
            r["first_pass_rel"] = _ratio(r.get("first_pass_ms"), ref_total)


def group(rows):
    out = {}
    for r in rows:
        key = (r["size_mib"], r["workload"], r["target"], r["name"])
        out.setdefault(key, []).append(r)
    return out


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def stats(grp, key):
    vals = [r[key] for r in grp if r.get(key) is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def cell(grp, key, digits=1):
    m, lo, hi = stats(grp, key)
    if m is None:
        return "-"
    f = "%." + str(digits) + "f"
    if lo == hi:
        return f % m
    return (f + " (" + f + "-" + f + ")") % (m, lo, hi)


COLUMNS = [
    ("pause ms", "pause_ms", 2),
    ("total ms", "total_ms", 0),
    ("total / stop-copy", "total_rel", 2),
    ("MiB/s", "mibs", 0),
    ("speed before, passes/s", "speed_before", 1),
    ("during / before", "during_rel", 2),
    ("after / before", "after_rel", 2),
    ("first pass ms", "first_pass_ms", 0),
    ("first pass / stop-copy total", "first_pass_rel", 2),
    ("huge MiB before", "huge_before_mib", 0),
    ("huge MiB after", "huge_after_mib", 0),
    ("extra MiB", "extra_mib", 1),
    ("file / RAM", "file_rel", 3),
    ("restore ms", "restore_ms", 0),
]


def notes(grp):
    out = []
    errors = sorted({r.get("error") for r in grp if r.get("error")})
    status = sorted({r.get("status") for r in grp})
    if status != ["completed"]:
        out.append("status " + "/".join(str(s) for s in status))
    out += [e.replace("|", "/")[:160] for e in errors]
    conv = [r.get("converged") for r in grp
            if r.get("converged") is not None]
    if conv and not all(conv):
        out.append("did not converge in %d/%d runs (stopped after "
                   "pre-copy's bound)" % (conv.count(False), len(conv)))
    if any(r.get("copied_mib") is not None for r in grp):
        out.append("copied %s MiB, %s waited faults (%s ms)" % (
            cell(grp, "copied_mib", 0), cell(grp, "waited", 0),
            cell(grp, "wait_ms", 0)))
    return "; ".join(out)


def exact(grp):
    checked = [r for r in grp if "exact" in r]
    if not checked:
        return "-"
    good = sum(bool(r["exact"]) for r in checked)
    text = "%d/%d" % (good, len(checked))
    bad = [r.get("exact_msg") for r in checked if not r["exact"]]
    return text + (" (%s)" % bad[0][:80] if bad else "")


def markdown(meta, limits, rows):
    groups = group(rows)
    lines = ["# Snapshot methods side by side", ""]
    lines.append("%s, kernel %s, %s CPUs; %s%d run(s) per configuration; "
                 "load average %s at start, %s at end; %s s."
                 % (meta["date"], meta["kernel"], meta["cpus"],
                    "quick mode, " if meta["quick"] else "", meta["runs"],
                    meta["load_start"], meta.get("load_end"),
                    meta.get("elapsed_s")))
    if meta.get("qemu"):
        lines.append("QEMU: %s (TCG), boot-sector a-b-sweep twin "
                     "(bench/qemu-sweep.S)." % meta["qemu"])
    lines += ["", "## The machine's limits", "",
              "| memcpy GiB/s | write+fsync GiB/s | UFFDIO_WRITEPROTECT "
              "ms/GiB THP (on/off) | same, 4 KiB (on/off) | fork ms/GiB THP "
              "| fork ms/GiB 4 KiB |", "|---|---|---|---|---|---|"]

    def lim(k):
        v = limits.get(k)
        return "-" if v is None else "%.2f" % v
    lines.append("| %s | %s | %s / %s | %s / %s | %s | %s |" % (
        lim("memcpy_gibs"), lim("write_fsync_gibs"),
        lim("uffd_wp_thp_ms_per_gib"), lim("uffd_unwp_thp_ms_per_gib"),
        lim("uffd_wp_4k_ms_per_gib"), lim("uffd_unwp_4k_ms_per_gib"),
        lim("fork_thp_ms_per_gib"), lim("fork_4k_ms_per_gib")))
    if limits.get("notes"):
        lines.append("\n" + limits["notes"])
    sections = sorted({k[:3] for k in groups},
                      key=lambda k: (k[0], k[1], k[2]))
    for size, workload, target in sections:
        lines += ["", "## %s, %d MiB, target %s" % (
            workload, size, {"file": "file: (fsync)",
                             "exec": "exec:cat > FILE",
                             "null": "exec:cat > /dev/null"}[target]), ""]
        head = ["method"] + [c[0] for c in COLUMNS] + ["exact", "notes"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        names = [n for n in ORDER if (size, workload, target, n) in groups]
        for name in names:
            grp = groups[(size, workload, target, name)]
            cells = [LABELS[name]] + [cell(grp, k, d) for _, k, d in COLUMNS]
            cells += [exact(grp), notes(grp)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Goals (issue 6)", ""] + goals(meta, groups)
    return "\n".join(lines) + "\n"


def goals(meta, groups):
    """The issue's goals against the figures, for the default method."""
    out = ["| goal | target | measured | met |", "|---|---|---|---|"]
    buf_mib = (meta.get("default_buffer") or 0) / MiB

    def line(goal, target, grp, key, test, digits=2):
        m = stats(grp, key)[0] if grp else None
        met = "-" if m is None else ("yes" if test(m) else "no")
        out.append("| %s | %s | %s | %s |" % (
            goal, target, "-" if m is None else
            ("%." + str(digits) + "f") % m, met))

    for target in ("file", "exec", "null"):
        grp = groups.get((1024, "a-b-sweep", target, "bg"))
        if not grp:
            continue
        t = " (a-b-sweep 1 GiB, %s)" % target
        line("pause, ms" + t, "< 5", grp, "pause_ms", lambda v: v < 5)
        line("total / stop-and-copy" + t, "<= 1.3", grp, "total_rel",
             lambda v: v <= 1.3)
        line("first full pass / stop-and-copy total" + t, "<= 1.2", grp,
             "first_pass_rel", lambda v: v <= 1.2)
        line("speed after / before" + t, ">= 0.95", grp, "after_rel",
             lambda v: v >= 0.95)
        line("extra memory, MiB" + t, "<= %.0f" % (buf_mib + 32), grp,
             "extra_mib", lambda v: v <= buf_mib + 32, 1)
    for target in ("file", "exec", "null"):
        grp = groups.get((1024, "hot-set", target, "bg"))
        if grp:
            line("hot-set speed during / before (1 GiB, %s)" % target,
                 ">= 0.8", grp, "during_rel", lambda v: v >= 0.8)
    out += ["", "First full pass is measured against stop-and-copy's total "
            "time to the same target, i.e. RAM size over the rate at which "
            "that target takes pages."]
    return out


CSV_KEYS = ["size_mib", "workload", "target", "name", "run", "status",
            "pause_ms", "event_pause_ms", "downtime_ms", "total_ms",
            "reported_total_ms", "total_rel", "mibs", "speed_before",
            "speed_during", "speed_after", "during_rel", "after_rel",
            "first_pass_ms", "first_pass_rel", "huge_before_mib",
            "huge_after_mib", "rss_before", "peak_rss_mib", "extra_mib",
            "file_bytes",
            "file_rel", "restore_ms", "exact", "exact_msg", "converged",
            "copied_mib", "waited", "wait_ms", "error"]


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_KEYS)
        for r in rows:
            w.writerow(["" if r.get(k) is None else
                        ("%.4g" % r[k] if isinstance(r[k], float) else r[k])
                        for k in CSV_KEYS])


def timeline(row, window=0.25):
    """[(seconds from the command, speed / speed before)]."""
    samples = row.get("samples") or []
    before = row.get("speed_before")
    out = []
    j = 0
    for i, (t, n, _) in enumerate(samples):
        while j < len(samples) and samples[j][0] < t + window:
            j += 1
        if j >= len(samples) or not before:
            break
        dt = samples[j][0] - t
        out.append((t + dt / 2, (samples[j][1] - n) / dt / before))
    return out


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")           # no display: PNG files only
    import matplotlib.pyplot as plt
    return plt


def plot_timelines(outdir, groups):
    """One chart per (size, workload, target): every method's guest speed
    (relative to its own speed before) against time from the command,
    run 1 of each; a dotted line of the same colour where it ended."""
    plt = _pyplot()
    made = []
    for size, workload, target in sorted({k[:3] for k in groups}):
        names = [n for n in ORDER if (size, workload, target, n) in groups
                 and groups[(size, workload, target, n)][0].get("samples")]
        if len(names) < 2 or workload == "idle":
            continue
        fig, ax = plt.subplots(figsize=(11, 6))
        xmax = 0
        for i, n in enumerate(names):
            row = groups[(size, workload, target, n)][0]
            pts = timeline(row)
            if not pts:
                continue
            color = "C%d" % (i % 10)
            ax.plot([t for t, _ in pts], [v for _, v in pts], lw=1.6,
                    color=color, label=LABELS[n])
            if row.get("end_s") is not None:
                ax.axvline(row["end_s"], color=color, ls=":", lw=1)
                xmax = max(xmax, row["end_s"])
        ax.axvline(0, color="black", ls="--", lw=1)
        ax.set_xlim(-1.5, xmax + 1.5)
        ax.set_ylim(0, 1.6)
        ax.set_xlabel("seconds from the snapshot command (dotted: the "
                      "method's end)")
        ax.set_ylabel("guest speed / its speed before")
        ax.set_title("Guest speed around the snapshot: %s, %d MiB, target "
                     "%s (run 1)" % (workload, size, target))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
        fig.tight_layout()
        png = os.path.join(outdir, "timeline-%s-%dM-%s.png"
                           % (workload, size, target))
        fig.savefig(png, dpi=100)
        plt.close(fig)
        made.append(png)
    return made


def plot_bars(outdir, groups):
    """Per (workload, target): pause, total time and extra memory as
    bars per method, one bar per guest size (medians, min-max whiskers)."""
    plt = _pyplot()
    made = []
    panels = [("pause_ms", "pause, ms (log)", True),
              ("total_ms", "total time, ms", False),
              ("extra_mib", "peak extra memory over RAM, MiB", False)]
    for workload, target in sorted({(k[1], k[2]) for k in groups}):
        sizes = sorted({k[0] for k in groups
                        if k[1] == workload and k[2] == target})
        names = [n for n in ORDER if any((s, workload, target, n) in groups
                                         for s in sizes)]
        if len(names) < 2:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
        width = 0.8 / len(sizes)
        for ax, (key, title, log) in zip(axes, panels):
            for j, size in enumerate(sizes):
                xs, ys, lo, hi = [], [], [], []
                for i, n in enumerate(names):
                    m, mn, mx = stats(groups.get((size, workload, target, n),
                                                 []), key)
                    if m is None:
                        continue
                    if log:
                        m, mn, mx = (max(v, 0.01) for v in (m, mn, mx))
                    xs.append(i + (j - (len(sizes) - 1) / 2) * width)
                    ys.append(m)
                    lo.append(m - mn)
                    hi.append(mx - m)
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2,
                       label="%d MiB" % size, color="C%d" % j)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=35, ha="right", fontsize=9)
            ax.set_title(title)
            if log:
                ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=9)
        fig.suptitle("%s, target %s: median over runs (whiskers: min-max)"
                     % (workload, target))
        fig.tight_layout()
        png = os.path.join(outdir, "bars-%s-%s.png" % (workload, target))
        fig.savefig(png, dpi=100)
        plt.close(fig)
        made.append(png)
    return made


def write_all(outdir, meta, limits, rows):
    derive(rows)
    table = markdown(meta, limits, rows)
    groups = group([r for r in rows if r.get("total_ms") is not None])
    pngs = []
    if have_matplotlib():
        pngs = plot_timelines(outdir, groups) + plot_bars(outdir, groups)
    else:
        table += "\n(no matplotlib: no plots; apt-get install " \
                 "python3-matplotlib)\n"
    if pngs:
        table += "\nPlots: " + ", ".join(os.path.basename(p)
                                         for p in pngs) + "\n"
    with open(os.path.join(outdir, "table.md"), "w") as f:
        f.write(table)
    write_csv(os.path.join(outdir, "runs.csv"), rows)
    return table


if __name__ == "__main__":
    # Render a results directory again from its rows.json:
    #     python3 bench/benchreport.py bench/results/DATE
    import json
    import sys
    with open(os.path.join(sys.argv[1], "rows.json")) as f:
        saved = json.load(f)
    print(write_all(sys.argv[1], saved["meta"], saved["limits"],
                    saved["rows"]))
