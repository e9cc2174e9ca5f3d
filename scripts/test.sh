#!/usr/bin/env bash
# Runs every test of clfs-fs (the README's test command; .ci/run calls it):
#   bash scripts/test.sh
# Installs what the tests need when missing. Tests run in the release
# profile so they share the one RocksDB build with the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
clfs_ensure_apt
clfs_ensure_rust
clfs_target_dir
bash scripts/setup-azurite.sh >&2
bash scripts/setup-fstools.sh >&2
export CLFS_FIXTURES="${CLFS_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
cargo test --release --locked --all-targets "$@"
