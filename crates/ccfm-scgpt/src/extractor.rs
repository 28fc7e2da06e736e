//! `FrozenScGPTExtractor`: the per-gene scGPT features CCFM's latent stream learns to generate
//! (see docs/scgpt.md).
//!
//! The model's genes are mapped to scGPT vocabulary ids once (genes outside the vocabulary
//! never become tokens). For a batch of expression values `(B, T)` over `T` of the model's
//! genes it tokenises each cell as `embed_data` does, runs the frozen encoder and scatters the
//! per-gene outputs back to the `T` positions: `(B, T, d)`, zero where a gene is not a token
//! (zero-valued or not in the vocabulary). Token features are then normalised per dimension
//! with running statistics gathered over the first `stats_batches` batches and frozen after:
//! `(z − μ) / (σ + 1e-6)`, optionally clamped, times `target_std`. Positions that are not
//! tokens stay exactly 0. The output is plain data: no gradient reaches scGPT.

use std::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::binning::TieBreak;
use crate::checkpoint::ScgptModel;
use crate::embed::{run_encoder, tokenize, TokenizeOptions};
use crate::error::ScgptError;

/// Extractor settings (the `[latent]` section of the run configuration, docs/training.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractorConfig {
    /// Batches whose features build the running statistics before they freeze.
    pub stats_batches: usize,
    /// Clamp normalised features to `[-c, c]`.
    pub clamp: Option<f32>,
    /// Standard deviation of the normalised features (variance matching).
    pub target_std: f32,
    pub tie_break: TieBreak,
    pub seed: u64,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self {
            stats_batches: 100,
            clamp: None,
            target_std: 1.0,
            tie_break: TieBreak::Left,
            seed: 0,
        }
    }
}

/// Count, mean and sum of squared deviations of a block of `(n, d)` rows: what
/// [`FeatureStats::merge`] adds, and what data-parallel ranks combine before it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

impl Moments {
    /// The moments of the rows of a `(n, d)` block.
    pub fn of(rows: &[f32], d: usize) -> Self {
        let n = rows.len() / d.max(1);
        let mut mean = vec![0.0f64; d];
        let mut m2 = vec![0.0f64; d];
        if n == 0 {
            return Self { count: 0, mean, m2 };
        }
        for r in rows.chunks(d) {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        for r in rows.chunks(d) {
            for k in 0..d {
                m2[k] += (r[k] as f64 - mean[k]).powi(2);
            }
        }
        Self {
            count: n as u64,
            mean,
            m2,
        }
    }

    /// The moments of the token positions of `(positions, d)` features.
    pub fn of_tokens(feats: &[f32], token: &[bool], d: usize) -> Self {
        let rows: Vec<f32> = token
            .iter()
            .enumerate()
            .filter(|(_, &tk)| tk)
            .flat_map(|(p, _)| feats[p * d..(p + 1) * d].iter().copied())
            .collect();
        Self::of(&rows, d)
    }
}

/// Per-dimension running mean and variance of token features (Chan's parallel update).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    pub count: u64,
    pub mean: Vec<f64>,
    /// Sum of squared deviations.
    pub m2: Vec<f64>,
    pub batches: usize,
    pub frozen: bool,
}

impl FeatureStats {
    pub fn new(d: usize) -> Self {
        Self {
            count: 0,
            mean: vec![0.0; d],
            m2: vec![0.0; d],
            batches: 0,
            frozen: false,
        }
    }

    /// Add the rows of a `(n, d)` block.
    pub fn update(&mut self, rows: &[f32], d: usize) {
        self.merge(&Moments::of(rows, d));
    }

    /// Add a block summarised by its moments (Chan's parallel update).
    pub fn merge(&mut self, block: &Moments) {
        if block.count == 0 {
            return;
        }
        let (na, nb) = (self.count as f64, block.count as f64);
        let total = na + nb;
        for k in 0..self.mean.len() {
            let delta = block.mean[k] - self.mean[k];
            self.mean[k] += delta * nb / total;
            self.m2[k] += block.m2[k] + delta * delta * na * nb / total;
        }
        self.count += block.count;
    }

    /// Population standard deviation per dimension.
    pub fn std(&self) -> Vec<f64> {
        self.m2
            .iter()
            .map(|m| (m / self.count.max(1) as f64).sqrt())
            .collect()
    }

    pub fn to_json(&self) -> Value {
        json!({"count": self.count, "mean": self.mean, "m2": self.m2,
               "batches": self.batches, "frozen": self.frozen})
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        let f =
            |k: &str| -> Option<Vec<f64>> { v[k].as_array()?.iter().map(Value::as_f64).collect() };
        Some(Self {
            count: v["count"].as_u64()?,
            mean: f("mean")?,
            m2: f("m2")?,
            batches: v["batches"].as_u64()? as usize,
            frozen: v["frozen"].as_bool()?,
        })
    }
}

/// The frozen scGPT feature extractor.
pub struct FrozenScgptExtractor<B: Backend> {
    pub model: ScgptModel<B>,
    pub config: ExtractorConfig,
    vocab_ids: Vec<Option<usize>>,
    pub stats: FeatureStats,
    rng: ChaCha8Rng,
}

impl<B: Backend> FrozenScgptExtractor<B> {
    /// `genes`: the model's gene symbols (columns that `extract` indexes).
    pub fn new(
        model: ScgptModel<B>,
        genes: &[String],
        config: ExtractorConfig,
    ) -> Result<Self, ScgptError> {
        let vocab_ids: Vec<Option<usize>> = genes.iter().map(|g| model.vocab.id(g)).collect();
        if vocab_ids.iter().all(Option::is_none) {
            return Err(ScgptError::Config {
                path: model.dir.join("vocab.json"),
                key: "(genes)".into(),
                detail: format!(
                    "none of the {} genes of the data is in the scGPT vocabulary; the data's \
                     genes must be gene symbols",
                    genes.len()
                ),
            });
        }
        let d = model.args.embsize;
        Ok(Self {
            model,
            config,
            vocab_ids,
            stats: FeatureStats::new(d),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
        })
    }

    /// (genes in the vocabulary, genes).
    pub fn coverage(&self) -> (usize, usize) {
        (
            self.vocab_ids.iter().filter(|v| v.is_some()).count(),
            self.vocab_ids.len(),
        )
    }

    /// Position of the random tie-break stream (for exact resumption).
    pub fn rng_position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Continue the random tie-break stream from a saved position.
    pub fn set_rng_position(&mut self, pos: u128) {
        self.rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        self.rng.set_word_pos(pos);
    }

    pub fn dim(&self) -> usize {
        self.model.args.embsize
    }

    /// Raw (unnormalised) features and the token flags of each `(b, t)` position.
    pub fn raw_features(
        &mut self,
        values: &[f32],
        gene_idx: &[usize],
        device: &B::Device,
    ) -> (Vec<f32>, Vec<bool>) {
        let b = values.len() / gene_idx.len().max(1);
        self.raw_features_rows(values, gene_idx, 0..b, device)
    }

    /// [`Self::raw_features`] of the cells `rows` of the batch only: every cell is tokenised,
    /// so that the random tie-break stream advances as for the whole batch, and only `rows` go
    /// through the encoder (one data-parallel rank's shard). Positions are `(rows.len(), t)`.
    pub fn raw_features_rows(
        &mut self,
        values: &[f32],
        gene_idx: &[usize],
        rows: Range<usize>,
        device: &B::Device,
    ) -> (Vec<f32>, Vec<bool>) {
        let t = gene_idx.len();
        let d = self.dim();
        let ids: Vec<Option<usize>> = gene_idx.iter().map(|&g| self.vocab_ids[g]).collect();
        let args = &self.model.args;
        let opts = TokenizeOptions {
            n_bins: args.n_bins,
            max_seq_len: args.max_seq_len,
            pad_value: args.pad_value,
            tie_break: self.config.tie_break,
        };
        let pad_id =
            (self.model.vocab.id(&args.pad_token)).expect("checked by ScgptModel::from_dir");
        let cls_id = self.model.vocab.id("<cls>").expect("added on read");
        let tb = tokenize(values, &ids, pad_id, cls_id, &opts, &mut self.rng).rows(rows);
        let (l, b) = (tb.len, tb.columns.len());
        let (out, columns) = run_encoder(&self.model, tb, device);
        let mut feats = vec![0f32; b * t * d];
        let mut token = vec![false; b * t];
        for (i, cols) in columns.iter().enumerate() {
            for (k, &c) in cols.iter().enumerate() {
                let src = (i * l + 1 + k) * d;
                feats[(i * t + c) * d..(i * t + c + 1) * d].copy_from_slice(&out[src..src + d]);
                token[i * t + c] = true;
            }
        }
        (feats, token)
    }

    /// Add one batch's token moments to the running statistics (until they freeze).
    pub fn observe(&mut self, batch: &Moments) {
        if self.stats.frozen {
            return;
        }
        self.stats.merge(batch);
        self.stats.batches += 1;
        if self.stats.batches >= self.config.stats_batches {
            self.stats.frozen = true;
        }
    }

    /// Normalised features `(B, T, d)` for `values` `(B, T)` over the model genes `gene_idx`.
    /// Updates the running statistics until they freeze.
    pub fn extract(
        &mut self,
        values: &[f32],
        gene_idx: &[usize],
        device: &B::Device,
    ) -> Tensor<B, 3> {
        let (feats, token) = self.raw_features(values, gene_idx, device);
        if !self.stats.frozen {
            let moments = Moments::of_tokens(&feats, &token, self.dim());
            self.observe(&moments);
        }
        self.normalise(feats, &token, gene_idx.len(), device)
    }

    /// Raw features `(positions, d)` normalised with the current statistics into `(B, t, d)`:
    /// `(z − μ) / (σ + 1e-6)`, clamped when configured, times `target_std`; 0 off tokens.
    pub fn normalise(
        &self,
        mut feats: Vec<f32>,
        token: &[bool],
        t: usize,
        device: &B::Device,
    ) -> Tensor<B, 3> {
        let d = self.dim();
        let b = token.len() / t.max(1);
        let (mean, std) = (self.stats.mean.clone(), self.stats.std());
        for (p, &tk) in token.iter().enumerate() {
            for k in 0..d {
                let v = &mut feats[p * d + k];
                if !tk {
                    *v = 0.0;
                    continue;
                }
                let mut z = ((*v as f64 - mean[k]) / (std[k] + 1e-6)) as f32;
                if let Some(c) = self.config.clamp {
                    z = z.clamp(-c, c);
                }
                *v = z * self.config.target_std;
            }
        }
        Tensor::from_data(TensorData::new(feats, [b, t, d]), device)
    }
}
