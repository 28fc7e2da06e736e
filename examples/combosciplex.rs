//! CCFM on ComboSciPlex (A549 cells, single drugs and drug pairs): train with
//! configs/combosciplex.toml (scDFM's 7 held-out conditions), predict them, evaluate next to
//! the baselines.
//!
//! ```text
//! cargo run --release --example combosciplex -- --data combosciplex.h5ad --scgpt scGPT_human
//!     [--out DIR] [--steps N] [--scdfm] [--set section.key=value ...]
//! ```
//!
//! Without `--data` it prints where to download the files.

#[path = "pipeline/mod.rs"]
mod pipeline;

const HELP: &str = "\
ComboSciPlex is not bundled. Download the file pertpy's combosciplex() reads
(figshare article 25062230, file 44229635):
  https://figshare.com/ndownloader/files/44229635
and the scGPT whole-human checkpoint (args.json, vocab.json, best_model.pt) from the scGPT
README's Google Drive folder 1oWh_-ZRdhtoGQ2Fw24HP41FgLoomVo-y. Then run:
  cargo run --release --example combosciplex -- --data combosciplex.h5ad --scgpt scGPT_human
(--scdfm trains the scDFM baseline, which needs no scGPT; --random-scgpt writes an untrained
scGPT over the data's genes, to check the pipeline without the download.)";

fn main() {
    pipeline::run(pipeline::Dataset {
        name: "combosciplex",
        config: include_str!("../configs/combosciplex.toml"),
        config_path: "configs/combosciplex.toml",
        help: HELP,
    });
}
