#!/usr/bin/env bash
# Mutation fuzzing of every reader through the real commands (tools/fuzz.py): damaged .h5ad
# files in every layout, scGPT model directories, run checkpoints, configs and split files, each
# mutant in its own process with a timeout and a memory limit. Exits non-zero on any panic,
# crash, hang, memory-limit kill or error that does not name the damaged file.
#
#   bash tools/fuzz.sh                    # the default budget: 6000 mutants (minutes on 2 cores)
#   bash tools/fuzz.sh --mutants 600      # the CI slice
#   bash tools/fuzz.sh --seed 7 --kinds h5ad,checkpoint --work /tmp/fuzz
#   bash tools/fuzz.sh --seed 7 --only h5ad:123 --work /tmp/fuzz   # replay one mutant
#
# Extra arguments go to tools/fuzz.py (see its --help). Findings are kept under WORK/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
ccfm_venv
# h5py makes the structural .h5ad mutations (dtypes, shapes, attributes, declared sizes).
"$CCFM_CACHE/venv/bin/python" -c "import h5py" 2>/dev/null \
  || "$CCFM_CACHE/venv/bin/python" -m pip install --quiet h5py numpy
cargo build --quiet -p ccfm-cli
bin="${CARGO_TARGET_DIR:-target}/debug/ccfm"
args=("$@")
case " $* " in *" --mutants "*) ;; *) args=(--mutants 6000 "${args[@]}") ;; esac
exec "$CCFM_CACHE/venv/bin/python" tools/fuzz.py --ccfm "$bin" "${args[@]}"
