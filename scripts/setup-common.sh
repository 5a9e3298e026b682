# Sourced by run-demo.sh and run-tests.sh: install what is missing, build.
#
# Build directories: $BUILD_DIR (default build) and $ASAN_BUILD_DIR
# (default build-asan), relative to the top of the tree.

SNAPVM_DEPS="build-essential meson ninja-build pkg-config libglib2.0-dev
libjson-glib-dev libunicorn-dev socat python3"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}

# Install the Debian packages snapvm needs that are not installed yet.
# Not root and something missing: say what and how, and fail.
install_deps() {
    local missing="" pkg
    for pkg in $SNAPVM_DEPS; do
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
