#!/bin/bash
# Install what snapvm needs (Debian 12), build it, and run the main job:
# boot a guest and drive it over QMP (see scripts/demo.py).
# Extra arguments go to scripts/demo.py (try --help).
#
#   ./run-demo.sh --qemu [ARGS]    the same on QEMU with our series: build
#                                  it (qemu/build) and a Linux guest
#                                  (tests/linux-guest/build), snapshot the
#                                  running guest in the background to
#                                  exec: and file:, restore both, check
#                                  (scripts/qemu-demo.py --help for ARGS)
#   ./run-demo.sh --stock [ARGS]   the same on QEMU built without it
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
--qemu|--stock)
    which=$1; shift
    build_args=(--no-tests)
    [ "$which" = --stock ] && build_args+=(--stock)
    qemu=$(qemu/build "${build_args[@]}" | tail -n1)
    guest=$(tests/linux-guest/build | tail -n1)
    exec /usr/bin/python3 scripts/qemu-demo.py --qemu "$qemu" \
        --guestdir "$guest" --corrupt "$@"
    ;;
esac

. scripts/setup-common.sh

install_deps
setup_build "$BUILD_DIR"
BUILD_DIR=$BUILD_DIR exec python3 scripts/demo.py "$@"
