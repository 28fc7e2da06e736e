#!/usr/bin/env bash
# The main job of the README, on built-in data, no downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
exec cargo run --release --example flow_matching -- --config configs/flow_matching.toml "$@"
