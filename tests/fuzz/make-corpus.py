#!/usr/bin/env python3
"""Write the seed corpus of the stream-loader fuzzer: small real snapshots.

    tests/fuzz/make-corpus.py BUILD_DIR OUT_DIR

Each file is a whole stream written by snapvm itself (an idle guest, whose
RAM is mostly zero, keeps them at a few KiB): a background snapshot, a
stop-and-copy of a paused guest, two vCPUs, and two RAMBlocks of
different backends.  Each is written twice: NAME.snap without the
"snapvm-checksums" section (x-checksums off: a file from before the
checksums, which must still load) and NAME-checksums.snap with it (the
default since commit 1b089a7), so that the fuzzers reach the checksum
code.  Both are the stream layout: the fuzzers load from a buffer, and a
mapped-ram file is only read from a file (qemu_loadvm_state refuses it).
The checked-in copies are in tests/fuzz/corpus/loadvm; run this again
when the stream format changes.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
from qmp import SnapVM  # noqa: E402

TWO_BLOCKS = ["-object", "memory-backend-ram,id=m0,size=2M",
              "-object", "memory-backend-memfd,id=m1,size=2M",
              "-numa", "node,memdev=m0", "-numa", "node,memdev=m1"]

CASES = [
    # name, extra args, background snapshot?, pause first?
    ("bg-idle-2m", ["-m", "2M"], True, False),
    ("bg-idle-smp2-2m", ["-m", "2M", "-smp", "2"], True, False),
    ("precopy-paused-2m", ["-m", "2M"], False, True),
    ("bg-two-blocks-4m", ["-m", "4M"] + TWO_BLOCKS, True, False),
]


def main():
    build, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    guest = os.path.join(build, "tests", "guest", "idle.elf")
    for (name, extra, background, pause), checksums in (
            (case, checksums) for case in CASES for checksums in (False, True)):
        suffix = "-checksums" if checksums else ""
        path = os.path.abspath(os.path.join(out, name + suffix + ".snap"))
        with SnapVM(os.path.join(build, "snapvm"),
                    ["-kernel", guest] + extra) as vm:
            vm.qmp.command("migrate-set-parameters", **{
                "x-checksums": checksums})
            if background:
                vm.qmp.command("migrate-set-capabilities", capabilities=[
                    {"capability": "background-snapshot", "state": True}])
            if pause:
                vm.qmp.command("stop")
            vm.qmp.command("migrate", uri="file:" + path)
            while True:
                st = vm.qmp.command("query-migrate")
                if st["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.02)
            if st["status"] != "completed":
                sys.exit("%s: %s" % (name, st.get("error-desc")))
        print("%s: %d bytes" % (path, os.path.getsize(path)))


if __name__ == "__main__":
    main()
