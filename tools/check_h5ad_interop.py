"""Open the .h5ad files CCFM wrote with Python anndata and check them against expected.json.

Run:  CCFM_INTEROP_DIR=DIR cargo test -p ccfm-data --test writer
      ccfm synth --preset norman --size tiny --out DIR/synth_norman.h5ad   (optional)
      python tools/check_h5ad_interop.py DIR
or:   python tools/check_h5ad_interop.py --predictions DIR   (the *.h5ad of `ccfm predict`)
Needs: pip install anndata. Exits non-zero on the first difference.
"""

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp


def main(d):
    expected = json.loads((d / "expected.json").read_text())
    for f in sorted(d.glob("synth_*.h5ad")):
        check_synth(f)
    files = sorted(d.glob("written_*.h5ad"))
    assert files, f"no written_*.h5ad in {d}"
    for f in files:
        a = ad.read_h5ad(f)
        assert list(a.shape) == expected["shape"], (f, a.shape)
        assert list(a.obs_names) == expected["obs_index"], f
        assert list(a.var_names) == expected["var_index"], f
        assert list(a.obs.columns) == expected["obs_columns"], (f, list(a.obs.columns))
        for col, values in expected["obs"].items():
            got = a.obs[col].tolist()
            assert [str(v) if isinstance(v, str) else v for v in got] == values, (f, col, got)
        assert str(a.obs["perturbation"].dtype) == "category", f
        x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
        assert np.array_equal(x.astype(np.float32), np.array(expected["X"], dtype=np.float32)), (f, x)
        counts = np.asarray(a.layers["counts"])
        assert np.array_equal(counts.astype(np.float32), np.array(expected["counts"], dtype=np.float32)), f
        assert list(a.uns["names"]) == expected["uns"]["names"], (f, a.uns["names"])
        assert np.array_equal(np.asarray(a.uns["table"]), np.array(expected["uns"]["table"])), f
        assert a.uns["model"] == expected["uns"]["model"] and a.uns["seed"] == expected["uns"]["seed"], (f, a.uns)
        print(f"{f.name}: anndata reads shape {a.shape}, obs {list(a.obs.columns)}, X, layers and uns as written")


def check_synth(f):
    """A synthetic file: raw counts in layers, X = log1p(normalize_total(counts, 1e4)), truth in uns."""
    a = ad.read_h5ad(f)
    counts = a.layers["counts"].toarray()
    assert np.all(counts == np.round(counts)) and counts.min() >= 0, f
    totals = counts.sum(axis=1, keepdims=True)
    want = np.log1p(np.divide(counts * 1e4, totals, out=np.zeros_like(counts), where=totals > 0))
    assert np.allclose(a.X.toarray(), want, atol=1e-5), f
    assert str(a.obs["condition"].dtype) == "category", f
    n_cond = len(a.uns["true_conditions"])
    assert a.uns["true_mean"].shape == (n_cond, a.n_vars), (f, a.uns["true_mean"].shape)
    assert len(a.uns["gi_doubles"]) == len(a.uns["gi_type"]) > 0, f
    assert set(a.uns["gi_doubles"]) <= set(a.obs["condition"].astype(str)), f
    print(f"{f.name}: anndata reads {a.shape}, counts layer, X = log1p(CP10k), truth in uns")


def check_predictions(d):
    """`ccfm predict` output: obs['perturbation'] with control rows, dense X of log1p values,
    and the `_real` companion over the same genes (what cell-eval reads)."""
    preds = sorted(p for p in d.glob("*.h5ad") if not p.stem.endswith("_real") and not p.stem.endswith("_train_cells"))
    assert preds, f"no predictions in {d}"
    for f in preds:
        a = ad.read_h5ad(f)
        labels = a.obs["perturbation"].astype(str)
        assert (labels == "control").sum() > 0, f
        n_pert = labels[labels != "control"].nunique()
        assert n_pert > 0, f
        x = np.asarray(a.X.toarray() if sp.issparse(a.X) else a.X)
        assert np.isfinite(x).all() and x.min() >= 0, (f, x.min())
        real = f.with_name(f.stem + "_real.h5ad")
        r = ad.read_h5ad(real)
        assert list(r.var_names) == list(a.var_names), (real, "genes differ")
        assert set(r.obs["perturbation"].astype(str)) == set(labels), (real, "conditions differ")
        print(f"{f.name}: anndata reads {a.shape}, {n_pert} perturbations + control; {real.name} {r.shape}")


if __name__ == "__main__":
    if sys.argv[1] == "--predictions":
        check_predictions(Path(sys.argv[2]))
        sys.exit(0)
    main(Path(sys.argv[1]))
