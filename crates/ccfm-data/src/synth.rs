//! Synthetic perturbation data with a known ground truth (docs/data.md).
//!
//! **Norman-like** (CRISPRa, GEARS schema): genes with baseline log-means `μ_g ~ N(−1, 1.5)` and
//! dispersions `θ_g ~ Gamma(2, 1) + 0.1`; library sizes `L_c ~ LogNormal(ln 5000, 0.35)`; three
//! control states (weights 0.5/0.3/0.2) each adding a sparse program; latent gene programs
//! `P_m` (sparse, effects `N(0, 0.6)`); a perturbed gene `j` acts by `Δ_j = α_j P_{m_j} + τ e_j`
//! (`α_j ~ U(0.5, 2)`, `τ = 3`). A double's interaction type is a fixed function of its genes'
//! program pair (additive, synergy, buffering, dominance, neomorphic), and at least 40% of
//! the doubles are non-additive. 15% of perturbed cells do not respond (guide escape) and cells
//! in the third state respond 1.5x. Counts are negative binomial (Gamma–Poisson) with mean
//! `L_c / 5000 · exp(μ_g + s_cg)`; `layers['counts']` holds them and X is
//! `log1p(normalize_total(counts, 1e4))`.
//!
//! **ComboSciPlex-like** (drugs, pertpy schema): drugs in four classes, each drug a scaled class
//! program plus a sparse program of its own; Hill dose responses `h = c^n / (EC50^n + c^n)`
//! (`n ~ U(0.8, 2)`, `log10 EC50 ~ U(1.5, 3.5)`, doses 10–10,000 nM); pairs combine as
//! `h_a Δ_a + h_b Δ_b + γ h_a h_b Δ_int(class_a, class_b)` with `γ ≠ 0` for chosen class pairs;
//! cytotoxic classes push cells to the arrest state and thin them at high dose. Singles are
//! given at all four doses, pairs at one dose pair each; doses are in `Dose1`/`Dose2`,
//! `dose_val` and `cov_drug_dose_name`.
//!
//! `uns` records the truth: `true_conditions`, `true_delta` and `true_mean` (conditions x
//! genes, the noise-free log-rate shift and log-rate `μ_g + Δ_g` of a responding cell at
//! `L = 5000` outside the state programs; for drugs at the condition's first dose pair),
//! `gi_doubles`/`gi_type`, and `gene_embeddings` (Norman) or `fingerprints` (drugs).
//! Everything is drawn from one ChaCha8 stream seeded by `seed`.
//!
//! [`write_large`] writes the same design at any size ([`Size::Cells`]) cell block by cell
//! block, so making a file larger than memory does not need the memory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};

use crate::anndata::{Column, DataFrame};
use crate::writer::{write_h5ad, AnnDataOut, MatrixOut, StreamingH5ad, UnsValue};
use crate::DataError;

/// Which dataset to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Norman,
    ComboSciPlex,
}

/// How big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// For unit tests: 50 genes, a handful of perturbations.
    Tiny,
    /// For the demo and CI: about 500 genes and 10k cells.
    Default,
    /// The default design (conditions, programs, interaction types) with about `cells` cells
    /// and `genes` genes, for testing at scale (`ccfm synth --cells N`).
    Cells { cells: usize, genes: usize },
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "norman" => Ok(Preset::Norman),
            "combosciplex" => Ok(Preset::ComboSciPlex),
            _ => Err(format!(
                "unknown preset `{s}`; choose norman or combosciplex"
            )),
        }
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tiny" => Ok(Size::Tiny),
            "default" => Ok(Size::Default),
            _ => Err(format!("unknown size `{s}`; choose tiny or default")),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Norman => "norman",
            Preset::ComboSciPlex => "combosciplex",
        })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Tiny => f.write_str("tiny"),
            Size::Default => f.write_str("default"),
            Size::Cells { cells, genes } => write!(f, "{cells} cells x {genes} genes"),
        }
    }
}

/// Generator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthConfig {
    pub preset: Preset,
    pub size: Size,
    pub seed: u64,
}

/// Interaction types of doubles.
pub const GI_TYPES: [&str; 5] = [
    "additive",
    "synergy",
    "buffering",
    "dominance",
    "neomorphic",
];

/// A generated dataset, ready to write.
#[derive(Debug, Clone)]
pub struct SynthData {
    pub obs: DataFrame,
    pub var: DataFrame,
    /// Counts as CSR.
    pub counts: (Vec<f32>, Vec<i32>, Vec<i64>),
    /// `log1p(normalize_total(counts, 1e4))` as CSR (same pattern as `counts`).
    pub x: Vec<f32>,
    /// Condition label (as written in obs) -> interaction type, for doubles.
    pub gi_type: BTreeMap<String, String>,
    pub uns: Vec<(String, UnsValue)>,
}

impl SynthData {
    pub fn n_obs(&self) -> usize {
        self.obs.len()
    }

    pub fn n_vars(&self) -> usize {
        self.var.len()
    }

    /// Write as `.h5ad` (atomically).
    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        let (data, indices, indptr) = &self.counts;
        write_h5ad(
            path,
            &AnnDataOut {
                x: MatrixOut::Csr {
                    data: &self.x,
                    indices,
                    indptr,
                },
                layers: &[(
                    "counts",
                    MatrixOut::Csr {
                        data,
                        indices,
                        indptr,
                    },
                )],
                obs: &self.obs,
                var: &self.var,
                uns: &self.uns,
            },
        )
    }
}

/// Generate a dataset.
pub fn generate(cfg: &SynthConfig) -> SynthData {
    let mut sink = InMemory::new();
    let (obs, var, gi_type, uns) = design_into(cfg, &mut sink);
    let counts = sink.0;
    SynthData {
        x: log_normalise(&counts),
        obs,
        var,
        counts,
        gi_type,
        uns,
    }
}

/// Draw the preset's design (module docs), send its cells to `sink`, and return everything else.
fn design_into(cfg: &SynthConfig, sink: &mut dyn CellSink) -> Frames {
    match cfg.preset {
        Preset::Norman => norman_into(cfg, sink),
        Preset::ComboSciPlex => combosciplex_into(cfg, sink),
    }
}

const L0: f64 = 5000.0;

/// Counts as CSR: values, column indices, row pointers.
type Csr = (Vec<f32>, Vec<i32>, Vec<i64>);

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).expect("finite sd").sample(rng)
}

/// The parts shared by both presets: genes, control states, library sizes, NB sampling.
struct Base {
    genes: Vec<String>,
    mu: Vec<f64>,
    theta: Vec<f64>,
    /// (state, gene) additive log effects, row-major `(3, G)`.
    state_program: Vec<f64>,
}

impl Base {
    fn new(rng: &mut ChaCha8Rng, g: usize, prefix: &str) -> Self {
        let genes = (0..g).map(|i| format!("{prefix}{:04}", i + 1)).collect();
        let mu = (0..g).map(|_| normal(rng, -1.0, 1.5)).collect();
        let gamma = Gamma::new(2.0, 1.0).expect("valid");
        let theta = (0..g).map(|_| gamma.sample(rng) + 0.1).collect();
        let mut state_program = vec![0.0; 3 * g];
        for k in 1..3 {
            // State 0 is the reference; states 1 and 2 each move ~5% of genes.
            for gi in 0..g {
                if rng.random::<f64>() < 0.05 {
                    let mag = rng.random_range(0.5..1.5);
                    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                    state_program[k * g + gi] = sign * mag;
                }
            }
        }
        Self {
            genes,
            mu,
            theta,
            state_program,
        }
    }

    fn n_genes(&self) -> usize {
        self.genes.len()
    }

    fn pick_state(rng: &mut ChaCha8Rng, weights: [f64; 3]) -> usize {
        let u: f64 = rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut acc = 0.0;
        for (k, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return k;
            }
        }
        2
    }

    /// Sample one cell's counts given its state and its log-rate shift.
    fn sample_cell(
        &self,
        rng: &mut ChaCha8Rng,
        state: usize,
        shift: &[f64],
        counts: &mut (Vec<f32>, Vec<i32>, Vec<i64>),
    ) {
        let lib = LogNormal::new(L0.ln(), 0.35).expect("valid").sample(rng);
        let g = self.n_genes();
        let program = &self.state_program[state * g..(state + 1) * g];
        for (gi, ((&mu, &w), &d)) in self.mu.iter().zip(program).zip(shift).enumerate() {
            let mean = lib / L0 * (mu + w + d).exp();
            // NB(mean, theta) as Poisson(Gamma(theta, mean / theta)).
            let lambda = Gamma::new(self.theta[gi], mean / self.theta[gi])
                .expect("positive")
                .sample(rng);
            let x = if lambda > 0.0 {
                Poisson::new(lambda).map(|p| p.sample(rng)).unwrap_or(0.0)
            } else {
                0.0
            };
            if x > 0.0 {
                counts.0.push(x as f32);
                counts.1.push(gi as i32);
            }
        }
        counts.2.push(counts.0.len() as i64);
    }
}

/// `log1p(normalize_total(counts, 1e4))` on CSR values.
fn log_normalise(counts: &(Vec<f32>, Vec<i32>, Vec<i64>)) -> Vec<f32> {
    let (data, _, indptr) = counts;
    let mut x = vec![0f32; data.len()];
    for r in 0..indptr.len() - 1 {
        let (a, b) = (indptr[r] as usize, indptr[r + 1] as usize);
        let total: f64 = data[a..b].iter().map(|&v| v as f64).sum();
        if total > 0.0 {
            for p in a..b {
                x[p] = ((data[p] as f64) * 1e4 / total).ln_1p() as f32;
            }
        }
    }
    x
}

fn sparse_program(rng: &mut ChaCha8Rng, g: usize, lo: f64, hi: f64, sd: f64) -> Vec<f64> {
    let frac = rng.random_range(lo..hi);
    let k = ((frac * g as f64).round() as usize).max(3).min(g);
    let mut idx: Vec<usize> = (0..g).collect();
    idx.shuffle(rng);
    let mut p = vec![0.0; g];
    for &i in &idx[..k] {
        p[i] = normal(rng, 0.0, sd);
    }
    p
}

fn categorical(values: &[String]) -> Column {
    let mut cats: Vec<String> = values.to_vec();
    cats.sort();
    cats.dedup();
    let pos: BTreeMap<&String, i64> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| (c, i as i64))
        .collect();
    let codes = values.iter().map(|v| pos[v]).collect();
    Column::Categorical {
        codes,
        categories: cats,
    }
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn scale(a: &[f64], s: f64) -> Vec<f64> {
    a.iter().map(|x| x * s).collect()
}

/// Sizes of the Norman preset.
/// Where sampled cells go.
trait CellSink {
    /// The counts the next cell is appended to.
    fn counts(&mut self) -> &mut Csr;
    /// Called after each cell.
    fn cell_done(&mut self);
}

/// Every cell kept in memory.
struct InMemory(Csr);

impl InMemory {
    fn new() -> Self {
        Self((Vec::new(), Vec::new(), vec![0]))
    }
}

impl CellSink for InMemory {
    fn counts(&mut self) -> &mut Csr {
        &mut self.0
    }
    fn cell_done(&mut self) {}
}

/// Cells per block written by [`ToFile`].
const FILE_BLOCK: usize = 16_384;

/// Cells written to a file in blocks: X (log-normalised) as matrix 0, the counts as matrix 1.
/// The first write error is kept and later cells are dropped.
struct ToFile {
    out: StreamingH5ad,
    buffer: Csr,
    error: Option<DataError>,
}

impl ToFile {
    fn flush(&mut self) {
        if self.buffer.2.len() > 1 && self.error.is_none() {
            let x = log_normalise(&self.buffer);
            let (data, indices, indptr) = &self.buffer;
            let r = self
                .out
                .append(0, &x, indices, indptr)
                .and_then(|()| self.out.append(1, data, indices, indptr));
            self.error = r.err();
        }
        self.buffer = (Vec::new(), Vec::new(), vec![0]);
    }
}

impl CellSink for ToFile {
    fn counts(&mut self) -> &mut Csr {
        &mut self.buffer
    }
    fn cell_done(&mut self) {
        if self.buffer.2.len() > FILE_BLOCK {
            self.flush();
        }
    }
}

struct Sizes {
    genes: usize,
    perturbed: usize,
    singles: usize,
    doubles: usize,
    cells: usize,
    controls: usize,
    programs: usize,
}

impl Sizes {
    /// The Norman sizes for `size`.
    fn norman(size: Size) -> Self {
        match size {
            Size::Tiny => Sizes {
                genes: 50,
                perturbed: 6,
                singles: 5,
                doubles: 6,
                cells: 40,
                controls: 160,
                programs: 3,
            },
            Size::Default => Sizes {
                genes: 500,
                perturbed: 24,
                singles: 20,
                doubles: 40,
                cells: 200,
                controls: 800,
                programs: 8,
            },
            Size::Cells { cells, genes } => {
                let d = Self::norman(Size::Default);
                let conditions = d.singles + d.doubles;
                // The default's proportions: 200 cells per condition to 800 controls.
                let per = (cells * d.cells / (conditions * d.cells + d.controls)).max(1);
                Sizes {
                    genes,
                    cells: per,
                    controls: cells.saturating_sub(conditions * per).max(1),
                    ..d
                }
            }
        }
    }
}

/// Width of the Norman gene embeddings.
const EMB_DIM: usize = 16;

/// The perturbed genes of the Norman preset and their single effects.
struct Perturbations {
    /// Gene name of each perturbed gene.
    names: Vec<String>,
    /// Program of each perturbed gene.
    program_of: Vec<usize>,
    /// Log-rate shift of each perturbed gene's single perturbation.
    delta: Vec<Vec<f64>>,
    /// Gene embeddings, row-major `(perturbed, EMB_DIM)`.
    embeddings: Vec<f64>,
}

impl Perturbations {
    /// Draw the programs, the perturbed genes, their strengths and embeddings (in this order).
    fn draw(rng: &mut ChaCha8Rng, sz: &Sizes, genes: &[String]) -> Self {
        let g = sz.genes;
        let programs: Vec<Vec<f64>> = (0..sz.programs)
            .map(|_| sparse_program(rng, g, 0.05, 0.10, 0.6))
            .collect();
        // Perturbed genes: distinct measured genes; the first `singles` also have single
        // conditions.
        let mut order: Vec<usize> = (0..g).collect();
        order.shuffle(rng);
        let targets: Vec<usize> = order[..sz.perturbed].to_vec();
        let program_of: Vec<usize> = (0..sz.perturbed).map(|j| j % sz.programs).collect();
        let alpha: Vec<f64> = (0..sz.perturbed)
            .map(|_| rng.random_range(0.5..2.0))
            .collect();
        let delta: Vec<Vec<f64>> = (0..sz.perturbed)
            .map(|j| {
                let mut d = scale(&programs[program_of[j]], alpha[j]);
                d[targets[j]] += 3.0;
                d
            })
            .collect();
        let mut embeddings = Vec::with_capacity(sz.perturbed * EMB_DIM);
        for &m in &program_of {
            for k in 0..EMB_DIM {
                let one = if k == m { 1.0 } else { 0.0 };
                embeddings.push(one + normal(rng, 0.0, 0.3));
            }
        }
        Self {
            names: targets.iter().map(|&t| genes[t].clone()).collect(),
            program_of,
            delta,
            embeddings,
        }
    }

    /// The (smaller, larger) program pair of perturbed genes `i` and `j`.
    fn program_pair(&self, i: usize, j: usize) -> (usize, usize) {
        let (a, b) = (self.program_of[i], self.program_of[j]);
        (a.min(b), a.max(b))
    }
}

/// A program pair's interaction: index into `GI_TYPES`, strength, and a new program.
type Interaction = (usize, f64, Vec<f64>);

/// Draw the interaction type of each program pair (symmetric), with its strength, and a new
/// program for the neomorphic pairs.
fn draw_gi_table(
    rng: &mut ChaCha8Rng,
    programs: usize,
    g: usize,
) -> BTreeMap<(usize, usize), Interaction> {
    let mut gi_table = BTreeMap::new();
    for a in 0..programs {
        for b in a..programs {
            let u: f64 = rng.random();
            let kind = if u < 0.45 {
                0
            } else {
                1 + ((u - 0.45) / 0.55 * 4.0).floor().min(3.0) as usize
            };
            let strength = match kind {
                1 => rng.random_range(0.5..1.5),
                2 => rng.random_range(0.4..0.8),
                4 => rng.random_range(1.0..2.0),
                _ => 0.0,
            };
            let new_program = sparse_program(rng, g, 0.05, 0.10, 0.6);
            gi_table.insert((a, b), (kind, strength, new_program));
        }
    }
    gi_table
}

/// Choose the doubles: half from additive program pairs, half from non-additive ones (when
/// possible), sorted.
fn choose_doubles(
    rng: &mut ChaCha8Rng,
    sz: &Sizes,
    pert: &Perturbations,
    gi_table: &BTreeMap<(usize, usize), Interaction>,
) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for i in 0..sz.perturbed {
        for j in i + 1..sz.perturbed {
            pairs.push((i, j));
        }
    }
    pairs.shuffle(rng);
    let kind_of = |i: usize, j: usize| gi_table[&pert.program_pair(i, j)].0;
    let (additive, other): (Vec<_>, Vec<_>) = pairs.iter().partition(|&&(i, j)| kind_of(i, j) == 0);
    let n_other = (sz.doubles / 2)
        .min(other.len())
        .max(sz.doubles.saturating_sub(additive.len()));
    let mut doubles: Vec<(usize, usize)> = other.into_iter().take(n_other).collect();
    doubles.extend(additive.into_iter().take(sz.doubles - doubles.len()));
    doubles.sort();
    doubles
}

/// A condition: label, log-rate shift (`None` for the control) and interaction type (doubles).
type Cond = (String, Option<Vec<f64>>, Option<&'static str>);

/// The Norman conditions: the control, the singles, then the doubles.
fn norman_conditions(
    sz: &Sizes,
    pert: &Perturbations,
    gi_table: &BTreeMap<(usize, usize), Interaction>,
    doubles: &[(usize, usize)],
) -> Vec<Cond> {
    let name = |j: usize| &pert.names[j];
    let mut conds: Vec<Cond> = vec![("ctrl".to_string(), None, None)];
    for (j, d) in pert.delta.iter().enumerate().take(sz.singles) {
        conds.push((format!("{}+ctrl", name(j)), Some(d.clone()), None));
    }
    for &(i, j) in doubles {
        let (kind, s, new_program) = &gi_table[&pert.program_pair(i, j)];
        let sum = add(&pert.delta[i], &pert.delta[j]);
        let d = match kind {
            0 => sum,
            1 => scale(&sum, 1.0 + s),
            2 => scale(&sum, 1.0 - s),
            3 => pert.delta[i].clone(),
            _ => add(&sum, &scale(new_program, *s)),
        };
        conds.push((
            format!("{}+{}", name(i), name(j)),
            Some(d),
            Some(GI_TYPES[*kind]),
        ));
    }
    conds
}

/// The per-cell obs values of the sampled Norman cells.
struct NormanCells {
    labels: Vec<String>,
    states: Vec<String>,
    responder: Vec<bool>,
}

/// Sample the cells of every condition in order (guide escape, state 2 responding 1.5x).
fn sample_norman_cells(
    rng: &mut ChaCha8Rng,
    base: &Base,
    sz: &Sizes,
    conds: &[Cond],
    sink: &mut dyn CellSink,
) -> NormanCells {
    let zero = vec![0.0; sz.genes];
    let (mut labels, mut states, mut responder) = (Vec::new(), Vec::new(), Vec::new());
    for (label, d, _) in conds {
        let n = if d.is_none() { sz.controls } else { sz.cells };
        for _ in 0..n {
            let state = Base::pick_state(rng, [0.5, 0.3, 0.2]);
            let responds = d.is_some() && rng.random::<f64>() >= 0.15;
            let shift = match (d, responds) {
                (Some(d), true) if state == 2 => scale(d, 1.5),
                (Some(d), true) => d.clone(),
                _ => zero.clone(),
            };
            base.sample_cell(rng, state, &shift, sink.counts());
            sink.cell_done();
            labels.push(label.clone());
            states.push(format!("state{state}"));
            responder.push(responds);
        }
    }
    NormanCells {
        labels,
        states,
        responder,
    }
}

/// The Norman obs table (GEARS schema).
fn norman_obs(labels: &[String], states: &[String], responder: Vec<bool>) -> DataFrame {
    let n = labels.len();
    let dose: Vec<String> = labels
        .iter()
        .map(|l| if l.contains("ctrl") { "1" } else { "1+1" }.to_string())
        .collect();
    DataFrame {
        index: (0..n).map(|i| format!("cell{i:06}")).collect(),
        columns: vec![
            ("condition".into(), categorical(labels)),
            (
                "cell_type".into(),
                categorical(&vec!["K562".to_string(); n]),
            ),
            ("dose_val".into(), categorical(&dose)),
            (
                "control".into(),
                Column::Numeric(labels.iter().map(|l| f64::from(l == "ctrl")).collect()),
            ),
            (
                "condition_name".into(),
                categorical(
                    &labels
                        .iter()
                        .zip(&dose)
                        .map(|(l, d)| format!("K562_{l}_{d}"))
                        .collect::<Vec<_>>(),
                ),
            ),
            ("state".into(), categorical(states)),
            ("responder".into(), Column::Bool(responder)),
        ],
    }
}

/// The Norman `uns`: the truth, then the gene embeddings and their genes.
fn norman_uns(
    cfg: &SynthConfig,
    base: &Base,
    pert: Perturbations,
    conds: &[Cond],
    gi_type: &BTreeMap<String, String>,
) -> Vec<(String, UnsValue)> {
    let truth: Vec<(String, Option<Vec<f64>>)> = conds
        .iter()
        .map(|(l, d, _)| (l.clone(), d.clone()))
        .collect();
    let mut uns = truth_uns(cfg, base, &truth, gi_type);
    uns.push((
        "gene_embeddings".into(),
        UnsValue::Array {
            shape: vec![pert.names.len(), EMB_DIM],
            values: pert.embeddings,
        },
    ));
    uns.push(("gene_embedding_genes".into(), UnsValue::Strings(pert.names)));
    uns
}

/// The dataframes, interaction types and `uns` of a generated dataset.
type Frames = (
    DataFrame,
    DataFrame,
    BTreeMap<String, String>,
    Vec<(String, UnsValue)>,
);

/// Draw the Norman-like design, send its cells to `sink`, and return everything else.
fn norman_into(cfg: &SynthConfig, sink: &mut dyn CellSink) -> Frames {
    let sz = Sizes::norman(cfg.size);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let base = Base::new(&mut rng, sz.genes, "SG");
    let pert = Perturbations::draw(&mut rng, &sz, &base.genes);
    let gi_table = draw_gi_table(&mut rng, sz.programs, sz.genes);
    let doubles = choose_doubles(&mut rng, &sz, &pert, &gi_table);
    let conds = norman_conditions(&sz, &pert, &gi_table, &doubles);
    let cells = sample_norman_cells(&mut rng, &base, &sz, &conds, sink);
    let obs = norman_obs(&cells.labels, &cells.states, cells.responder);
    let var = DataFrame {
        index: base.genes.clone(),
        columns: vec![("gene_name".into(), Column::Strings(base.genes.clone()))],
    };
    let gi_type: BTreeMap<String, String> = conds
        .iter()
        .filter_map(|(l, _, t)| t.map(|t| (l.clone(), t.to_string())))
        .collect();
    let uns = norman_uns(cfg, &base, pert, &conds, &gi_type);
    (obs, var, gi_type, uns)
}

/// What [`write_large`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenSynth {
    pub n_obs: usize,
    pub n_vars: usize,
    /// Condition label -> interaction type, for doubles.
    pub gi_type: BTreeMap<String, String>,
}

/// Generate `cfg` straight into `path` (atomically), cell block by cell block: the same file
/// as [`generate`] + [`SynthData::write`] holds, with the matrices stored in chunks, in memory
/// bounded by a block of cells plus the per-cell obs labels.
pub fn write_large(cfg: &SynthConfig, path: &Path) -> Result<WrittenSynth, DataError> {
    let genes = match cfg.size {
        Size::Tiny => 50,
        Size::Default => 500,
        Size::Cells { genes, .. } => genes,
    };
    let out = StreamingH5ad::create(path, genes, &["X", "layers/counts"])?;
    let mut sink = ToFile {
        out,
        buffer: (Vec::new(), Vec::new(), vec![0]),
        error: None,
    };
    let (obs, var, gi_type, uns) = design_into(cfg, &mut sink);
    sink.flush();
    if let Some(e) = sink.error {
        return Err(e);
    }
    let written = WrittenSynth {
        n_obs: obs.len(),
        n_vars: var.len(),
        gi_type,
    };
    sink.out.finish(&obs, &var, &uns)?;
    Ok(written)
}

fn truth_uns(
    cfg: &SynthConfig,
    base: &Base,
    conds: &[(String, Option<Vec<f64>>)],
    gi_type: &BTreeMap<String, String>,
) -> Vec<(String, UnsValue)> {
    let g = base.n_genes();
    let mut delta = Vec::with_capacity(conds.len() * g);
    let mut mean = Vec::with_capacity(conds.len() * g);
    for (_, d) in conds {
        for gi in 0..g {
            let dv = d.as_ref().map_or(0.0, |d| d[gi]);
            delta.push(dv);
            mean.push(base.mu[gi] + dv);
        }
    }
    vec![
        (
            "synth_preset".into(),
            UnsValue::Text(cfg.preset.to_string()),
        ),
        ("synth_size".into(), UnsValue::Text(cfg.size.to_string())),
        ("synth_seed".into(), UnsValue::Number(cfg.seed as f64)),
        (
            "true_conditions".into(),
            UnsValue::Strings(conds.iter().map(|(l, _)| l.clone()).collect()),
        ),
        (
            "true_delta".into(),
            UnsValue::Array {
                shape: vec![conds.len(), g],
                values: delta,
            },
        ),
        (
            "true_mean".into(),
            UnsValue::Array {
                shape: vec![conds.len(), g],
                values: mean,
            },
        ),
        (
            "gi_doubles".into(),
            UnsValue::Strings(gi_type.keys().cloned().collect()),
        ),
        (
            "gi_type".into(),
            UnsValue::Strings(gi_type.values().cloned().collect()),
        ),
    ]
}

const DRUG_CLASSES: [&str; 4] = ["HDACi", "kinase_inhibitor", "HSP90i", "SIRT_modulator"];
const DOSES: [f64; 4] = [10.0, 100.0, 1000.0, 10000.0];

/// Width of the drug fingerprints.
const FP_DIM: usize = 16;

/// Sizes of the ComboSciPlex preset.
struct DrugSizes {
    genes: usize,
    drugs: usize,
    pairs: usize,
    /// Cells per single drug and dose.
    per_dose: usize,
    /// Cells per drug pair.
    per_pair: usize,
    controls: usize,
}

impl DrugSizes {
    /// The ComboSciPlex sizes for `size`.
    fn new(size: Size) -> Self {
        let (genes, drugs, pairs, per_dose, per_pair, controls) = match size {
            Size::Tiny => (50, 4, 4, 12, 40, 120),
            Size::Default => (500, 8, 20, 60, 200, 800),
            Size::Cells { cells, genes } => {
                // The default's 8 drugs x 4 doses x 60 + 20 pairs x 200 + 800 controls (before
                // cytotoxic thinning), scaled.
                let f = cells as f64 / (8.0 * 4.0 * 60.0 + 20.0 * 200.0 + 800.0);
                let n = |x: f64| ((x * f).round() as usize).max(1);
                (genes, 8, 20, n(60.0), n(200.0), n(800.0))
            }
        };
        Self {
            genes,
            drugs,
            pairs,
            per_dose,
            per_pair,
            controls,
        }
    }
}

/// The drugs of the ComboSciPlex preset and their ground truth.
struct Drugs {
    names: Vec<String>,
    /// Index into `DRUG_CLASSES` of each drug.
    class_of: Vec<usize>,
    /// Full-response log-rate shift of each drug.
    effect: Vec<Vec<f64>>,
    hill_n: Vec<f64>,
    ec50: Vec<f64>,
    /// Fingerprints, row-major `(drugs, FP_DIM)`.
    fingerprints: Vec<f64>,
    /// Class pair -> (γ, interaction program).
    interaction: BTreeMap<(usize, usize), (f64, Vec<f64>)>,
}

impl Drugs {
    /// Draw class programs, effects, Hill parameters, fingerprints and interactions (in order).
    fn draw(rng: &mut ChaCha8Rng, g: usize, n_drugs: usize) -> Self {
        let class_program: Vec<Vec<f64>> = (0..DRUG_CLASSES.len())
            .map(|_| sparse_program(rng, g, 0.08, 0.15, 0.8))
            .collect();
        let names: Vec<String> = (0..n_drugs).map(|d| format!("DRUG{:02}", d + 1)).collect();
        let class_of: Vec<usize> = (0..n_drugs).map(|d| d % DRUG_CLASSES.len()).collect();
        let effect: Vec<Vec<f64>> = (0..n_drugs)
            .map(|d| {
                let own = sparse_program(rng, g, 0.02, 0.05, 0.5);
                add(
                    &scale(&class_program[class_of[d]], rng.random_range(0.7..1.5)),
                    &own,
                )
            })
            .collect();
        let hill_n: Vec<f64> = (0..n_drugs).map(|_| rng.random_range(0.8..2.0)).collect();
        let ec50: Vec<f64> = (0..n_drugs)
            .map(|_| 10f64.powf(rng.random_range(1.5..3.5)))
            .collect();
        let mut fingerprints = Vec::new();
        for &c in &class_of {
            for k in 0..FP_DIM {
                fingerprints.push(f64::from(k == c) + normal(rng, 0.0, 0.3));
            }
        }
        // Class-pair interactions: HDACi x kinase inhibitor synergise, HSP90i x SIRT antagonise.
        let interaction = [((0, 1), 1.5), ((2, 3), -0.8)]
            .into_iter()
            .map(|(k, gamma)| (k, (gamma, sparse_program(rng, g, 0.05, 0.10, 0.8))))
            .collect();
        Self {
            names,
            class_of,
            effect,
            hill_n,
            ec50,
            fingerprints,
            interaction,
        }
    }

    /// Hill response of drug `d` at concentration `c` (nM).
    fn hill(&self, d: usize, c: f64) -> f64 {
        let n = self.hill_n[d];
        c.powf(n) / (self.ec50[d].powf(n) + c.powf(n))
    }

    /// Whether drug `d` belongs to a cytotoxic class.
    fn cytotoxic(&self, d: usize) -> bool {
        self.class_of[d] == 0 || self.class_of[d] == 2
    }

    /// The (smaller, larger) class pair of drugs `a` and `b`.
    fn class_pair(&self, a: usize, b: usize) -> (usize, usize) {
        let (ca, cb) = (self.class_of[a], self.class_of[b]);
        (ca.min(cb), ca.max(cb))
    }

    /// Noise-free log-rate shift of a group and its toxicity (the largest cytotoxic response).
    fn shift(&self, grp: &Group, g: usize) -> (Vec<f64>, f64) {
        let mut s = vec![0.0; g];
        let mut tox = 0.0f64;
        let mut hs = [0.0; 2];
        for (k, h_k) in hs.iter_mut().enumerate() {
            if let Some(d) = grp.drugs[k] {
                let h = self.hill(d, grp.doses[k]);
                *h_k = h;
                s = add(&s, &scale(&self.effect[d], h));
                if self.cytotoxic(d) {
                    tox = tox.max(h);
                }
            }
        }
        if let [Some(a), Some(b)] = grp.drugs {
            if let Some((gamma, p)) = self.interaction.get(&self.class_pair(a, b)) {
                s = add(&s, &scale(p, gamma * hs[0] * hs[1]));
            }
        }
        (s, tox)
    }

    /// Interaction type of each pair, keyed by the pair's condition label.
    fn gi_type(&self, pairs: &[(usize, usize)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(a, b)| {
                let t = match self.interaction.get(&self.class_pair(a, b)) {
                    Some((gamma, _)) if *gamma > 0.0 => "synergy",
                    Some(_) => "antagonism",
                    None => "additive",
                };
                (
                    format!("{}+{}", self.names[a], self.names[b]),
                    t.to_string(),
                )
            })
            .collect()
    }
}

/// A group of cells sharing a condition label, drug slots and dose pair.
struct Group {
    label: String,
    drugs: [Option<usize>; 2],
    doses: [f64; 2],
}

/// Draw `n_pairs` distinct drug pairs, sorted.
fn draw_pairs(rng: &mut ChaCha8Rng, n_drugs: usize, n_pairs: usize) -> Vec<(usize, usize)> {
    let mut all_pairs: Vec<(usize, usize)> = Vec::new();
    for a in 0..n_drugs {
        for b in a + 1..n_drugs {
            all_pairs.push((a, b));
        }
    }
    all_pairs.shuffle(rng);
    let mut pairs: Vec<(usize, usize)> = all_pairs.into_iter().take(n_pairs).collect();
    pairs.sort();
    pairs
}

/// The groups: the control, each single drug at every dose, then each pair at a drawn dose pair.
fn drug_groups(rng: &mut ChaCha8Rng, names: &[String], pairs: &[(usize, usize)]) -> Vec<Group> {
    let mut groups = vec![Group {
        label: "control+control".into(),
        drugs: [None, None],
        doses: [0.0, 0.0],
    }];
    for (d, drug) in names.iter().enumerate() {
        for &c in &DOSES {
            groups.push(Group {
                label: format!("control+{drug}"),
                drugs: [None, Some(d)],
                doses: [0.0, c],
            });
        }
    }
    for &(a, b) in pairs {
        let da = DOSES[rng.random_range(1..4)];
        let db = DOSES[rng.random_range(1..4)];
        groups.push(Group {
            label: format!("{}+{}", names[a], names[b]),
            drugs: [Some(a), Some(b)],
            doses: [da, db],
        });
    }
    groups
}

/// Sample the cells of every group in order; returns the counts and each cell's (group, state).
fn sample_drug_cells(
    rng: &mut ChaCha8Rng,
    base: &Base,
    sz: &DrugSizes,
    drugs: &Drugs,
    groups: &[Group],
    sink: &mut dyn CellSink,
) -> Vec<(usize, usize)> {
    let mut rows: Vec<(usize, usize)> = Vec::new(); // (group, state)
    for (gi, grp) in groups.iter().enumerate() {
        let (shift, tox) = drugs.shift(grp, sz.genes);
        let n = match grp.drugs {
            [None, None] => sz.controls,
            // Cytotoxic drugs thin the population at high dose.
            [None, Some(_)] => ((sz.per_dose as f64) * (1.0 - 0.5 * tox)).round().max(3.0) as usize,
            _ => ((sz.per_pair as f64) * (1.0 - 0.5 * tox)).round().max(3.0) as usize,
        };
        let weights = [0.5 * (1.0 - tox), 0.3 * (1.0 - tox), 0.2 + 0.8 * tox];
        for _ in 0..n {
            let state = Base::pick_state(rng, weights);
            base.sample_cell(rng, state, &shift, sink.counts());
            sink.cell_done();
            rows.push((gi, state));
        }
    }
    rows
}

/// The `dose_val` of a group: both doses for pairs, the dose for singles, "0" for the control.
fn dose_val(grp: &Group) -> String {
    let dose_str = |c: f64| format!("{}", c as i64);
    match grp.drugs {
        [Some(_), Some(_)] => {
            format!("{}+{}", dose_str(grp.doses[0]), dose_str(grp.doses[1]))
        }
        [None, Some(_)] => dose_str(grp.doses[1]),
        _ => "0".into(),
    }
}

/// The ComboSciPlex obs table (pertpy schema), one row per `(group, state)`.
fn drug_obs(names: &[String], groups: &[Group], rows: &[(usize, usize)]) -> DataFrame {
    let n = rows.len();
    let cells: Vec<&Group> = rows.iter().map(|&(gi, _)| &groups[gi]).collect();
    let slot = |k: usize| -> Vec<String> {
        cells
            .iter()
            .map(|grp| grp.drugs[k].map_or_else(|| "control".to_string(), |d| names[d].clone()))
            .collect()
    };
    let dose = |k: usize| Column::Numeric(cells.iter().map(|grp| grp.doses[k]).collect());
    let labels: Vec<String> = cells.iter().map(|grp| grp.label.clone()).collect();
    let dose_val: Vec<String> = cells.iter().map(|grp| dose_val(grp)).collect();
    let states: Vec<String> = rows.iter().map(|&(_, s)| format!("state{s}")).collect();
    let cov: Vec<String> = labels
        .iter()
        .zip(&dose_val)
        .map(|(l, d)| format!("A549_{l}_{d}"))
        .collect();
    let control = labels
        .iter()
        .map(|l| f64::from(l == "control+control"))
        .collect();
    DataFrame {
        index: (0..n).map(|i| format!("cell{i:06}")).collect(),
        columns: vec![
            ("condition".into(), categorical(&labels)),
            ("Drug1".into(), categorical(&slot(0))),
            ("Drug2".into(), categorical(&slot(1))),
            ("Dose1".into(), dose(0)),
            ("Dose2".into(), dose(1)),
            ("dose_val".into(), categorical(&dose_val)),
            ("cov_drug_dose_name".into(), categorical(&cov)),
            ("control".into(), Column::Numeric(control)),
            (
                "cell_type".into(),
                categorical(&vec!["A549".to_string(); n]),
            ),
            ("state".into(), categorical(&states)),
        ],
    }
}

/// Truth per condition label, at the first dose pair of that label.
fn drug_truth(drugs: &Drugs, groups: &[Group], g: usize) -> Vec<(String, Option<Vec<f64>>)> {
    let mut truth: Vec<(String, Option<Vec<f64>>)> = Vec::new();
    for grp in groups {
        if truth.iter().all(|(l, _)| *l != grp.label) {
            let d = (grp.drugs != [None, None]).then(|| drugs.shift(grp, g).0);
            truth.push((grp.label.clone(), d));
        }
    }
    truth
}

/// The drug-specific `uns` entries: fingerprints, classes and Hill parameters.
fn drug_uns(drugs: Drugs) -> Vec<(String, UnsValue)> {
    let n_drugs = drugs.names.len();
    vec![
        (
            "fingerprints".into(),
            UnsValue::Array {
                shape: vec![n_drugs, FP_DIM],
                values: drugs.fingerprints,
            },
        ),
        ("fingerprint_drugs".into(), UnsValue::Strings(drugs.names)),
        (
            "drug_classes".into(),
            UnsValue::Strings(
                drugs
                    .class_of
                    .iter()
                    .map(|&c| DRUG_CLASSES[c].to_string())
                    .collect(),
            ),
        ),
        (
            "hill_ec50_nM".into(),
            UnsValue::Array {
                shape: vec![n_drugs],
                values: drugs.ec50,
            },
        ),
        (
            "hill_n".into(),
            UnsValue::Array {
                shape: vec![n_drugs],
                values: drugs.hill_n,
            },
        ),
    ]
}

/// Draw the ComboSciPlex-like design, send its cells to `sink`, and return everything else.
fn combosciplex_into(cfg: &SynthConfig, sink: &mut dyn CellSink) -> Frames {
    let sz = DrugSizes::new(cfg.size);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let base = Base::new(&mut rng, sz.genes, "SD");
    let drugs = Drugs::draw(&mut rng, sz.genes, sz.drugs);
    let pairs = draw_pairs(&mut rng, sz.drugs, sz.pairs);
    let groups = drug_groups(&mut rng, &drugs.names, &pairs);
    let rows = sample_drug_cells(&mut rng, &base, &sz, &drugs, &groups, sink);
    let obs = drug_obs(&drugs.names, &groups, &rows);
    let var = DataFrame {
        index: base.genes.clone(),
        columns: Vec::new(),
    };
    let truth = drug_truth(&drugs, &groups, sz.genes);
    let gi_type = drugs.gi_type(&pairs);
    let mut uns = truth_uns(cfg, &base, &truth, &gi_type);
    uns.extend(drug_uns(drugs));
    (obs, var, gi_type, uns)
}

/// How the additive baseline does on each double of a prepared dataset:
/// Pearson r between `Δ_A + Δ_B` and `Δ_AB`, all deltas being mean log1p expression minus the
/// control mean, and the residual fraction `‖Δ_AB − Δ_A − Δ_B‖ / ‖Δ_AB‖`. Doubles whose singles
/// are not both present are skipped.
pub fn additive_check(data: &crate::PreparedData) -> Result<Vec<(String, f64, f64)>, DataError> {
    let g = data.n_genes();
    let by = data.table.cells_by_condition();
    let means = by
        .iter()
        .map(|cells| {
            let mut m = vec![0.0; g];
            for chunk in cells.chunks(4096) {
                for row in data.rows(chunk)?.chunks(g.max(1)) {
                    for (k, &v) in row.iter().enumerate() {
                        m[k] += v as f64;
                    }
                }
            }
            Ok(m.iter().map(|v| v / cells.len().max(1) as f64).collect())
        })
        .collect::<Result<Vec<Vec<f64>>, DataError>>()?;
    let ctrl = &means[0];
    let delta = |i: usize| -> Vec<f64> { means[i].iter().zip(ctrl).map(|(a, b)| a - b).collect() };
    let mut out = Vec::new();
    for (i, c) in data.table.conditions.iter().enumerate() {
        if c.tokens.len() != 2 {
            continue;
        }
        let (Some(a), Some(b)) = (
            data.table.condition_index(&c.tokens[0]),
            data.table.condition_index(&c.tokens[1]),
        ) else {
            continue;
        };
        let real = delta(i);
        let pred = add(&delta(a), &delta(b));
        let resid: f64 = real
            .iter()
            .zip(&pred)
            .map(|(r, p)| (r - p).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = real.iter().map(|r| r * r).sum::<f64>().sqrt();
        out.push((c.name(), pearson(&pred, &real), resid / norm.max(1e-12)));
    }
    Ok(out)
}

/// Pearson correlation of two equal-length vectors (NaN when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa * sbb).sqrt()
}
