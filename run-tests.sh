#!/bin/bash
# Install what snapvm needs (Debian 12), build it three times and run the
# tests: every test in a normal build and in an AddressSanitizer +
# UndefinedBehaviorSanitizer build, the tests that run snapshot threads in
# a ThreadSanitizer build; then run each libFuzzer target of tests/fuzz
# for a fixed number of inputs (a clang build).  The last line is
# "N passed, N failed", summed over all of them (a fuzz target counts as
# one test).  Exit status: 0 only if nothing failed.
#
# Then it builds QEMU with this project's background-snapshot series
# (qemu/build) and runs QEMU's migration qtests against it
# (tests/qemu/run-qtests).
#
# SKIP_ASAN=1, SKIP_TSAN=1, SKIP_FUZZ=1, SKIP_QEMU=1 leave that part out
# (quicker while developing); FUZZ_RUNS=N sets the inputs per fuzz target
# (20000).
# docs/devel/testing.md says what each part proves.
set -uo pipefail
cd "$(dirname "$0")"
. scripts/setup-common.sh

install_deps || exit 1

# Results per build, as "passed failed skipped" lines in $summary.
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT

# run_suite DIR TIMEOUT_MULTIPLIER [meson setup options...]
# $SUITE_TESTS, if set, names the tests to run (default: all).
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
    # shellcheck disable=SC2086 # a list of test names
    meson test -C "$dir" --print-errorlogs --timeout-multiplier "$mult" \
        ${SUITE_TESTS:-}
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

# run_fuzz: build everything with clang (ASan+UBSan, -Werror: the qtests
# and unit tests too, so that they build with both compilers) and run
# each libFuzzer target for $FUZZ_RUNS inputs, mutating a copy of its
# seed corpus tests/fuzz/corpus/CORPUS (the checked-in seeds are only
# read).  A crash, leak, timeout or memory blow-up fails that target; the
# input that did it is kept in $FUZZ_BUILD_DIR/fuzz-artifacts/ and
# belongs in tests/fuzz/regressions/TARGET/.
run_fuzz() {
    local dir=$FUZZ_BUILD_DIR target corpus work rc
    echo "=== $dir: build (clang, every program)"
    if { [ -f "$dir/build.ninja" ] ||
         CC=clang meson setup "$dir" --werror -Dfuzzing=true \
             -Db_sanitize=address,undefined -Db_lundef=false; } &&
       ninja -C "$dir"; then
        :
    else
        echo "=== $dir: BUILD FAILED"
        echo "0 1 0" >>"$summary"
        return
    fi
    mkdir -p "$dir/fuzz-artifacts"
    # TARGET:CORPUS, as in tests/fuzz/meson.build
    for target in loadvm:loadvm loadvm-machine:loadvm qmp:qmp \
                  checksums:checksums; do
        corpus=${target#*:}
        target=${target%%:*}
        work=$(mktemp -d)
        echo "=== $dir: fuzz-$target, ${FUZZ_RUNS:-20000} inputs"
        # -max_total_time only bounds a pathologically slow run.
        ASAN_OPTIONS=detect_leaks=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            "$dir/tests/fuzz/fuzz-$target" "$work" \
            "tests/fuzz/corpus/$corpus" -runs="${FUZZ_RUNS:-20000}" \
            -max_total_time=600 -timeout=20 \
            -artifact_prefix="$dir/fuzz-artifacts/$target-" \
            -print_final_stats=1 >"$work.log" 2>&1
        rc=$?
        grep -E '^(Done|stat::number_of_executed_units|stat::new_units)' \
            "$work.log"
        if [ "$rc" -eq 0 ]; then
            echo "=== fuzz-$target: OK"
            echo "1 0 0" >>"$summary"
        else
            tail -n 60 "$work.log"
            echo "=== fuzz-$target: FAILED (exit $rc), input kept in" \
                 "$dir/fuzz-artifacts/"
            echo "0 1 0" >>"$summary"
        fi
        rm -rf "$work" "$work.log"
    done
}

start=$(date +%s)
run_suite "$BUILD_DIR" 1
if [ "${SKIP_ASAN:-0}" != 1 ]; then
    # Sanitized code runs 2-3 times slower: give its tests more time.
    run_suite "$ASAN_BUILD_DIR" 3 -Db_sanitize=address,undefined \
        -Db_lundef=false
fi
if [ "${SKIP_TSAN:-0}" != 1 ]; then
    # The tests whose programs run several threads over shared state: the
    # write tracker, the atomics, the channels, background snapshots with
    # injected faults, cancels, storms and QMP clients.  TSan is 3-10
    # times slower.  (bg-snapshot-test is left out: its throttling checks
    # assume relative thread speeds that TSan changes.)
    SUITE_TESTS="test-wp-tracker test-bitmap test-channel fault-inject-test
                 stress-test" \
        run_suite "$TSAN_BUILD_DIR" 6 -Db_sanitize=thread
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    # In a subshell: install_deps exits when it cannot install.
    if (install_deps "$SNAPVM_FUZZ_DEPS"); then
        run_fuzz
    elif [ "$(id -u)" = 0 ]; then
        echo "0 1 0" >>"$summary"   # root, and still no clang: a failure
    else
        echo "=== fuzzing skipped: no clang (SKIP_FUZZ=1 says so quietly)"
        echo "0 0 3" >>"$summary"   # three targets skipped
    fi
fi

if [ "${SKIP_QEMU:-0}" != 1 ]; then
    # QEMU with the background-snapshot series (qemu/patches): build it
    # from Debian's source package, check the series with checkpatch and
    # run QEMU's migration qtests, the series' own among them.
    qemu_log=$(mktemp)
    tests/qemu/run-qtests 2>&1 | tee "$qemu_log"
    # The script's last line: "qemu: N passed, N failed, N skipped"
    if ! tail -n 1 "$qemu_log" |
         sed -n 's/^qemu: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' |
         grep . >>"$summary"; then
        echo "0 1 0" >>"$summary"   # no summary line: count a failure
    fi
    rm -f "$qemu_log"
fi

read -r passed failed skipped < <(awk '{p += $1; f += $2; s += $3}
                                       END {print p + 0, f + 0, s + 0}' \
                                      "$summary")
echo "=== $(( $(date +%s) - start )) s; $skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
