#!/usr/bin/env bash
# Sets up a fresh Debian machine and builds clfs-fs in release mode:
#   bash scripts/setup.sh
# Installs Debian packages and Rust when missing, then builds. The binary
# ends up at $CARGO_TARGET_DIR/release/clfs-fs and is linked to
# ./clfs-fs for convenience.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
clfs_ensure_apt
clfs_ensure_rust
clfs_target_dir
cargo build --release --locked
ln -sf "$CARGO_TARGET_DIR/release/clfs-fs" ./clfs-fs
echo "clfs-fs built: ./clfs-fs ($("$CARGO_TARGET_DIR/release/clfs-fs" --version))" >&2
