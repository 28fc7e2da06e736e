"""Write small .h5ad files in the layouts CCFM must read, with the values anndata sees.

Run:  python tools/gen_h5ad_fixtures.py tests/fixtures/h5ad
Needs: pip install anndata (tested with anndata 0.12.19, h5py 3.16, numpy 2.4).

Each case `<name>.h5ad` gets `<name>.json` holding what anndata reads back from the file:
the obs/var index, every obs column as a list (categoricals as their string values, missing
as null), and the dense matrix of X and of every layer. The Rust tests read the .h5ad with
ccfm-data and compare against the JSON.
"""

import json
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def obs_frame(n, rng):
    conds = np.array(["ctrl", "KLF1+ctrl", "KLF1+MAP2K6", "ctrl+MAP2K6"])
    return pd.DataFrame(
        {
            "condition": pd.Categorical(conds[rng.integers(0, 4, n)]),
            "guide": np.array([f"g{i % 3}" for i in range(n)], dtype=object),
            "n_counts": rng.integers(100, 1000, n).astype(np.int64),
            "score": rng.normal(size=n).astype(np.float32),
            "control": rng.integers(0, 2, n).astype(bool),
            "dose": pd.array([None if i % 4 == 0 else i for i in range(n)], dtype="Int64"),
        },
        index=[f"cell{i}" for i in range(n)],
    )


def matrix(n, g, rng, dtype):
    x = rng.poisson(0.7, size=(n, g)).astype(dtype)
    x[x > 0] = (np.log1p(x[x > 0]) if np.issubdtype(dtype, np.floating) else x[x > 0])
    return x


def to_json(adata):
    def col(s):
        if isinstance(s.dtype, pd.CategoricalDtype):
            return [None if pd.isna(v) else str(v) for v in s]
        if s.dtype == bool:
            return [bool(v) for v in s]
        if pd.api.types.is_extension_array_dtype(s.dtype):
            return [None if pd.isna(v) else float(v) for v in s]
        if pd.api.types.is_numeric_dtype(s.dtype):
            return [float(v) for v in s]
        return [str(v) for v in s]

    dense = lambda m: (m.toarray() if sp.issparse(m) else np.asarray(m)).astype(np.float64).tolist()
    return {
        "obs_index": list(map(str, adata.obs_names)),
        "var_index": list(map(str, adata.var_names)),
        "obs": {c: col(adata.obs[c]) for c in adata.obs.columns},
        "var": {c: col(adata.var[c]) for c in adata.var.columns},
        "X": dense(adata.X),
        "layers": {k: dense(v) for k, v in adata.layers.items()},
    }


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n, g = 12, 9
    var = pd.DataFrame(
        {"gene_name": [f"GENE{j}" for j in range(g)]}, index=[f"ENSG{j:05d}" for j in range(g)]
    )
    cases = {
        "csr_f32": dict(X=sp.csr_matrix(matrix(n, g, rng, np.float32)), compression=None),
        "csc_f64_gzip": dict(X=sp.csc_matrix(matrix(n, g, rng, np.float64)), compression="gzip"),
        "dense_f32_lzf": dict(X=matrix(n, g, rng, np.float32), compression="lzf"),
        "dense_int_counts_layer": dict(X=matrix(n, g, rng, np.int64), compression=None),
    }
    for name, c in cases.items():
        a = ad.AnnData(X=c["X"], obs=obs_frame(n, rng), var=var.copy())
        if name == "dense_int_counts_layer":
            a.layers["counts"] = sp.csr_matrix(rng.poisson(2.0, size=(n, g)).astype(np.float32))
        a.write_h5ad(out / f"{name}.h5ad", compression=c["compression"])
        back = ad.read_h5ad(out / f"{name}.h5ad")
        (out / f"{name}.json").write_text(json.dumps(to_json(back), indent=1) + "\n")
        print("wrote", name)


def canonical(label):
    tokens = [t for t in label.split("+") if t not in ("ctrl", "control")]
    return "+".join(tokens) if tokens else "control"


def schema_cases(out):
    """One small file per dataset schema, as the real files lay it out (spec: scdfm.md §5.1,
    peers-metrics-data.md §3.1). The JSON adds the expected schema, the canonical condition of
    every cell and the gene symbols."""
    rng = np.random.default_rng(1)
    n = 16
    genes = ["KLF1", "MAP2K6", "CEBPE", "SET", "ZBTB10", "HK2"]
    pick = lambda labels: [labels[i % len(labels)] for i in range(n)]
    log_x = lambda: sp.csr_matrix(matrix(n, len(genes), rng, np.float32))
    cases = {}
    cond = pick(["ctrl", "KLF1+ctrl", "KLF1+MAP2K6", "ctrl+MAP2K6"])
    cases["schema_gears"] = ("gears", ad.AnnData(
        X=log_x(),
        obs=pd.DataFrame({
            "condition": pd.Categorical(cond),
            "cell_type": pd.Categorical(["A549"] * n),
            "dose_val": pd.Categorical(["1+1" if "ctrl" not in c else "1" for c in cond]),
            "control": np.array([int(c == "ctrl") for c in cond], dtype=np.int64),
            "condition_name": pd.Categorical([f"A549_{c}_1+1" for c in cond]),
        }, index=[f"cell{i}" for i in range(n)]),
        var=pd.DataFrame({"gene_name": genes}, index=[f"ENSG{j:05d}" for j in range(len(genes))]),
    ), cond)
    cond = pick(["ctrl", "CEBPE+ctrl", "CEBPE+SET", "SET+ctrl"])
    cases["schema_figshare_norman"] = ("figshare-norman", ad.AnnData(
        X=log_x(),
        obs=pd.DataFrame({
            "guide_merged": pd.Categorical(cond),
            "guide_identity": pd.Categorical([c.replace("+", "_") for c in cond]),
            "gene_program": pd.Categorical(["Ctrl" if c == "ctrl" else "Erythroid" for c in cond]),
            "gemgroup": np.arange(n) % 3 + 1,
        }, index=[f"AAAC{i:04d}-1" for i in range(n)]),
        var=pd.DataFrame({"gene_name": genes}, index=[str(j) for j in range(len(genes))]),
    ), cond)
    cond = pick(["control", "KLF1", "KLF1+HK2", "HK2"])
    cases["schema_perturbench"] = ("perturbench", ad.AnnData(
        X=log_x(),
        obs=pd.DataFrame({
            "condition": pd.Categorical(cond),
            "perturbation": pd.Categorical(cond),
            "dataset": pd.Categorical(["norman19"] * n),
            "cell_type": pd.Categorical(["k562"] * n),
        }, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=genes),
    ), cond)
    drugs = [("control", "control"), ("control", "Dacinostat"), ("Panobinostat", "Crizotinib"),
             ("control", "Alvespimycin")]
    pairs = pick(drugs)
    cond = [f"{a}+{b}" for a, b in pairs]
    counts = rng.poisson(1.5, size=(n, len(genes))).astype(np.float32)
    cases["schema_combosciplex"] = ("combosciplex", ad.AnnData(
        X=sp.csr_matrix(np.log1p(counts)),
        obs=pd.DataFrame({
            "condition": pd.Categorical(cond),
            "Drug1": pd.Categorical([a for a, _ in pairs]),
            "Drug2": pd.Categorical([b for _, b in pairs]),
            "cell_type": pd.Categorical(["A549"] * n),
            "split": pd.Categorical(["train"] * n),
        }, index=[f"w{i}" for i in range(n)]),
        var=pd.DataFrame(index=genes),
        layers={"counts": sp.csr_matrix(counts)},
    ), cond)
    for name, (schema, a, labels) in cases.items():
        a.write_h5ad(out / f"{name}.h5ad")
        back = ad.read_h5ad(out / f"{name}.h5ad")
        j = to_json(back)
        j["expected"] = {
            "schema": schema,
            "cell_conditions": [canonical(c) for c in labels],
            "genes": genes,
        }
        (out / f"{name}.json").write_text(json.dumps(j, indent=1) + "\n")
        print("wrote", name)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/h5ad")
    main(out)
    schema_cases(out)
