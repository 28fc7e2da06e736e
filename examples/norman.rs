//! CCFM on Norman 2019 (K562 CRISPRa single and double gene activations): train with
//! configs/norman.toml, predict the held-out doubles, evaluate next to the baselines.
//!
//! ```text
//! cargo run --release --example norman -- --data norman.h5ad --scgpt scGPT_human [--out DIR]
//!     [--schema gears|perturbench|figshare-norman] [--dataset norman19] [--steps N]
//!     [--scdfm] [--set section.key=value ...]
//! ```
//!
//! Without `--data` it prints where to download the files. `--scdfm` trains the scDFM
//! baseline (latent stream off; no scGPT needed) instead of CCFM. CI runs it on the Norman
//! part of `../shared/data/perturbench_devel.h5ad` with a few steps.

#[path = "pipeline/mod.rs"]
mod pipeline;

const HELP: &str = "\
Norman 2019 is not bundled. Download one of:
  - scDFM's copy (GEARS layout, obs['condition'] = A+B / A+ctrl / ctrl, var['gene_name']):
    GEARS 'norman' (Harvard Dataverse datafile 6154020), perturb_processed.h5ad
  - the figshare Norman file (figshare article 24688110, file 43390776):
    https://ndownloader.figshare.com/files/43390776   (pass --schema figshare-norman)
  - PerturBench's mixed file with --schema perturbench --dataset norman19
and the scGPT whole-human checkpoint (args.json, vocab.json, best_model.pt) from the scGPT
README's Google Drive folder 1oWh_-ZRdhtoGQ2Fw24HP41FgLoomVo-y. Then run:
  cargo run --release --example norman -- --data norman.h5ad --scgpt scGPT_human
(--scdfm trains the scDFM baseline, which needs no scGPT; --random-scgpt writes an untrained
scGPT over the data's genes, to check the pipeline without the download.)";

fn main() {
    pipeline::run(pipeline::Dataset {
        name: "norman",
        config: include_str!("../configs/norman.toml"),
        config_path: "configs/norman.toml",
        help: HELP,
    });
}
