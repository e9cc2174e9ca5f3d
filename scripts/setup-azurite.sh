#!/usr/bin/env bash
# Install the Azurite storage emulator (npm package azurite, pinned) into a
# folder outside the clone, unless it is already there.
#
#   scripts/setup-azurite.sh            # installs into $CLFS_FS_AZURITE_DIR
#                                       # (default ~/.cache/clfs-fs/azurite)
#
# The tests find it there, or wherever AZURITE_BIN points (the path of the
# `azurite-blob` executable). 3.35.0 is the last release that runs on Node 20.
set -euo pipefail

VERSION="3.35.0"
DIR="${CLFS_FS_AZURITE_DIR:-${HOME:-/root}/.cache/clfs-fs/azurite}"
BIN="$DIR/node_modules/.bin/azurite-blob"

if [[ -x "$BIN" ]] && [[ -f "$DIR/node_modules/azurite/package.json" ]] &&
    grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/azurite/package.json"; then
    echo "azurite $VERSION already installed: $BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js 20 and npm first" >&2
    exit 1
fi

mkdir -p "$DIR"
echo "installing azurite@$VERSION into $DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error "azurite@$VERSION"

if [[ ! -x "$BIN" ]]; then
    echo "error: npm finished but $BIN is missing" >&2
    exit 1
fi
echo "azurite $VERSION installed: $BIN"
