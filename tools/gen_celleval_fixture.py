"""Record cell-eval 0.8.2's metrics on two prediction/real pairs; ccfm-eval must reproduce them.

Run:  python tools/gen_celleval_fixture.py ../shared/data/perturbench_devel.h5ad tests/fixtures/celleval
Needs: pip install cell-eval==0.8.2

(a) `tiny`: a hand-made pair (5 genes named like the perturbations, so the target-gene
    exclusion of the discrimination score matters; zeros so that log-fold changes are +-inf).
    Both .h5ad files are committed, with cell-eval's results and its DE tables.
(b) `norman`: the real PerturBench Norman subset. Real = the five seen-2 doubles and the
    control cells. Pred = the additive baseline: for a double A+B with n real cells, the first
    n control cells (cycling) plus (mean_A - mean_ctrl) + (mean_B - mean_ctrl), means in
    float64 over all cells of the group, the sum cast to float32 and clipped at 0; the pred
    control cells are the real control cells. The Rust test rebuilds the pair from the shared
    file by the same rule, so only cell-eval's results are committed.
"""

import json
import sys
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
from cell_eval import MetricsEvaluator

SEEN2 = ["KLF1+MAP2K6", "KLF1+TGFBR2", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"]


def evaluate(real, pred, pert_col):
    with tempfile.TemporaryDirectory() as d:
        me = MetricsEvaluator(
            adata_pred=pred, adata_real=real, control_pert="control", pert_col=pert_col,
            num_threads=1, outdir=d,
        )
        results, agg = me.compute(profile="full", write_csv=False)
        de = {
            "real": me.de_comparison.real.data.to_pandas(),
            "pred": me.de_comparison.pred.data.to_pandas(),
        }
    return results, agg, de


def frame_json(df):
    if isinstance(df, pl.DataFrame):
        df = df.to_pandas()
    out = {}
    for c in df.columns:
        vals = []
        for v in df[c].tolist():
            if isinstance(v, float) and np.isnan(v):
                vals.append("nan")
            elif isinstance(v, float) and np.isinf(v):
                vals.append("inf" if v > 0 else "-inf")
            elif isinstance(v, (np.floating, float)):
                vals.append(float(v))
            else:
                vals.append(v if isinstance(v, (int, str, bool)) or v is None else str(v))
        out[c] = vals
    return out


def tiny(out):
    rng = np.random.default_rng(7)
    genes = ["A", "B", "C", "G4", "G5", "G6"]
    perts = ["control"] * 14 + ["A"] * 10 + ["B"] * 9 + ["A+B"] * 11 + ["C"] * 8
    n, g = len(perts), len(genes)
    lam = np.full((n, g), 1.2)
    for i, p in enumerate(perts):
        for t in p.split("+"):
            if t in genes:
                lam[i, genes.index(t)] *= 4.0
        if p == "A+B":
            lam[i, 3] *= 3.0
    real_x = np.log1p(rng.poisson(lam)).astype(np.float32)
    real_x[[p == "C" for p in perts], 5] = 0.0  # a gene silent in one group: +-inf LFC
    pred_x = np.clip(real_x + rng.normal(0, 0.35, size=real_x.shape).astype(np.float32), 0, None)
    pred_x[[p == "B" for p in perts], 4] = 0.0
    pred_x = np.round(pred_x, 3).astype(np.float32) + np.float32(0.0005) * (pred_x > 0)
    obs = pd.DataFrame({"perturbation": pd.Categorical(perts)}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=genes)
    real = ad.AnnData(X=real_x, obs=obs.copy(), var=var.copy())
    pred = ad.AnnData(X=pred_x, obs=obs.copy(), var=var.copy())
    real.write_h5ad(out / "tiny_real.h5ad")
    pred.write_h5ad(out / "tiny_pred.h5ad")
    results, agg, de = evaluate(real, pred, "perturbation")
    return {
        "results": frame_json(results),
        "agg": frame_json(agg),
        "de_real": frame_json(de["real"]),
        "de_pred": frame_json(de["pred"]),
    }


def norman(src):
    a = ad.read_h5ad(src)
    a = a[a.obs["dataset"] == "norman19"].copy()
    x = a.X.toarray().astype(np.float32)
    cond = a.obs["condition"].astype(str).to_numpy()
    ctrl = np.where(cond == "control")[0]
    mean = lambda idx: x[idx].astype(np.float64).mean(axis=0)
    mu_ctrl = mean(ctrl)
    real_rows, pred_blocks, labels = [], [], []
    for d in SEEN2:
        idx = np.where(cond == d)[0]
        ga, gb = d.split("+")
        delta = (mean(np.where(cond == ga)[0]) - mu_ctrl) + (mean(np.where(cond == gb)[0]) - mu_ctrl)
        src_ctrl = ctrl[np.arange(len(idx)) % len(ctrl)]
        pred_blocks.append(np.clip((x[src_ctrl].astype(np.float64) + delta).astype(np.float32), 0, None))
        real_rows.append(idx)
        labels += [d] * len(idx)
    real_idx = np.concatenate(real_rows + [ctrl])
    labels += ["control"] * len(ctrl)
    obs = pd.DataFrame({"condition": pd.Categorical(labels)}, index=[f"c{i}" for i in range(len(labels))])
    var = pd.DataFrame(index=a.var_names.astype(str))
    real = ad.AnnData(X=x[real_idx], obs=obs.copy(), var=var.copy())
    pred = ad.AnnData(X=np.concatenate(pred_blocks + [x[ctrl]]), obs=obs.copy(), var=var.copy())
    results, agg, _ = evaluate(real, pred, "condition")
    return {"doubles": SEEN2, "results": frame_json(results), "agg": frame_json(agg)}


def main(src, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import cell_eval
    meta = {"cell_eval": getattr(cell_eval, "__version__", "0.8.2")}
    (out / "tiny.json").write_text(json.dumps({**meta, **tiny(out)}) + "\n")
    (out / "norman_additive.json").write_text(json.dumps({**meta, **norman(src)}) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
