//! Batches as scDFM draws them.
//!
//! Training: a condition chosen uniformly among the training conditions (not weighted by cell
//! count); `batch` target cells of it and `batch` control cells, both with replacement; one
//! random subset of `genes_per_step` genes per step (`randperm(G)[:T]`), shared by the batch.
//! The values are the log1p expression, which is also what the scGPT extractor reads.
//!
//! When the expression is streamed ([`crate::stream`]), a batch's target cells come from one
//! block of its condition and its control cells from one block of the controls: the first cell
//! is drawn uniformly from the whole pool, the others uniformly from that cell's block
//! (`block_cells` consecutive cells of the pool), so every draw is still uniform over the pool
//! while a step reads at most two blocks.
//!
//! Testing: per test condition, the control pool shuffled and its first `n` cells taken (the
//! pool is reshuffled and appended when `n` exceeds it), with the condition's real cells.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::PreparedData;
use crate::schema::PerturbationTable;
use crate::split::Split;
use crate::DataError;

/// One training batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledBatch {
    /// Index into `table.conditions`.
    pub condition: usize,
    /// The sampled genes (columns of the prepared matrix), `T` of them.
    pub genes: Vec<usize>,
    /// Kept-cell indices of the target and control cells.
    pub target_cells: Vec<usize>,
    pub control_cells: Vec<usize>,
    /// Row-major `(B, T)` log1p values.
    pub target: Vec<f32>,
    pub control: Vec<f32>,
}

/// The position of a sampler's random stream, enough to resume it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerState {
    pub seed: u64,
    pub word_pos: u128,
}

/// Draws training batches from the training conditions of a split.
#[derive(Debug, Clone)]
pub struct TrainSampler {
    conditions: Vec<usize>,
    cells: Vec<Vec<usize>>,
    controls: Vec<usize>,
    batch: usize,
    genes_per_step: usize,
    n_genes: usize,
    /// Draw each batch's cells from one block of this many pool cells (streamed data).
    block_cells: Option<usize>,
    seed: u64,
    rng: ChaCha8Rng,
}

fn condition_indices(table: &PerturbationTable, names: &[String]) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|n| {
            table
                .condition_index(n)
                .ok_or_else(|| format!("the split names `{n}`, which the data does not have"))
        })
        .collect()
}

impl TrainSampler {
    pub fn new(
        data: &PreparedData,
        split: &Split,
        batch: usize,
        genes_per_step: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        let bad = |problem: String, fix: &str| DataError::Invalid {
            path: data.report.path.clone(),
            problem,
            fix: fix.to_string(),
        };
        let conditions = condition_indices(&data.table, &split.train)
            .map_err(|p| bad(p, "rebuild the split for this data"))?;
        if conditions.is_empty() {
            return Err(bad(
                "the split has no training conditions".into(),
                "train on at least one perturbation",
            ));
        }
        if batch == 0 || genes_per_step == 0 {
            return Err(bad(
                "batch size and genes per step must be positive".into(),
                "set train.batch_size and data.genes_per_step >= 1",
            ));
        }
        let cells = data.table.cells_by_condition();
        let controls = cells[PerturbationTable::CONTROL_INDEX].clone();
        Ok(Self {
            conditions,
            cells,
            controls,
            batch,
            genes_per_step: genes_per_step.min(data.n_genes()),
            n_genes: data.n_genes(),
            block_cells: data.x.block_cells(),
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// Continue from a saved state.
    pub fn restore(&mut self, state: SamplerState) {
        self.seed = state.seed;
        self.rng = ChaCha8Rng::seed_from_u64(state.seed);
        self.rng.set_word_pos(state.word_pos);
    }

    /// The next batch's cells and genes, without reading values.
    pub fn next_indices(&mut self) -> (usize, Vec<usize>, Vec<usize>, Vec<usize>) {
        let condition = self.conditions[self.rng.random_range(0..self.conditions.len())];
        let target = draw_cells(
            &mut self.rng,
            &self.cells[condition],
            self.batch,
            self.block_cells,
        );
        let control = draw_cells(&mut self.rng, &self.controls, self.batch, self.block_cells);
        // randperm(G)[:T] by a partial Fisher-Yates shuffle.
        let mut perm: Vec<usize> = (0..self.n_genes).collect();
        for i in 0..self.genes_per_step {
            let j = self.rng.random_range(i..self.n_genes);
            perm.swap(i, j);
        }
        perm.truncate(self.genes_per_step);
        (condition, perm, target, control)
    }

    /// The next batch with its values.
    pub fn next_batch(&mut self, data: &PreparedData) -> Result<SampledBatch, DataError> {
        let (condition, genes, target_cells, control_cells) = self.next_indices();
        Ok(SampledBatch {
            target: data.gather(&target_cells, &genes)?,
            control: data.gather(&control_cells, &genes)?,
            condition,
            genes,
            target_cells,
            control_cells,
        })
    }
}

/// `n` cells of `pool` with replacement: each uniform over the pool, or (with `block`) the first
/// uniform over the pool and the rest uniform over its block of `block` consecutive pool cells.
fn draw_cells(rng: &mut ChaCha8Rng, pool: &[usize], n: usize, block: Option<usize>) -> Vec<usize> {
    let Some(block) = block else {
        return (0..n)
            .map(|_| pool[rng.random_range(0..pool.len())])
            .collect();
    };
    let mut out = Vec::with_capacity(n);
    let first = rng.random_range(0..pool.len());
    let lo = first - first % block;
    let hi = (lo + block).min(pool.len());
    out.push(pool[first]);
    out.extend((1..n).map(|_| pool[rng.random_range(lo..hi)]));
    out
}

/// One test condition: the real cells and the control cells to transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub condition: usize,
    pub real_cells: Vec<usize>,
    pub control_cells: Vec<usize>,
}

/// `n` items of `pool`: the pool shuffled and its first `n` taken, reshuffled and appended
/// while `n` exceeds it (scDFM's `randperm` of the control cells).
pub fn draw_from_pool<T: Clone>(pool: &[T], n: usize, rng: &mut ChaCha8Rng) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !pool.is_empty() {
        let mut perm = pool.to_vec();
        perm.shuffle(rng);
        let need = n - out.len();
        out.extend(perm.into_iter().take(need));
    }
    out
}

/// Test cases for `names` (condition names), `n_controls` control cells each.
pub fn test_cases(
    data: &PreparedData,
    names: &[String],
    n_controls: usize,
    seed: u64,
) -> Result<Vec<TestCase>, DataError> {
    let conds = condition_indices(&data.table, names).map_err(|problem| DataError::Invalid {
        path: data.report.path.clone(),
        problem,
        fix: "name conditions as `ccfm inspect` lists them".into(),
    })?;
    let cells = data.table.cells_by_condition();
    let pool = &cells[PerturbationTable::CONTROL_INDEX];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(conds
        .into_iter()
        .map(|condition| {
            let control_cells = draw_from_pool(pool, n_controls, &mut rng);
            TestCase {
                condition,
                real_cells: cells[condition].clone(),
                control_cells,
            }
        })
        .collect())
}
