# Sourced by run-demo.sh and run-tests.sh: install what is missing, build.
#
# Build directories, relative to the top of the tree: $BUILD_DIR (default
# build), $ASAN_BUILD_DIR (build-asan), $TSAN_BUILD_DIR (build-tsan) and
# $FUZZ_BUILD_DIR (build-fuzz).

SNAPVM_DEPS="build-essential meson ninja-build pkg-config libglib2.0-dev
libjson-glib-dev libunicorn-dev libisal-dev socat python3"
# run-tests.sh's fuzzing build: clang, and its libFuzzer and sanitizer
# runtimes (a separate package on Debian 12).
SNAPVM_FUZZ_DEPS="clang libclang-rt-dev"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}

# install_deps [PACKAGES]: install the Debian packages (default
# $SNAPVM_DEPS) that are not installed yet.  Not root and something
# missing: say what and how, and fail.
install_deps() {
    local missing="" pkg
    for pkg in ${1:-$SNAPVM_DEPS}; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
                grep -q 'ok installed'; then
            missing="$missing $pkg"
        fi
    done
    [ -z "$missing" ] && return 0

    if [ "$(id -u)" != 0 ]; then
        echo "snapvm needs these packages, which are not installed:$missing" >&2
        echo "Install them as root with:" >&2
        echo "  apt-get update && apt-get install -y$missing" >&2
        exit 1
    fi
    echo "Installing:$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y$missing
}

# setup_build DIR [meson options...]: configure DIR once (werror is the
# project default), then build it.
setup_build() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        [ $# -gt 0 ] && meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" --werror "$@" || return 1
    fi
    ninja -C "$dir"
}
