# Shared by scripts/setup.sh and scripts/test.sh: installs what building and
# testing clfs-fs needs on Debian, only when it is missing. Source it.

# Debian packages: a C/C++ toolchain and libclang for RocksDB's bindings,
# FUSE 3 for the staging filesystem, lz4 and python3 for benchmarks and
# fixture trees, time for benchmark figures. Node.js and npm (for Azurite)
# are checked by command, since they may come from another source.
CLFS_APT_PACKAGES=(build-essential clang libclang-dev pkg-config fuse3 libfuse3-dev lz4 python3 time ca-certificates curl git)

clfs_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

clfs_ensure_apt() {
    local missing=()
    for p in "${CLFS_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ! command -v npm >/dev/null 2>&1; then
        missing+=(nodejs npm)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "clfs-fs: installing Debian packages: ${missing[*]}" >&2
        clfs_sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive clfs_sudo apt-get install -y -q "${missing[@]}"
    fi
}

clfs_ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "clfs-fs: installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
}

# A cargo target dir outside the clone, reused by every clone and CI run on
# this machine (a cold RocksDB build takes 20-45 minutes on 2 cores).
clfs_target_dir() {
    if [ -z "${CARGO_TARGET_DIR:-}" ]; then
        export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/clfs-fs/target"
    fi
    mkdir -p "$CARGO_TARGET_DIR"
}

# A benchmark's work folder at exit: removed, or kept when BENCH_KEEP=1
# (deleting many files makes this ext4 create files several times slower
# for minutes, so keep it when another measurement follows).
clfs_bench_work_done() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "kept $1 (BENCH_KEEP=1)" >&2
    else
        rm -rf "$1"
    fi
}
