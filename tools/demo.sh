#!/usr/bin/env bash
# The main job of the README: `ccfm demo` on built-in synthetic data, no downloads.
# Trains CCFM and the scDFM baseline briefly, predicts the held-out doubles, evaluates them next
# to the control / mean / additive / noise-ceiling baselines and prints where the reports are.
# Output: ./ccfm-demo (or --out DIR). Extra arguments go to `ccfm demo` (see `ccfm demo --help`).
# Built with the dev profile, whose dependencies (Burn, HDF5) are fully optimised: the same
# build as the tests, so a fresh machine compiles once. Cargo shows its own progress while it
# builds; once built, the build step takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
target="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target/debug/ccfm" ]; then
  echo "[ccfm] first build of ccfm (Burn and HDF5 from source): about 6-7 minutes on 2 cores" >&2
fi
cargo build -p ccfm-cli
exec "$target/debug/ccfm" demo "$@"
