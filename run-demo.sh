#!/bin/bash
# Install what snapvm needs (Debian 12), build it, and run the main job:
# boot a guest and drive it over QMP (see scripts/demo.py).
# Extra arguments go to scripts/demo.py (try --help).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-common.sh

install_deps
setup_build "$BUILD_DIR"
BUILD_DIR=$BUILD_DIR exec python3 scripts/demo.py "$@"
