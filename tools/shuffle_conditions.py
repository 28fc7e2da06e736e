"""The perturbation-shuffle check: does a model's prediction depend on the perturbation?

Writes a copy of a `ccfm predict` file in which every predicted condition's cells carry the
label of another condition (sorted names, each one takes the next one's name, the last the
first's), the control cells unchanged. Evaluating the copy against the real cells scores each
condition with the cells predicted for a different perturbation: a model whose predictions
depend on the perturbation gets worse on every metric; one that ignores it scores the same.

Run:  python tools/shuffle_conditions.py PRED.h5ad SHUFFLED.h5ad
      ccfm evaluate --real PRED_real.h5ad --pred SHUFFLED.h5ad --out eval_shuffled/
Needs: pip install anndata (the project's venv has it after tools/check_h5ad_interop.py).
"""

import sys
from pathlib import Path

import anndata as ad

CONTROL = "control"
COLUMN = "perturbation"


def shifted(names):
    """Each name mapped to the next one in sorted order (a permutation with no fixed point)."""
    names = sorted(names)
    if len(names) < 2:
        raise SystemExit(f"the shuffle needs at least 2 predicted conditions, found {len(names)}")
    return {a: b for a, b in zip(names, names[1:] + names[:1])}


def main(pred, out):
    a = ad.read_h5ad(pred)
    if COLUMN not in a.obs.columns:
        raise SystemExit(f"{pred}: obs has no '{COLUMN}' column; is it a `ccfm predict` file?")
    labels = a.obs[COLUMN].astype(str)
    mapping = shifted(set(labels) - {CONTROL})
    a.obs[COLUMN] = labels.map(lambda s: mapping.get(s, s)).astype("category")
    tmp = out.with_name(out.name + ".tmp")
    a.write_h5ad(tmp)
    tmp.replace(out)
    print(f"{out}: {len(mapping)} conditions relabelled, each with the next one's name")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
