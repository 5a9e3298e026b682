#!/bin/bash
# Install what snapvm needs (Debian 12), build it twice (normal, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), run every test in both,
# and print "N passed, N failed" last (the sum over both builds).
# Exit status: 0 only if nothing failed.
#
# SKIP_ASAN=1 runs the normal build only (quicker while developing).
set -uo pipefail
cd "$(dirname "$0")"
. scripts/setup-common.sh

install_deps || exit 1

# Results per build, as "passed failed skipped" lines in $summary.
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT

# run_suite DIR TIMEOUT_MULTIPLIER [meson setup options...]
run_suite() {
    local dir=$1 mult=$2
    shift 2
    echo "=== $dir: build"
    if ! setup_build "$dir" "$@"; then
        echo "=== $dir: BUILD FAILED"
        echo "0 1 0" >>"$summary"    # the build counts as one failure
        return
    fi
    echo "=== $dir: test"
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs --timeout-multiplier "$mult"
    if [ ! -f "$dir/meson-logs/testlog.json" ]; then
        echo "=== $dir: meson test wrote no results"
        echo "0 1 0" >>"$summary"
        return
    fi
    # One JSON object per line, one line per test.
    python3 - "$dir/meson-logs/testlog.json" >>"$summary" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        if not line.strip():
            continue
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(passed, failed, skipped)
PY
}

start=$(date +%s)
run_suite "$BUILD_DIR" 1
if [ "${SKIP_ASAN:-0}" != 1 ]; then
    # Sanitized code runs 2-3 times slower: give its tests more time.
    run_suite "$ASAN_BUILD_DIR" 3 -Db_sanitize=address,undefined \
        -Db_lundef=false
fi

read -r passed failed skipped < <(awk '{p += $1; f += $2; s += $3}
                                       END {print p + 0, f + 0, s + 0}' \
                                      "$summary")
echo "=== $(( $(date +%s) - start )) s; $skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
