"""Golden fixture for the scGPT port, produced by the official scgpt 0.2.4 package.

Run:  python tools/gen_scgpt_fixture.py tests/fixtures/scgpt
Needs (scgpt.md §6): pip install torch==2.3.0 torchtext==0.18.0; pip install scgpt==0.2.4
      torch==2.3.0 torchtext==0.18.0 "numpy<2"; pip install ipython "pyarrow<18" safetensors

Writes, all seeded:
- model/: a tiny random model in the official layout: best_model.pt (flash-attn `Wqkv` names,
  plus `flag_encoder`, no `cls_decoder`), best_model.safetensors (the same tensors),
  vocab.json (shuffled key order, specials appended), args.json (the official key set).
  The model is reloaded through scgpt's own `load_pretrained` before anything is recorded.
- encode.safetensors: `_encode` inputs (binned + padded; continuous values with the clamp,
  zeros and negatives) and every intermediate (gene_emb, value_emb, total, each layer).
- binning.json: cells of counts, their bins in `left` mode and in scgpt's random mode with the
  uniform draws that were used.
- embed.h5ad / embed.safetensors: a tie-free 5-cell AnnData and scgpt.tasks.embed_data's
  cell embeddings for it.
"""

import json
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")

from safetensors.torch import save_file  # noqa: E402
from scgpt.model import TransformerModel  # noqa: E402
from scgpt.preprocess import binning  # noqa: E402
from scgpt.tokenizer import GeneVocab  # noqa: E402
from scgpt.utils import load_pretrained  # noqa: E402

D, H, F, NL = 32, 4, 48, 2
N_GENES = 57


def official_args():
    return {
        "data_source": "synthetic", "save_dir": "synthetic", "load_model": None, "n_hvg": None,
        "valid_size_or_ratio": 0.003, "dist_backend": "nccl", "grad_accu_steps": 1,
        "dist_url": "tcp://localhost:10001", "input_style": "binned", "input_emb_style": "continuous",
        "n_bins": 51, "max_seq_len": 1200, "training_tasks": "both", "dist_local_rank": 0,
        "mask_ratio": [0.25, 0.5, 0.75], "trunc_by_sample": True, "vocab_path": "vocab.json",
        "rank": 0, "batch_size": 32, "eval_batch_size": 64, "epochs": 6, "lr": 0.0001,
        "scheduler_interval": 100, "scheduler_factor": 0.99, "warmup_ratio_or_step": 10000.0,
        "no_cls": True, "no_cce": True, "fp16": True, "fast_transformer": True, "nlayers": NL,
        "nheads": H, "embsize": D, "d_hid": F, "dropout": 0.2, "n_layers_cls": 3,
        "log_interval": 9000, "save_interval": 27000, "mask_value": -1, "pad_value": -2,
        "USE_CLS": False, "USE_CCE": False, "MVC": True, "USE_GENERATIVE_TRAINING": True,
        "world_size": 16, "distributed": True, "local_rank": 0, "gpu": 0, "pad_token": "<pad>",
    }


def make_model(out):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    genes = [f"G{i:02d}" for i in range(N_GENES)]
    tokens = genes + ["<pad>", "<cls>", "<eoc>"]
    order = rng.permutation(len(tokens))
    vocab_json = {tokens[i]: int(i) for i in order}  # shuffled key order
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "model" / "vocab.json").write_text(json.dumps(vocab_json, indent=1) + "\n")
    args = official_args()
    (out / "model" / "args.json").write_text(json.dumps(args, indent=1) + "\n")
    vocab = GeneVocab.from_dict(vocab_json)
    model = TransformerModel(ntoken=len(vocab), d_model=D, nhead=H, d_hid=F, nlayers=NL,
                             nlayers_cls=3, n_cls=1, vocab=vocab, dropout=0.2, pad_token="<pad>",
                             pad_value=-2, do_mvc=True, use_fast_transformer=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if name.endswith("norm.weight") or "norm1.weight" in name or "norm2.weight" in name else 0.0))
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        if k.startswith("cls_decoder."):
            continue
        sd[k.replace("self_attn.in_proj_", "self_attn.Wqkv.")] = v.clone().contiguous()
        if k == "encoder.enc_norm.bias":
            sd["flag_encoder.weight"] = torch.randn(2, D)
    sd._metadata = OrderedDict()
    torch.save(sd, out / "model" / "best_model.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out / "model" / "best_model.safetensors"))
    # Reload through scgpt's own loader, as embed_data does.
    fresh = TransformerModel(ntoken=len(vocab), d_model=D, nhead=H, d_hid=F, nlayers=NL,
                             nlayers_cls=3, n_cls=1, vocab=vocab, dropout=0.2, pad_token="<pad>",
                             pad_value=-2, do_mvc=True, use_fast_transformer=False)
    load_pretrained(fresh, torch.load(out / "model" / "best_model.pt"), verbose=False)
    fresh.eval()
    return fresh, vocab, genes


def trace(model, src, values, pad):
    with torch.no_grad():
        g = model.encoder(src)
        v = model.value_encoder(values)
        x = g + v
        rec = {"gene_emb": g, "value_emb": v, "total": x}
        h = x
        for i, layer in enumerate(model.transformer_encoder.layers):
            # The slow path (the nested-tensor fast path zeroes pad rows).
            # train() with every dropout at 0 (the attention's own included) forces it.
            layer.train()
            layer.dropout.p = layer.dropout1.p = layer.dropout2.p = 0.0
            layer.self_attn.dropout = 0.0
            h = layer(h, src_key_padding_mask=pad)
            layer.eval()
            rec[f"layer_{i}"] = h
        rec["encode"] = model._encode(src, values, pad)
    return rec


def encode_cases(model, vocab, out):
    rng = np.random.default_rng(1)
    pad_id, cls_id = vocab["<pad>"], vocab["<cls>"]
    tensors = {}
    # Case a: binned values, padded rows of different lengths.
    lens = [9, 6, 4]
    L = max(lens)
    src = np.full((3, L), pad_id)
    val = np.full((3, L), -2.0, np.float32)
    for b, n in enumerate(lens):
        src[b, 0] = cls_id
        src[b, 1:n] = [vocab[f"G{i:02d}"] for i in rng.choice(N_GENES, n - 1, replace=False)]
        val[b, 1:n] = rng.integers(1, 51, n - 1)
    # Case b: continuous values: clamp (> 512), zero, negative, large; and a <cls>-only row.
    src_b = np.array([[cls_id] + [vocab[f"G{i:02d}"] for i in (3, 7, 11, 19, 23)],
                      [cls_id] + [pad_id] * 5])
    val_b = np.array([[-2.0, 0.0, -1.0, 3.5, 700.0, 512.0], [-2.0] + [-2.0] * 5], np.float32)
    for name, s, v in [("a", src, val), ("b", src_b, val_b)]:
        st = torch.tensor(s, dtype=torch.long)
        vt = torch.tensor(v)
        pad = st.eq(pad_id)
        rec = trace(model, st, vt, pad)
        tensors[f"{name}.src"] = st
        tensors[f"{name}.values"] = vt
        tensors[f"{name}.pad"] = pad.to(torch.uint8)
        for k, t in rec.items():
            tensors[f"{name}.{k}"] = t.float().contiguous()
    save_file(tensors, str(out / "encode.safetensors"))


def binning_cases(out):
    rng = np.random.default_rng(2)
    cells = [
        rng.poisson(1.5, 60).astype(np.float32),          # many ties
        rng.gamma(2.0, 3.0, 80).astype(np.float32) * (rng.random(80) < 0.5),  # tie-free
        np.log1p(rng.poisson(0.8, 40)).astype(np.float32),  # log data with ties
        np.array([0, 0, 5, 0], np.float32),                  # one non-zero
        np.zeros(10, np.float32),                           # empty cell
    ]
    cases = []
    for i, row in enumerate(cells):
        nz = row[row != 0]
        np.random.seed(100 + i)
        draws = np.random.rand(len(nz)).tolist()
        np.random.seed(100 + i)
        random_bins = binning(row, n_bins=51)
        edges = np.quantile(nz, np.linspace(0, 1, 50)).tolist() if len(nz) else []
        left = np.zeros_like(row)
        if len(nz):
            left[row != 0] = np.digitize(nz, np.array(edges))
        cases.append({"row": row.tolist(), "edges": edges, "draws": draws,
                      "left": left.tolist(), "random": np.asarray(random_bins, np.float64).tolist()})
    (out / "binning.json").write_text(json.dumps({"n_bins": 51, "cases": cases}) + "\n")


def embed_case(out):
    import anndata as ad
    import pandas as pd
    from scgpt.tasks import embed_data

    rng = np.random.default_rng(3)
    n, g = 5, 20
    x = np.zeros((n, g), np.float32)
    for c in range(n):
        nz = rng.choice(g, 12, replace=False)
        x[c, nz] = rng.permutation(np.arange(1, 13)).astype(np.float32) * (c + 1)  # tie-free
    genes = [f"G{i:02d}" for i in range(g - 2)] + ["NOT_IN_VOCAB1", "NOT_IN_VOCAB2"]
    a = ad.AnnData(X=x, obs=pd.DataFrame(index=[f"cell{i}" for i in range(n)]),
                   var=pd.DataFrame({"feature_name": genes}, index=genes))
    a.write_h5ad(out / "embed.h5ad")
    torch.manual_seed(0)
    res = embed_data(a.copy(), out / "model", gene_col="feature_name", max_length=1200,
                     batch_size=2, device="cpu", use_fast_transformer=False, return_new_adata=True)
    emb = np.asarray(res.X, np.float32)
    save_file({"cell_embedding": torch.tensor(emb)}, str(out / "embed.safetensors"))


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, vocab, _ = make_model(out)
    encode_cases(model, vocab, out)
    binning_cases(out)
    embed_case(out)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/scgpt")
