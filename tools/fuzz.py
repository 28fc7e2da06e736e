#!/usr/bin/env python3
"""Seeded mutation fuzzing of ccfm's readers, through the real command-line entry points.

Every file kind ccfm reads has valid seeds (the test fixtures, and a tiny run directory made at
start-up). Each mutant is one seed with one damage applied (bit flips, truncation at every length
class, zeroed / 0xFF / random / duplicated / deleted byte ranges, absurd 8-byte integers, and for
.h5ad files structural damage through h5py: dtypes and shapes swapped, attributes rewritten,
absurd declared sizes, out-of-range indices and codes, objects deleted), fed to one ccfm command
in its own process with a timeout and an address-space limit. An outcome is one of

  ok        exit 0
  error     a clean error: exit code 1 or 2, stderr's last line starts `error:` and names the file
  unnamed   a clean exit code, but the error does not name the damaged file (or its directory)
  panic     exit code 101 (a Rust panic)
  crash     killed by a signal (abort, segfault, ...), other than the timeout
  oom       an allocation failed under the memory limit
  hang      still running at the timeout

Anything but ok / error is a finding; the mutant, the command and its output are kept under
WORK/findings/ and `--only KIND:INDEX` replays one mutant. The exit code is 1 when there is a
finding. Mutant INDEX of kind KIND depends only on (--seed, KIND, INDEX).

Usage: tools/fuzz.py --ccfm BIN [--mutants N] [--seed S] [--jobs J] [--timeout SEC]
                     [--mem-mb MB] [--kinds h5ad,scgpt,checkpoint,config,split,eval]
                     [--work DIR] [--only KIND:INDEX]
"""

import argparse
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"

OUTCOMES = ["ok", "error", "unnamed", "panic", "crash", "oom", "hang"]
FINDINGS = {"unnamed", "panic", "crash", "oom", "hang"}

# ---------------------------------------------------------------------------------------------
# Byte-level damage


def absurd_u64(rng):
    return rng.choice(
        [2**63 - 1, 2**64 - 1, 2**32, 2**40, 2**31 - 1, 2**56 + 3, 0xFFFFFFFF, 1 << 62]
    )


def damage_bytes(data, rng):
    """One random damage to `data`; returns (new bytes, description)."""
    n = len(data)
    b = bytearray(data)
    op = rng.choice(
        ["flip", "flip", "truncate", "zero", "ff", "random", "duplicate", "delete", "absurd"]
    )
    if n == 0:
        return bytes([rng.randrange(256)]), "one random byte"
    if op == "flip":
        k = rng.choice([1, 2, 4, 8, 16])
        for _ in range(k):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"{k} bit flip(s)"
    if op == "truncate":
        cut = rng.choice([0, 1, 2, 7, 8, 64, 511, 512, 4096, n // 4, n // 2, n - 1, rng.randrange(n)])
        cut = max(0, min(cut, n - 1))
        return bytes(b[:cut]), f"truncated to {cut} of {n} bytes"
    length = rng.choice([1, 4, 8, 64, 512, 4096])
    start = rng.randrange(n)
    end = min(n, start + length)
    if op == "zero":
        b[start:end] = bytes(end - start)
        return bytes(b), f"zeroed bytes {start}..{end}"
    if op == "ff":
        b[start:end] = b"\xff" * (end - start)
        return bytes(b), f"0xFF over bytes {start}..{end}"
    if op == "random":
        b[start:end] = bytes(rng.randrange(256) for _ in range(end - start))
        return bytes(b), f"random bytes over {start}..{end}"
    if op == "duplicate":
        at = rng.randrange(n)
        return bytes(b[:at] + b[start:end] + b[at:]), f"bytes {start}..{end} copied to {at}"
    if op == "delete":
        return bytes(b[:start] + b[end:]), f"deleted bytes {start}..{end}"
    at = rng.randrange(max(1, n - 8)) & ~7
    v = absurd_u64(rng)
    b[at : at + 8] = struct.pack("<Q", v)[: len(b[at : at + 8])]
    return bytes(b), f"u64 {v} written at {at}"


# ---------------------------------------------------------------------------------------------
# Structural damage: JSON, TOML, HDF5

NASTY = [
    -1, 0, 1, 2**31, 2**63, -(2**63), 1e308, -1e308, float("nan"), float("inf"), 0.5, "", "x",
    "../../etc/passwd", [], {}, None, True, [1, 2, 3], "A+B+C", "nan",
]


def damage_json(data, rng):
    try:
        doc = json.loads(data)
    except Exception:
        return damage_bytes(data, rng)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node[:50]):
                walk(v, path + [i])

    walk(doc, [])
    path = rng.choice(paths[1:] or paths)
    op = rng.choice(["replace", "replace", "delete", "duplicate"])
    if not path:
        return json.dumps(rng.choice(NASTY)).encode(), "document replaced"
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op == "delete":
        del parent[key]
        desc = f"deleted {path}"
    elif op == "duplicate" and isinstance(parent, list):
        parent.extend([parent[key]] * rng.choice([1, 1000]))
        desc = f"duplicated {path}"
    else:
        v = rng.choice(NASTY)
        parent[key] = v
        desc = f"{path} = {v!r}"
    return json.dumps(doc).encode(), desc


def damage_toml(data, rng):
    lines = data.decode("utf-8", "replace").splitlines()
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    if not keyed or rng.random() < 0.3:
        return damage_bytes(data, rng)
    i = rng.choice(keyed)
    key = lines[i].split("=", 1)[0]
    op = rng.choice(["value", "value", "value", "delete", "rename", "section"])
    if op == "delete":
        desc = f"deleted `{lines[i].strip()}`"
        del lines[i]
    elif op == "rename":
        lines[i] = "unknown_" + lines[i].lstrip()
        desc = f"renamed key of `{key.strip()}`"
    elif op == "section":
        lines.insert(i, rng.choice(["[nonsense]", "[data", "[[train]]", "[model.x]"]))
        desc = "inserted a section header"
    else:
        v = rng.choice(
            ["-1", "0", "1e308", "-1e308", "nan", "inf", "18446744073709551616", "9223372036854775807",
             '"x"', '""', "[]", "{}", "true", "0.5", '"A+B+C"', "-0.0", '"/nonexistent/path"']
        )
        lines[i] = f"{key}= {v}"
        desc = f"{key.strip()} = {v}"
    return ("\n".join(lines) + "\n").encode(), desc


def damage_h5(src, dst, rng):
    """Structural damage with h5py; returns a description, or None when h5py is missing."""
    try:
        import h5py
        import numpy as np
    except ImportError:
        return None
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        datasets, holders = [], []

        def visit(name, obj):
            holders.append(name)
            if isinstance(obj, h5py.Dataset):
                datasets.append(name)

        f.visititems(visit)
        holders.append("/")
        op = rng.choice(
            ["dtype", "shape", "values", "values", "attr", "attr", "delete", "swap", "huge"]
        )
        if op == "huge" and datasets:
            # A declared size the file cannot back: chunked, no chunk ever written.
            name = rng.choice(datasets)
            attrs = dict(f[name].attrs)
            dtype = f[name].dtype if f[name].dtype.kind in "iufb" else "f8"
            n = rng.choice([2**31, 2**40, 2**48])
            del f[name]
            nd = f.create_dataset(name, shape=(n,), dtype=dtype, chunks=(1024,))
            for k, v in attrs.items():
                nd.attrs[k] = v
            return f"{name}: declared {n} values, none stored"
        if op in ("dtype", "shape", "values") and datasets:
            name = rng.choice(datasets)
            ds = f[name]
            attrs = dict(ds.attrs)
            old = ds[()]
            arr = np.asarray(old)
            if op == "dtype":
                new_t = rng.choice(["i1", "u8", "f2", "S3", "bool", "i8", "f8"])
                try:
                    new = arr.astype(new_t)
                except Exception:
                    new = np.zeros(arr.shape, dtype=new_t)
                desc = f"{name}: dtype {arr.dtype} -> {new_t}"
            elif op == "shape":
                flat = arr.reshape(-1)
                choice = rng.choice(["2d", "short", "long", "scalar", "empty"])
                if choice == "2d" and flat.size >= 2:
                    new = flat[: flat.size // 2 * 2].reshape(2, -1)
                elif choice == "short" and flat.size >= 1:
                    new = flat[:-1]
                elif choice == "long" and flat.size >= 1:
                    new = np.concatenate([flat, flat[-1:]])
                elif choice == "scalar" and flat.size >= 1:
                    new = flat[0]
                else:
                    new = flat[:0]
                desc = f"{name}: shape {arr.shape} -> {np.shape(new)}"
            else:
                new = arr.copy()
                if new.size and new.dtype.kind in "iuf":
                    k = rng.randrange(new.size)
                    flat = new.reshape(-1)
                    bad = {
                        "i": [-1, -(2**40), 2**62, np.iinfo(new.dtype).max if new.dtype.kind == "i" else 0],
                        "u": [2**32 - 1, 2**62 if new.dtype.itemsize == 8 else 2**(8 * new.dtype.itemsize) - 1],
                        "f": [np.nan, np.inf, -np.inf, -1.0, 1e30],
                    }[new.dtype.kind]
                    v = rng.choice(bad)
                    try:
                        flat[k] = v
                    except Exception:
                        flat[k] = 0
                    desc = f"{name}[{k}] = {v}"
                else:
                    desc = f"{name}: emptied"
                    new = new.reshape(-1)[:0]
            del f[name]
            try:
                nd = f.create_dataset(name, data=new)
            except Exception:
                nd = f.create_dataset(name, data=np.zeros(1))
            for k, v in attrs.items():
                nd.attrs[k] = v
            return desc
        if op == "attr":
            name = rng.choice(holders)
            obj = f[name]
            keys = list(obj.attrs.keys())
            if keys and rng.random() < 0.7:
                k = rng.choice(keys)
                v = rng.choice(
                    [np.array([-1, 5], dtype="i8"), np.array([2**40, 2**40], dtype="i8"),
                     np.array([0, 0], dtype="i8"), "csr_matrix", "csc_matrix", "categorical",
                     "dataframe", "nonsense", np.array(["nope"], dtype=h5py.string_dtype()),
                     np.float64(3.5), ""]
                )
                if rng.random() < 0.3:
                    del obj.attrs[k]
                    return f"{name}: attribute {k} deleted"
                obj.attrs[k] = v
                return f"{name}: attribute {k} = {v!r}"
            obj.attrs["shape"] = np.array([2**40, 3], dtype="i8")
            return f"{name}: attribute shape = [2**40, 3]"
        if op == "delete":
            name = rng.choice(holders[:-1] or holders)
            if name != "/":
                del f[name]
                return f"{name} deleted"
        if op == "swap" and len(datasets) >= 2:
            a, b = rng.sample(datasets, 2)
            f.move(a, a + "__tmp")
            f.move(b, a)
            f.move(a + "__tmp", b)
            return f"{a} and {b} swapped"
    return "copied unchanged"


# ---------------------------------------------------------------------------------------------
# Seeds and targets


class Setup:
    """The valid inputs: fixtures plus a tiny trained run directory."""

    def __init__(self, ccfm, work, timeout):
        self.ccfm = ccfm
        self.work = work
        self.base = work / "seeds"
        self.base.mkdir(parents=True, exist_ok=True)
        self.data = self.base / "synth.h5ad"
        self.config = self.base / "tiny.toml"
        self.run = self.base / "run"
        self.run_ccfm = self.base / "run_ccfm"
        self.scgpt_synth = self.base / "scgpt_synth"
        self.scgpt_pt = self.base / "scgpt_pt"
        self.scgpt_st = self.base / "scgpt_st"
        if not self.run_ccfm.joinpath("checkpoints", "latest").exists():
            self.make(timeout)

    def ccfm_ok(self, args, timeout):
        p = subprocess.run([str(self.ccfm)] + args, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            sys.exit(f"fuzz: setup failed: ccfm {' '.join(args)}\n{p.stdout}{p.stderr}")

    def make(self, timeout):
        self.ccfm_ok(["synth", "--preset", "norman", "--size", "tiny", "--seed", "3", "--out",
                      str(self.data)], 10 * timeout)
        self.config.write_text(
            f'[data]\npath = "{self.data}"\nn_top_genes = 0\ngenes_per_step = 8\nfold = 0\n'
            "coexpression_top_k = 4\n[model]\nd_model = 8\nnhead = 2\nnlayers = 1\n"
            "[latent]\nenabled = false\n[train]\nsteps = 2\nbatch_size = 4\nlr = 1e-3\n"
            "validate_every = 0\nval_cells = 2\n[sample]\nexpr_time_points = 2\n"
            "cells_per_condition = 2\nn_genes = 0\n[output]\ncheckpoint_every = 2\nlog_every = 1\n"
        )
        shutil.rmtree(self.run, ignore_errors=True)
        self.ccfm_ok(["train", "--config", str(self.config), "--out", str(self.run)], 20 * timeout)
        model = FIX / "scgpt" / "model"
        for d, weights in [(self.scgpt_pt, "best_model.pt"), (self.scgpt_st, "best_model.safetensors")]:
            d.mkdir(exist_ok=True)
            for name in ["args.json", "vocab.json", weights]:
                shutil.copyfile(model / name, d / name)
        # A CCFM run (scGPT latent, EMA): the fixture model with its gene tokens renamed to the
        # synthetic data's genes, so that its checkpoints hold extractor state and ema.bin.
        self.scgpt_synth.mkdir(exist_ok=True)
        for name in ["args.json", "best_model.pt"]:
            shutil.copyfile(model / name, self.scgpt_synth / name)
        vocab = json.loads((model / "vocab.json").read_text())
        genes = [f"SG{i:04d}" for i in range(1, 1000)]
        renamed = {}
        for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            renamed[tok if tok.startswith("<") else genes.pop(0)] = i
        (self.scgpt_synth / "vocab.json").write_text(json.dumps(renamed))
        shutil.rmtree(self.run_ccfm, ignore_errors=True)
        self.ccfm_ok(["train", "--config", str(self.config), "--out", str(self.run_ccfm), "--set",
                      "latent.enabled=true", "--set", f"latent.scgpt_dir={json.dumps(str(self.scgpt_synth))}",
                      "--set", "latent.bottleneck_dim=8", "--set", "latent.dh_depth=1", "--set",
                      "latent.norm_warmup_batches=1", "--set", "sample.latent_time_points=2",
                      "--set", "train.ema_decay=0.9"], 20 * timeout)

    def checkpoint_files(self, run):
        latest = (run / "checkpoints" / "latest").read_text().strip()
        ck = Path("checkpoints") / latest
        files = [ck / "model.bin", ck / "optimizer.bin", ck / "state.json", ck / "config.toml",
                 Path("checkpoints/latest"), Path("config.toml"), Path("split.json"),
                 Path("vocab.json")]
        if (run / ck / "ema.bin").exists():
            files.append(ck / "ema.bin")
        return files


def kinds(setup):
    """kind -> list of (seed file, how to damage it, how to build the command)."""
    ccfm = str(setup.ccfm)
    h5ads = sorted((FIX / "h5ad").glob("*.h5ad")) + [setup.data]

    def h5ad_cmds(m, d):
        return [
            ["inspect", "--allow-unmeasured", str(m)],
            # A budget below any file: the streamed path (hyperslab reads, passes, block cache).
            ["inspect", "--allow-unmeasured", "--json", "--max-memory", "1KiB", str(m)],
            ["hvg", "--n-top", "5", "--max-memory", "1KiB", str(m)],
            ["train", "--config", str(setup.config), "--set", f"data.path={json.dumps(str(m))}",
             "--set", 'data.unmeasured_perturbations="vocabulary"', "--out", str(d / "run"),
             "--stop-after", "1"],
        ]

    def synth_cmds(m, d):
        return h5ad_cmds(m, d) + [
            ["predict", "--run", str(setup.run), "--controls", str(m), "--out", str(d / "pred.h5ad"),
             "--cells-per-condition", "2"],
        ]

    def eval_cmds(which):
        real, pred = FIX / "celleval" / "tiny_real.h5ad", FIX / "celleval" / "tiny_pred.h5ad"

        def cmds(m, d):
            r, p = (m, pred) if which == "real" else (real, m)
            plain = ["evaluate", "--real", str(r), "--pred", str(p), "--profile", "minimal",
                     "--out", str(d / "eval")]
            if which == "pred":
                return [plain]
            # The real file doubles as the baselines' training cells.
            return [plain, ["evaluate", "--real", str(real), "--pred", str(pred), "--baselines",
                            str(m), "--profile", "minimal", "--out", str(d / "eval")]]

        return cmds

    def embed_input(m, d):
        return [["embed", "--scgpt", str(setup.scgpt_pt), "--input", str(m), "--out",
                 str(d / "out.safetensors")]]

    def scgpt_cmds(model_dir, name):
        def place(seed, m, d):
            target = d / "model"
            shutil.copytree(model_dir, target)
            shutil.copyfile(m, target / name)
            return target

        def cmds(m, d):
            return [["embed", "--scgpt", str(d / "model"), "--input", str(FIX / "scgpt" / "embed.h5ad"),
                     "--out", str(d / "out.safetensors")]]

        return place, cmds

    def run_cmds(run_dir, rel):
        def place(seed, m, d):
            target = d / "run"
            shutil.copytree(run_dir, target)
            shutil.copyfile(m, target / rel)
            return target

        def cmds(m, d):
            run = d / "run"
            return [["train", "--resume", str(run)],
                    ["predict", "--run", str(run), "--out", str(d / "pred.h5ad"),
                     "--cells-per-condition", "2"]]

        return place, cmds

    def config_cmds(m, d):
        return [["train", "--config", str(m), "--out", str(d / "run"), "--stop-after", "1"]]

    def split_cmds(m, d):
        return [["train", "--config", str(setup.config), "--set", f"data.split={json.dumps(str(m))}",
                 "--out", str(d / "run"), "--stop-after", "1"]]

    out = {
        "h5ad": [(s, "h5", None, h5ad_cmds) for s in h5ads[:-1]]
        + [(setup.data, "h5", None, synth_cmds)]
        + [(FIX / "scgpt" / "embed.h5ad", "h5", None, embed_input)],
        "eval": [(FIX / "celleval" / "tiny_real.h5ad", "h5", None, eval_cmds("real")),
                 (FIX / "celleval" / "tiny_pred.h5ad", "h5", None, eval_cmds("pred"))],
        "scgpt": [],
        "checkpoint": [],
        "config": [(setup.config, "toml", None, config_cmds)],
        "split": [(setup.run / "split.json", "json", None, split_cmds)],
    }
    for model_dir, weights in [(setup.scgpt_pt, "best_model.pt"), (setup.scgpt_st, "best_model.safetensors")]:
        for name in ["args.json", "vocab.json", weights]:
            how = "json" if name.endswith(".json") else "bytes"
            place, cmds = scgpt_cmds(model_dir, name)
            out["scgpt"].append((model_dir / name, how, place, cmds))
    for run_dir in [setup.run, setup.run_ccfm]:
        for rel in setup.checkpoint_files(run_dir):
            how = {".json": "json", ".toml": "toml"}.get(rel.suffix, "bytes")
            place, cmds = run_cmds(run_dir, rel)
            out["checkpoint"].append((run_dir / rel, how, place, cmds))
    return out


# ---------------------------------------------------------------------------------------------
# Running one mutant


def limits(mem_mb):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()

    return apply


def classify(rc, stderr, timed_out, names):
    if timed_out:
        return "hang"
    if "memory allocation of" in stderr and "failed" in stderr:
        return "oom"
    if rc == 0:
        return "ok"
    if rc == 101 or "panicked at" in stderr:
        return "panic"
    if rc < 0 or rc > 128:
        return "crash"
    lines = [line for line in stderr.strip().split("\n") if line.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("error:") and any(n in stderr for n in names):
        return "error"
    return "unnamed"


def run_mutant(kind, index, spec, args, setup):
    seed_file, how, place, cmds = spec
    rng = random.Random(f"{args.seed}:{kind}:{index}")
    d = Path(tempfile.mkdtemp(prefix=f"{kind}-{index}-", dir=args.work / "tmp"))
    m = d / seed_file.name
    desc = None
    if how == "h5" and rng.random() < 0.5:
        desc = damage_h5(seed_file, m, rng)
    if desc is None:
        data = seed_file.read_bytes()
        damage = {"json": damage_json, "toml": damage_toml}.get(how, damage_bytes)
        if how != "bytes" and rng.random() < 0.3:
            damage = damage_bytes
        new, desc = damage(data, rng)
        m.write_bytes(new)
    named = [str(m), m.name]
    if place:
        target = place(seed_file, m, d)
        named += [str(target)]
    all_cmds = cmds(m, d)
    cmd = all_cmds[index % len(all_cmds)]
    start = time.time()
    try:
        p = subprocess.run([str(setup.ccfm)] + cmd, capture_output=True, timeout=args.timeout,
                           preexec_fn=limits(args.mem_mb), env=dict(os.environ, CCFM_PROGRESS="never"))
        rc, err, timed_out = p.returncode, p.stderr.decode("utf-8", "replace"), False
    except subprocess.TimeoutExpired as e:
        rc, err, timed_out = None, (e.stderr or b"").decode("utf-8", "replace"), True
    outcome = classify(rc, err, timed_out, named)
    seconds = time.time() - start
    if outcome in FINDINGS:
        keep = args.work / "findings" / f"{kind}-{index}"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(d, keep)
        (keep / "finding.txt").write_text(
            f"outcome: {outcome}\nexit: {rc}\nseed file: {seed_file}\ndamage: {desc}\n"
            f"command: ccfm {' '.join(cmd)}\nreplay: tools/fuzz.py --ccfm {setup.ccfm} --seed "
            f"{args.seed} --only {kind}:{index}\n--- stderr ---\n{err[-4000:]}\n"
        )
    shutil.rmtree(d, ignore_errors=True)
    return kind, index, outcome, seconds, desc, cmd[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ccfm", required=True, type=Path)
    ap.add_argument("--mutants", type=int, default=5000, help="mutants in all, spread over the kinds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--mem-mb", type=int, default=4096)
    ap.add_argument("--kinds", default="h5ad,eval,scgpt,checkpoint,config,split")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--only", default=None, help="KIND:INDEX: replay one mutant")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here as JSON")
    args = ap.parse_args()
    args.ccfm = args.ccfm.resolve()
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="ccfm-fuzz-"))).resolve()
    (args.work / "tmp").mkdir(parents=True, exist_ok=True)
    setup = Setup(args.ccfm, args.work, args.timeout)
    specs = kinds(setup)
    chosen = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in chosen:
        if k not in specs:
            sys.exit(f"fuzz: unknown kind `{k}` (kinds: {', '.join(specs)})")
    # Mutants of a kind cycle over its seeds (seed = index % number of seeds).
    jobs = []
    if args.only:
        kind, index = args.only.split(":")
        jobs = [(kind, int(index))]
    else:
        per = max(1, args.mutants // len(chosen))
        jobs = [(k, i) for i in range(per) for k in chosen]
    started = time.time()
    counts = {k: {o: 0 for o in OUTCOMES} for k in chosen}
    by_cmd = {}
    slowest = (0.0, None)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(run_mutant, k, i, specs[k][i % len(specs[k])], args, setup) for k, i in jobs
        ]
        for n, fut in enumerate(futures, 1):
            kind, index, outcome, seconds, desc, sub = fut.result()
            counts.setdefault(kind, {o: 0 for o in OUTCOMES})[outcome] += 1
            by_cmd.setdefault(sub, {o: 0 for o in OUTCOMES})[outcome] += 1
            if seconds > slowest[0]:
                slowest = (seconds, f"{kind}:{index}")
            if outcome in FINDINGS or args.only:
                print(f"{outcome:8} {kind}:{index} ccfm {sub}: {desc}", flush=True)
            if n % 500 == 0:
                print(f"... {n}/{len(jobs)} mutants, {time.time() - started:.0f} s", flush=True)
    total = {o: sum(c[o] for c in counts.values()) for o in OUTCOMES}
    print(f"\nfuzz: {len(jobs)} mutants, seed {args.seed}, {time.time() - started:.0f} s, "
          f"{args.jobs} jobs, timeout {args.timeout:g} s, memory limit {args.mem_mb} MiB")
    print(f"{'kind':12}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for k, c in list(counts.items()) + [("all", total)]:
        print(f"{k:12}" + "".join(f"{c[o]:>9}" for o in OUTCOMES))
    print(f"{'command':12}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for k, c in sorted(by_cmd.items()):
        print(f"{k:12}" + "".join(f"{c[o]:>9}" for o in OUTCOMES))
    print(f"slowest mutant: {slowest[1]} ({slowest[0]:.1f} s)")
    findings = sum(total[o] for o in FINDINGS)
    if args.json:
        args.json.write_text(json.dumps({"mutants": len(jobs), "seed": args.seed,
                                         "seconds": time.time() - started, "by_kind": counts,
                                         "by_command": by_cmd, "total": total}, indent=1))
    if findings:
        print(f"{findings} finding(s), kept under {args.work / 'findings'}")
        return 1
    print("no findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
