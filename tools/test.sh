#!/usr/bin/env bash
# The test command of the README: every test of every crate on the default (CPU) backend.
# Tests that read ../shared skip with a notice when it is absent, unless CCFM_REQUIRE_SHARED=1.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
echo "tests: $(sum passed) passed, $(sum failed) failed, $(sum ignored) skipped"
exit "$rc"
