"""Record scanpy's normalize_total + log1p on a small count matrix.

Run:  python tools/gen_preprocess_fixture.py tests/fixtures/preprocess/scanpy_normalize.json
Needs: pip install scanpy==1.11.4

The counts are drawn with a fixed numpy seed (negative binomial, many zeros, one all-zero cell)
and stored with the results, so the Rust test needs nothing else.
"""

import json
import sys

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp


def run(counts, target_sum):
    a = ad.AnnData(sp.csr_matrix(counts.astype(np.float32)))
    sc.pp.normalize_total(a, target_sum=target_sum)
    sc.pp.log1p(a)
    return a.X.toarray().astype(np.float64)


def main(dst):
    rng = np.random.default_rng(0)
    counts = rng.negative_binomial(n=0.6, p=0.35, size=(40, 25)).astype(np.int64)
    counts[7] = 0  # a cell with no counts stays zero
    totals = counts.sum(axis=1)
    out = {
        "scanpy": sc.__version__,
        "counts": counts.tolist(),
        "median_total": float(np.median(totals[totals > 0])),
        "log1p_median": run(counts, None).tolist(),
        "log1p_1e4": run(counts, 1e4).tolist(),
    }
    with open(dst, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("wrote", dst)


if __name__ == "__main__":
    main(sys.argv[1])
