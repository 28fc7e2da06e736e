//! The baselines every honest report shows next to a model, built from the training data and
//! evaluated exactly like the model:
//!
//! - `control`: the real control cells, unchanged (identity);
//! - `mean`: control cells shifted by the mean training effect (mean of all perturbed training
//!   cells minus the training control mean);
//! - `additive`: control cells + Δ_A + Δ_B from the training singles, for doubles whose two
//!   singles were trained on (other perturbations are left out of its table);
//! - `ceiling`: disjoint halves of the real cells, one half predicting the other (the noise
//!   floor of the metrics; no Spearman–Brown correction).
//!
//! Shifted cells are clipped at 0, as cell-eval refuses negative values. Each predicted
//! perturbation gets as many cells as the real one, control cells drawn from a seeded shuffle.

use std::collections::{BTreeMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use ccfm_data::Condition;

use crate::pair::{mean_rows, CellSet, EvalError, EvalPair};

/// The names of the baselines an evaluation adds next to a model (`additive` only when the
/// perturbations are combinations of measured singles, `ceiling` only with enough real cells).
pub const BASELINE_NAMES: [&str; 4] = ["control", "mean", "additive", "ceiling"];

/// Canonical name of a label (`A+ctrl` and `ctrl+A` are `A`; `ctrl` is `control`).
pub fn canonical(label: &str) -> String {
    Condition::parse(label).name()
}

/// `seen0`/`seen1`/`seen2` for doubles (how many of its singles are in `train_labels`),
/// `single` for singles.
pub fn seen_groups(perts: &[String], train_labels: &[String]) -> BTreeMap<String, String> {
    let singles: HashSet<String> = train_labels
        .iter()
        .map(|l| Condition::parse(l))
        .filter(|c| c.tokens.len() == 1)
        .map(|c| c.tokens[0].clone())
        .collect();
    perts
        .iter()
        .map(|p| {
            let c = Condition::parse(p);
            let group = if c.tokens.len() == 2 {
                format!(
                    "seen{}",
                    c.tokens.iter().filter(|t| singles.contains(*t)).count()
                )
            } else {
                "single".to_string()
            };
            (p.clone(), group)
        })
        .collect()
}

/// A predicted side made of shifted control cells; `shifts` maps a perturbation to its effect.
fn shifted(
    real: &EvalPair,
    shifts: &BTreeMap<String, Vec<f64>>,
    rng: &mut ChaCha8Rng,
) -> (CellSet, CellSet) {
    let g = real.n_genes();
    let (rx, rg) = (&real.real.x, &real.real_groups);
    let mut pool = rg.control.clone();
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let (mut sub_x, mut sub_labels) = (Vec::new(), Vec::new());
    for (p, shift) in shifts {
        let n = rg.by_pert[p].len();
        pool.shuffle(rng);
        for k in 0..n {
            let c = pool[k % pool.len()];
            x.extend(
                rx[c * g..(c + 1) * g]
                    .iter()
                    .zip(shift)
                    .map(|(&v, &d)| ((v as f64 + d) as f32).max(0.0)),
            );
            labels.push(p.clone());
        }
        for &c in &rg.by_pert[p] {
            sub_x.extend_from_slice(&rx[c * g..(c + 1) * g]);
            sub_labels.push(p.clone());
        }
    }
    for &c in &rg.control {
        x.extend_from_slice(&rx[c * g..(c + 1) * g]);
        labels.push(real.control.clone());
        sub_x.extend_from_slice(&rx[c * g..(c + 1) * g]);
        sub_labels.push(real.control.clone());
    }
    (
        CellSet {
            x: sub_x,
            labels: sub_labels,
        },
        CellSet { x, labels },
    )
}

/// Build the baseline pairs `(name, pair)` for the real cells of `real` from training cells.
/// `train` must have the same genes as `real`.
pub fn baseline_pairs(
    real: &EvalPair,
    train: &CellSet,
    seed: u64,
) -> Result<Vec<(String, EvalPair)>, EvalError> {
    let g = real.n_genes();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let effects = TrainingEffects::new(real, train)?;
    // The same shift for every perturbation.
    let everywhere = |shift: &[f64]| -> BTreeMap<String, Vec<f64>> {
        real.perts
            .iter()
            .map(|p| (p.clone(), shift.to_vec()))
            .collect()
    };
    let mut out = Vec::new();
    let zero = everywhere(&vec![0.0; g]);
    out.push(("control".to_string(), shifted_pair(real, &zero, &mut rng)?));
    let mean = everywhere(&effects.mean);
    out.push(("mean".to_string(), shifted_pair(real, &mean, &mut rng)?));
    let additive = effects.additive_shifts(&real.perts);
    if !additive.is_empty() {
        out.push((
            "additive".to_string(),
            shifted_pair(real, &additive, &mut rng)?,
        ));
    }
    if let Some(ceiling) = ceiling_pair(real, &mut rng)? {
        out.push(("ceiling".to_string(), ceiling));
    }
    Ok(out)
}

/// The pair of the real cells of `shifts`' perturbations and the shifted control cells.
fn shifted_pair(
    real: &EvalPair,
    shifts: &BTreeMap<String, Vec<f64>>,
    rng: &mut ChaCha8Rng,
) -> Result<EvalPair, EvalError> {
    let (sub_real, pred) = shifted(real, shifts, rng);
    EvalPair::new(
        real.genes.clone(),
        &real.genes,
        &real.genes,
        sub_real,
        pred,
        &real.control,
    )
}

/// The effects measured on the training cells, against the training control mean.
struct TrainingEffects {
    /// The mean of all perturbed training cells minus the control mean (0 when there are none).
    mean: Vec<f64>,
    /// Per single-gene perturbation, the mean of its cells minus the control mean.
    singles: BTreeMap<String, Vec<f64>>,
}

impl TrainingEffects {
    /// The effects in `train`; an error when it has no control cells.
    fn new(real: &EvalPair, train: &CellSet) -> Result<Self, EvalError> {
        let g = real.n_genes();
        let canon = training_labels(real, train);
        let train_ctrl: Vec<usize> = (0..canon.len())
            .filter(|&i| canon[i] == "control")
            .collect();
        if train_ctrl.is_empty() {
            return Err(EvalError::NoControl {
                side: "training",
                control: format!("{} (or ctrl / control)", real.control),
            });
        }
        let mu_ctrl = mean_rows(&train.x, g, &train_ctrl);
        let delta_of = |cells: &[usize]| -> Vec<f64> {
            mean_rows(&train.x, g, cells)
                .iter()
                .zip(&mu_ctrl)
                .map(|(a, b)| a - b)
                .collect()
        };
        let perturbed: Vec<usize> = (0..canon.len())
            .filter(|&i| canon[i] != "control")
            .collect();
        let mut by_single: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in &perturbed {
            let c = Condition::parse(&canon[i]);
            if c.tokens.len() == 1 {
                by_single.entry(c.tokens[0].clone()).or_default().push(i);
            }
        }
        let singles = by_single
            .iter()
            .map(|(k, v)| (k.clone(), delta_of(v)))
            .collect();
        let mean = if perturbed.is_empty() {
            vec![0.0; g]
        } else {
            delta_of(&perturbed)
        };
        Ok(Self { mean, singles })
    }

    /// Δ_A + Δ_B for each double `A+B` of `perts` whose two singles were trained on.
    fn additive_shifts(&self, perts: &[String]) -> BTreeMap<String, Vec<f64>> {
        perts
            .iter()
            .filter_map(|p| {
                let c = Condition::parse(p);
                if c.tokens.len() != 2 {
                    return None;
                }
                let (a, b) = (
                    self.singles.get(&c.tokens[0])?,
                    self.singles.get(&c.tokens[1])?,
                );
                Some((p.clone(), a.iter().zip(b).map(|(x, y)| x + y).collect()))
            })
            .collect()
    }
}

/// The canonical name of each training label. The training file may label its controls with
/// the evaluation's control label or with any of the schema control labels (`ctrl`,
/// `control`, `control+control`): all become `control`.
fn training_labels(real: &EvalPair, train: &CellSet) -> Vec<String> {
    train
        .labels
        .iter()
        .map(|l| {
            if *l == real.control {
                "control".to_string()
            } else {
                canonical(l)
            }
        })
        .collect()
}

/// Disjoint halves of the real cells (perturbations with at least 2 cells, and the controls).
fn ceiling_pair(real: &EvalPair, rng: &mut ChaCha8Rng) -> Result<Option<EvalPair>, EvalError> {
    let g = real.n_genes();
    let rx = &real.real.x;
    let mut a = CellSet {
        x: Vec::new(),
        labels: Vec::new(),
    };
    let mut b = a.clone();
    let mut groups: Vec<(String, Vec<usize>)> = real
        .real_groups
        .by_pert
        .iter()
        .filter(|(_, c)| c.len() >= 2)
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect();
    if groups.is_empty() || real.real_groups.control.len() < 2 {
        return Ok(None);
    }
    groups.push((real.control.clone(), real.real_groups.control.clone()));
    for (label, mut cells) in groups {
        cells.shuffle(rng);
        let half = cells.len() / 2;
        for (k, &c) in cells.iter().take(2 * half).enumerate() {
            let side = if k < half { &mut a } else { &mut b };
            side.x.extend_from_slice(&rx[c * g..(c + 1) * g]);
            side.labels.push(label.clone());
        }
    }
    EvalPair::new(
        real.genes.clone(),
        &real.genes,
        &real.genes,
        a,
        b,
        &real.control,
    )
    .map(Some)
}
