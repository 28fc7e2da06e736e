//! Generating cells for conditions, shared by validation and `predict`: one predicted cell per
//! control cell, in batches, over a fixed gene set (scDFM's inference recipe).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ccfm_data::{highly_variable_seurat, Condition};
use ccfm_eval::{compute, CellSet, EvalPair, Profile};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{CascadedDenoiser, CascadedFlowModel, GenerationInput};

use crate::error::TrainError;
use crate::experiment::Experiment;

/// The prepared-gene columns that prediction covers: the top `n` seurat HVGs of the prepared
/// matrix (all cells), in var order, or every gene when `n` is 0 or not smaller.
pub fn prediction_genes(exp: &Experiment, n: usize) -> Vec<usize> {
    let g = exp.data.n_genes();
    if n == 0 || n >= g {
        return (0..g).collect();
    }
    highly_variable_seurat(&exp.data.gene_moments(), n)
        .into_iter()
        .enumerate()
        .filter_map(|(i, keep)| keep.then_some(i))
        .collect()
}

/// What generating cells needs, held together: the experiment (ids, perturbation tokens), the
/// model on an inference backend, its mask, the sampler, the gene columns predicted and the
/// batch size.
pub struct Generator<'a, B: Backend> {
    pub exp: &'a Experiment,
    pub model: &'a CascadedFlowModel<B>,
    pub mask: &'a CoexpressionMask<B>,
    pub denoiser: &'a CascadedDenoiser,
    /// Prepared-gene columns generated (see [`prediction_genes`]).
    pub genes: &'a [usize],
    /// Cells per generation batch.
    pub batch_size: usize,
    pub device: &'a B::Device,
    /// Seeds the noise: each batch of a condition draws from its own seed, made from this one,
    /// the condition's name and the batch's first cell ([`batch_seed`]).
    pub seed: u64,
}

/// The seed of one generation batch's noise: it does not depend on which other conditions
/// are generated with it, nor on what else the process draws meanwhile.
pub fn batch_seed(seed: u64, condition: &str, first_cell: usize) -> u64 {
    // FNV-1a over the name, then SplitMix64's finaliser over the three.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in condition.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h.rotate_left(17) ^ (first_cell as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<B: Backend> Generator<'_, B> {
    /// Generate one cell per row of `controls` (row-major `(n, genes.len())` log1p values over
    /// the columns `genes`) for `condition`; returns `(n, genes.len())` values.
    pub fn condition(
        &self,
        condition: &Condition,
        controls: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        let t = self.genes.len();
        let n = controls.len() / t;
        let ids: Vec<i64> = self.genes.iter().map(|&g| self.exp.gene_ids[g]).collect();
        let gene_ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [t]), self.device);
        let pert = self.exp.pert_ids(condition)?;
        let slots = pert.len();
        let mut out = Vec::with_capacity(n * t);
        for start in (0..n).step_by(self.batch_size.max(1)) {
            let b = self.batch_size.min(n - start);
            let control = Tensor::<B, 2>::from_data(
                TensorData::new(controls[start * t..(start + b) * t].to_vec(), [b, t]),
                self.device,
            );
            let pert_ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(pert.repeat(b), [b, slots]),
                self.device,
            );
            let seed = batch_seed(self.seed, &condition.name(), start);
            let mut draws = Some(ccfm_layers::rng::seeded::<B>(self.device, seed));
            let noise = self.denoiser.draw_generation_noise(self.model, &control);
            if !B::ad_enabled(self.device) {
                // On the inner backend (no autodiff: dropout is off) the integration draws
                // nothing, so the stream is released; with `inference_dropout` it stays held.
                draws = None;
            }
            let input = GenerationInput {
                gene_ids: gene_ids.clone(),
                control,
                pert_ids,
            };
            let g = self
                .denoiser
                .generate_from(self.model, self.mask, input, noise)?;
            drop(draws);
            out.extend(read_back(g.expression)?);
        }
        Ok(out)
    }

    /// Generate `cells` cells for each of `conditions` and score them against the real cells
    /// with ccfm-eval's minimal profile (pearson_delta, mse, mse_delta averaged over conditions).
    pub fn validation_metrics(
        &self,
        conditions: &[String],
        cells: usize,
        seed: u64,
    ) -> Result<ValidationMetrics, TrainError> {
        let exp = self.exp;
        let genes = self.genes;
        let cases = ccfm_data::test_cases(&exp.data, conditions, cells, seed)?;
        if cases.is_empty() {
            return Err(TrainError::Request(
                "validation needs at least one condition".into(),
            ));
        }
        let names: Vec<String> = genes.iter().map(|&g| exp.data.genes[g].clone()).collect();
        let empty = || CellSet {
            x: Vec::new(),
            labels: Vec::new(),
        };
        let (mut real, mut pred) = (empty(), empty());
        // One shared control set for both sides (the first case's control draw).
        let controls = &cases[0].control_cells;
        for side in [&mut real, &mut pred] {
            push(
                side,
                exp.data.gather(controls, genes)?,
                "control",
                controls.len(),
            );
        }
        for case in &cases {
            let cond = &exp.data.table.conditions[case.condition];
            let control = exp.data.gather(&case.control_cells, genes)?;
            let x = self.condition(cond, &control)?;
            push(&mut pred, x, &cond.name(), case.control_cells.len());
            let truth = exp.data.gather(&case.real_cells, genes)?;
            push(&mut real, truth, &cond.name(), case.real_cells.len());
        }
        let pair = EvalPair::new(names.clone(), &names, &names, real, pred, "control")?;
        let table = compute(&pair, Profile::Minimal);
        Ok(ValidationMetrics {
            conditions: cases.len(),
            pearson_delta: table.mean("pearson_delta"),
            mse: table.mean("mse"),
            mse_delta: table.mean("mse_delta"),
        })
    }
}

/// Append `n` cells labelled `label`.
fn push(side: &mut CellSet, x: Vec<f32>, label: &str, n: usize) {
    side.x.extend(x);
    side.labels
        .extend(std::iter::repeat_n(label.to_string(), n));
}

/// A generated `(B, T)` tensor as host values.
fn read_back<B: Backend>(x: Tensor<B, 2>) -> Result<Vec<f32>, TrainError> {
    Ok(x.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ccfm_model::ModelError::ReadBack {
            what: "generated cells",
            detail: format!("{e:?}"),
        })?)
}

/// Mean cell-eval metrics of a validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationMetrics {
    pub conditions: usize,
    pub pearson_delta: Option<f64>,
    pub mse: Option<f64>,
    pub mse_delta: Option<f64>,
}
