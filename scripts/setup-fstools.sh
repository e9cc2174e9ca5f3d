#!/usr/bin/env bash
# Install the filesystem test tools from crates.io into a folder outside the
# clone, unless they are already there:
#   pjdfstest  POSIX conformance suite (Rust port)
#   fsx        random read/write/truncate/mmap data-integrity exerciser
#
#   scripts/setup-fstools.sh      # installs into $CLFS_FS_TOOLS_DIR
#                                 # (default ~/.cache/clfs-fs/tools/bin)
#
# tests/fs_conformance.rs finds them there (or through the same variable).
set -euo pipefail

ROOT="${CLFS_FS_TOOLS_DIR:-${HOME:-/root}/.cache/clfs-fs/tools}"
mkdir -p "$ROOT"
for tool in pjdfstest fsx; do
    if [[ -x "$ROOT/bin/$tool" ]]; then
        echo "$tool already installed: $ROOT/bin/$tool"
        continue
    fi
    echo "clfs-fs: installing $tool from crates.io into $ROOT" >&2
    # Its own target dir: never the RocksDB build's.
    CARGO_TARGET_DIR="$ROOT/build" cargo install --locked --root "$ROOT" "$tool"
done
rm -rf "$ROOT/build"
