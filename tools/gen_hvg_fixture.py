"""Record scanpy's seurat highly-variable-gene selection on the real PerturBench subset.

Run:  python tools/gen_hvg_fixture.py ../shared/data/perturbench_devel.h5ad tests/fixtures/hvg/perturbench_seurat.json
Needs: pip install scanpy==1.11.4

For the Norman part (obs['dataset'] == 'norman19') and for the whole file, and for several
n_top_genes (including more than the genes that have a dispersion), it stores the selected
genes in var order and the per-gene normalised dispersions, which ccfm-data must reproduce.
"""

import json
import sys
import warnings

import numpy as np
import scanpy as sc


def record(adata, n_tops):
    out = {}
    for n in n_tops:
        a = adata.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.highly_variable_genes(a, n_top_genes=n, flavor="seurat")
        out[str(n)] = {
            "selected": [g for g, hv in zip(a.var_names, a.var["highly_variable"]) if hv],
            "dispersions_norm": [None if np.isnan(v) else float(v) for v in a.var["dispersions_norm"]],
        }
    return out


def main(src, dst):
    adata = sc.read_h5ad(src)
    adata.uns.pop("log1p", None)  # natural log, as the file was written
    norman = adata[adata.obs["dataset"] == "norman19"].copy()
    result = {
        "scanpy": sc.__version__,
        "var_names": list(map(str, adata.var_names)),
        "subsets": {
            "norman19": {"n_obs": int(norman.n_obs), "selections": record(norman, [50, 100, 250, 499, 600])},
            "all": {"n_obs": int(adata.n_obs), "selections": record(adata, [100, 300])},
        },
    }
    with open(dst, "w") as f:
        json.dump(result, f)
        f.write("\n")
    print("wrote", dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
