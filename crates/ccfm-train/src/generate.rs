//! Generating cells for conditions, shared by validation and `predict`: one predicted cell per
//! control cell, in batches, over a fixed gene set (scDFM's inference recipe).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ccfm_data::{highly_variable_seurat, Condition, GeneMoments};
use ccfm_eval::{compute, CellSet, EvalPair, Profile};
use ccfm_layers::CoexpressionMask;
use ccfm_model::{CascadedDenoiser, CascadedFlowModel};

use crate::error::TrainError;
use crate::experiment::Experiment;

/// The prepared-gene columns that prediction covers: the top `n` seurat HVGs of the prepared
/// matrix (all cells), in var order, or every gene when `n` is 0 or not smaller.
pub fn prediction_genes(exp: &Experiment, n: usize) -> Vec<usize> {
    let g = exp.data.n_genes();
    if n == 0 || n >= g {
        return (0..g).collect();
    }
    let moments = GeneMoments::from_dense(&exp.data.x, exp.data.table.n_cells(), g, None);
    highly_variable_seurat(&moments, n)
        .into_iter()
        .enumerate()
        .filter_map(|(i, keep)| keep.then_some(i))
        .collect()
}

/// Generate one cell per row of `controls` (row-major `(n, genes.len())` log1p values over the
/// columns `genes`) for `condition`; returns `(n, genes.len())` values.
#[allow(clippy::too_many_arguments)]
pub fn generate_condition<B: Backend>(
    exp: &Experiment,
    model: &CascadedFlowModel<B>,
    mask: &CoexpressionMask<B>,
    denoiser: &CascadedDenoiser,
    condition: &Condition,
    genes: &[usize],
    controls: &[f32],
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f32>, TrainError> {
    let t = genes.len();
    let n = controls.len() / t;
    let ids: Vec<i64> = genes.iter().map(|&g| exp.gene_ids[g]).collect();
    let gene_ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [t]), device);
    let pert = exp.pert_ids(condition)?;
    let mut out = Vec::with_capacity(n * t);
    for start in (0..n).step_by(batch_size.max(1)) {
        let b = batch_size.min(n - start);
        let control = Tensor::<B, 2>::from_data(
            TensorData::new(controls[start * t..(start + b) * t].to_vec(), [b, t]),
            device,
        );
        let pert_ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(pert.repeat(b), [b, 2]), device);
        let g = denoiser.generate(model, mask, gene_ids.clone(), control, pert_ids)?;
        let v = g
            .expression
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| ccfm_model::ModelError::ReadBack {
                what: "generated cells",
                detail: format!("{e:?}"),
            })?;
        out.extend(v);
    }
    Ok(out)
}

/// Mean cell-eval metrics of a validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationMetrics {
    pub conditions: usize,
    pub pearson_delta: Option<f64>,
    pub mse: Option<f64>,
    pub mse_delta: Option<f64>,
}

/// Generate `cells` cells for each of `conditions` and score them against the real cells with
/// ccfm-eval's minimal profile (pearson_delta, mse, mse_delta averaged over conditions).
#[allow(clippy::too_many_arguments)]
pub fn validate<B: Backend>(
    exp: &Experiment,
    model: &CascadedFlowModel<B>,
    mask: &CoexpressionMask<B>,
    denoiser: &CascadedDenoiser,
    conditions: &[String],
    genes: &[usize],
    cells: usize,
    seed: u64,
    device: &B::Device,
) -> Result<ValidationMetrics, TrainError> {
    let cases = ccfm_data::test_cases(&exp.data, conditions, cells, seed)?;
    let names: Vec<String> = genes.iter().map(|&g| exp.data.genes[g].clone()).collect();
    let empty = || CellSet {
        x: Vec::new(),
        labels: Vec::new(),
    };
    let (mut real, mut pred) = (empty(), empty());
    if cases.is_empty() {
        return Err(TrainError::Request(
            "validation needs at least one condition".into(),
        ));
    }
    // One shared control set for both sides (the first case's control draw).
    let controls = &cases[0].control_cells;
    for side in [&mut real, &mut pred] {
        side.x.extend(exp.data.gather(controls, genes));
        side.labels
            .extend(std::iter::repeat_n("control".to_string(), controls.len()));
    }
    for case in &cases {
        let name = exp.data.table.conditions[case.condition].name();
        let control = exp.data.gather(&case.control_cells, genes);
        let cond = exp.data.table.conditions[case.condition].clone();
        let x = generate_condition(
            exp,
            model,
            mask,
            denoiser,
            &cond,
            genes,
            &control,
            exp.config.sample.batch_size,
            device,
        )?;
        pred.x.extend(x);
        pred.labels
            .extend(std::iter::repeat_n(name.clone(), case.control_cells.len()));
        real.x.extend(exp.data.gather(&case.real_cells, genes));
        real.labels
            .extend(std::iter::repeat_n(name, case.real_cells.len()));
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
