//! Tokenisation and embedding as `scgpt.tasks.embed_data` does it:
//!
//! per cell, its non-zero genes that are in the vocabulary (in column order) with their values,
//! binned into `n_bins` (see [`crate::binning`]); `<cls>` first with the pad value; cells with
//! more than `max_seq_len - 1` genes keep a random subset; right-padded with `<pad>` and the pad
//! value to the longest cell of the batch. The encoder's output at `<cls>`, L2-normalised, is
//! the cell embedding; the outputs at the gene positions, scattered back to the input columns,
//! are the per-gene features (zero for genes that are not tokens: zero-valued or not in the
//! vocabulary).
//!
//! Randomness (tie-break draws, subsampling) comes from a ChaCha8 stream seeded by the
//! caller, so it is reproducible here but not the same draws as numpy's or torch's.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::binning::{bin_cell, TieBreak};
use crate::checkpoint::ScgptModel;
use crate::error::ScgptError;

/// A batch of tokenised cells, row-major `(cells, len)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub len: usize,
    pub genes: Vec<i64>,
    pub values: Vec<f32>,
    pub pad: Vec<bool>,
    /// Per cell, the input column of each token after `<cls>`.
    pub columns: Vec<Vec<usize>>,
}

impl TokenBatch {
    /// The cells `rows` only, padded to the same length.
    pub fn rows(self, rows: std::ops::Range<usize>) -> Self {
        let l = self.len;
        let span = rows.start * l..rows.end * l;
        Self {
            len: l,
            genes: self.genes[span.clone()].to_vec(),
            values: self.values[span.clone()].to_vec(),
            pad: self.pad[span].to_vec(),
            columns: self.columns[rows].to_vec(),
        }
    }
}

/// Settings of tokenisation.
#[derive(Debug, Clone, Copy)]
pub struct TokenizeOptions {
    pub n_bins: usize,
    pub max_seq_len: usize,
    pub pad_value: f32,
    pub tie_break: TieBreak,
}

/// Tokenise `rows` (`n x vocab_ids.len()`, row-major): `vocab_ids[j]` is the vocabulary id of
/// column `j` (None when the gene is not in the vocabulary).
pub fn tokenize(
    rows: &[f32],
    vocab_ids: &[Option<usize>],
    pad_id: usize,
    cls_id: usize,
    opts: &TokenizeOptions,
    rng: &mut ChaCha8Rng,
) -> TokenBatch {
    let g = vocab_ids.len();
    let mut cells: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
    for row in rows.chunks(g.max(1)) {
        let cols: Vec<usize> = (0..g)
            .filter(|&j| row[j] != 0.0 && vocab_ids[j].is_some())
            .collect();
        let vals: Vec<f32> = cols.iter().map(|&j| row[j]).collect();
        // Binning sees every non-zero in-vocabulary gene, before any subsampling.
        let binned = bin_cell(&vals, opts.n_bins, opts.tie_break, &mut || {
            rng.random::<f64>()
        });
        let mut tokens: Vec<(usize, f32)> = cols.into_iter().zip(binned).collect();
        if tokens.len() > opts.max_seq_len - 1 {
            tokens.shuffle(rng);
            tokens.truncate(opts.max_seq_len - 1);
        }
        cells.push(tokens.into_iter().unzip());
    }
    let len = 1 + cells.iter().map(|c| c.0.len()).max().unwrap_or(0);
    let n = cells.len();
    let mut batch = TokenBatch {
        len,
        genes: vec![pad_id as i64; n * len],
        values: vec![opts.pad_value; n * len],
        pad: vec![true; n * len],
        columns: Vec::with_capacity(n),
    };
    for (i, (cols, vals)) in cells.into_iter().enumerate() {
        batch.genes[i * len] = cls_id as i64;
        batch.pad[i * len] = false;
        for (k, (&c, &v)) in cols.iter().zip(&vals).enumerate() {
            batch.genes[i * len + 1 + k] = vocab_ids[c].expect("filtered") as i64;
            batch.values[i * len + 1 + k] = v;
            batch.pad[i * len + 1 + k] = false;
        }
        batch.columns.push(cols);
    }
    batch
}

/// Run the encoder on a token batch: the `(cells, len, d)` output as row-major data, and the
/// batch's per-cell input columns.
pub fn run_encoder<B: Backend>(
    model: &ScgptModel<B>,
    tb: TokenBatch,
    device: &B::Device,
) -> (Vec<f32>, Vec<Vec<usize>>) {
    let (b, l) = (tb.columns.len(), tb.len);
    let out = model
        .encoder
        .forward(
            Tensor::<B, 2, Int>::from_data(TensorData::new(tb.genes, [b, l]), device),
            Tensor::<B, 2>::from_data(TensorData::new(tb.values, [b, l]), device),
            Tensor::<B, 2, Bool>::from_data(TensorData::new(tb.pad, [b, l]), device),
        )
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float output");
    (out, tb.columns)
}

/// Cell embeddings and per-gene features of a set of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub d: usize,
    /// `(cells, d)`, L2-normalised.
    pub cell: Vec<f32>,
    /// `(cells, genes, d)`, genes in input column order.
    pub gene_features: Vec<f32>,
    /// Genes of the input found in the vocabulary.
    pub genes_in_vocab: usize,
}

/// How [`embed_cells`] tokenises and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Tie-break of the value binning.
    pub tie_break: TieBreak,
    /// Seed of the random tie-break and gene subsampling.
    pub seed: u64,
    /// Cells per encoder batch.
    pub batch_size: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            tie_break: TieBreak::Left,
            seed: 0,
            batch_size: 64,
        }
    }
}

/// Embed `rows` (`n x gene_symbols.len()`) with `model`, `opts.batch_size` cells at a time,
/// reporting `progress(cells done, cells)` after each batch.
pub fn embed_cells<B: Backend>(
    model: &ScgptModel<B>,
    gene_symbols: &[String],
    rows: &[f32],
    opts: &EmbedOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embeddings, ScgptError> {
    let EmbedOptions {
        tie_break,
        seed,
        batch_size,
    } = *opts;
    let vocab_ids = vocab_columns(model, gene_symbols)?;
    let genes_in_vocab = vocab_ids.iter().filter(|v| v.is_some()).count();
    let pad_id = model
        .vocab
        .id(&model.args.pad_token)
        .expect("checked by ScgptModel::from_dir");
    let cls_id = model.vocab.id("<cls>").expect("added on read");
    let tok_opts = TokenizeOptions {
        n_bins: model.args.n_bins,
        max_seq_len: model.args.max_seq_len,
        pad_value: model.args.pad_value,
        tie_break,
    };
    let g = gene_symbols.len();
    let d = model.args.embsize;
    let n = rows.len() / g.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sink = EmbeddingSink::new(n, g, d);
    progress(0, n);
    for start in (0..n).step_by(batch_size.max(1)) {
        let end = (start + batch_size.max(1)).min(n);
        let tb = tokenize(
            &rows[start * g..end * g],
            &vocab_ids,
            pad_id,
            cls_id,
            &tok_opts,
            &mut rng,
        );
        let l = tb.len;
        let (out, columns) = run_encoder(model, tb, device);
        sink.add_batch(start, l, &out, &columns);
        progress(end, n);
    }
    Ok(Embeddings {
        d,
        cell: sink.cell,
        gene_features: sink.gene_features,
        genes_in_vocab,
    })
}

/// The vocabulary id of each input gene; an error when none of them is in the vocabulary.
fn vocab_columns<B: Backend>(
    model: &ScgptModel<B>,
    gene_symbols: &[String],
) -> Result<Vec<Option<usize>>, ScgptError> {
    let vocab_ids: Vec<Option<usize>> = gene_symbols.iter().map(|s| model.vocab.id(s)).collect();
    if vocab_ids.iter().all(Option::is_none) {
        return Err(ScgptError::Config {
            path: model.dir.join("vocab.json"),
            key: "(genes)".into(),
            detail: format!(
                "none of the input's {} genes is in the vocabulary; pass gene symbols (e.g. \
                 var['feature_name'] or var['gene_name'])",
                gene_symbols.len()
            ),
        });
    }
    Ok(vocab_ids)
}

/// The cell embeddings and per-gene features of [`embed_cells`], filled in batch by batch.
struct EmbeddingSink {
    g: usize,
    d: usize,
    /// `(cells done, d)`, L2-normalised.
    cell: Vec<f32>,
    /// `(cells, genes, d)`, zero where a gene is not a token.
    gene_features: Vec<f32>,
}

impl EmbeddingSink {
    /// Room for `n` cells of `g` genes, features of width `d`.
    fn new(n: usize, g: usize, d: usize) -> Self {
        Self {
            g,
            d,
            cell: Vec::with_capacity(n * d),
            gene_features: vec![0f32; n * g * d],
        }
    }

    /// Store the encoder output `out` (`(cells, l, d)`) of the batch of cells from `start` on:
    /// the `<cls>` output L2-normalised, each token's output at its input column.
    fn add_batch(&mut self, start: usize, l: usize, out: &[f32], columns: &[Vec<usize>]) {
        let (g, d) = (self.g, self.d);
        for (i, cols) in columns.iter().enumerate() {
            let base = i * l * d;
            let cls = &out[base..base + d];
            let norm = cls
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            self.cell.extend(cls.iter().map(|v| v / norm));
            for (k, &c) in cols.iter().enumerate() {
                let src = &out[base + (1 + k) * d..base + (2 + k) * d];
                let dst = ((start + i) * g + c) * d;
                self.gene_features[dst..dst + d].copy_from_slice(src);
            }
        }
    }
}

impl Embeddings {
    /// Write `cell_embedding (cells, d)` and `gene_features (cells, genes, d)` as float32
    /// safetensors, atomically.
    pub fn write_safetensors(
        &self,
        path: &std::path::Path,
        n_genes: usize,
    ) -> Result<(), ScgptError> {
        use safetensors::tensor::{Dtype, TensorView};
        let n = self.cell.len() / self.d.max(1);
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let (cell, genes) = (bytes(&self.cell), bytes(&self.gene_features));
        let io = |detail: String| ScgptError::Io {
            path: path.to_path_buf(),
            detail,
        };
        let views = vec![
            (
                "cell_embedding",
                TensorView::new(Dtype::F32, vec![n, self.d], &cell)
                    .map_err(|e| io(e.to_string()))?,
            ),
            (
                "gene_features",
                TensorView::new(Dtype::F32, vec![n, n_genes, self.d], &genes)
                    .map_err(|e| io(e.to_string()))?,
            ),
        ];
        let data = safetensors::serialize(views, &None).map_err(|e| io(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, data).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(format!("writing: {e}"))
        })?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(format!("moving into place: {e}"))
        })
    }
}
