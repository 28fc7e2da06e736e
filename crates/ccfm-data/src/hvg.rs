//! Highly variable genes, scanpy's `flavor="seurat"` (as in scanpy 1.11), which scDFM uses to
//! choose its 5000 training genes and its 1000 test genes.
//!
//! On `X' = expm1(X)` (log1p data): per-gene mean and variance (ddof 1); `mean = 1e-12` where
//! it is 0; dispersion `var / mean`, NaN where 0, then its log; `m = log1p(mean)`. Genes are
//! binned by `m` into 20 equal-width, right-closed bins (pandas `cut`, lowest edge lowered by
//! 0.1% of the range); within a bin the log-dispersion is z-scored (ddof 1; a bin holding one
//! value uses mean 0 and its own value as the scale). The cutoff is the n-th highest normalised
//! dispersion among genes that have one (all of them when fewer than n do); every gene at or
//! above it is selected, so ties can select more than n.

/// Per-gene sums of `expm1(x)` and of its square over `n` cells.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneMoments {
    pub n: usize,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
}

impl GeneMoments {
    pub fn new(genes: usize) -> Self {
        Self {
            n: 0,
            sum: vec![0.0; genes],
            sum_sq: vec![0.0; genes],
        }
    }

    fn add(&mut self, gene: usize, log_value: f64, log_scale: f64) {
        let v = (log_value * log_scale).exp_m1();
        self.sum[gene] += v;
        self.sum_sq[gene] += v * v;
    }

    /// From a row-major `(cells, genes)` block of log1p values. `log_base`: the base of the
    /// logarithm when it was not `e` (scanpy's `uns["log1p"]["base"]`).
    pub fn from_dense(x: &[f32], cells: usize, genes: usize, log_base: Option<f64>) -> Self {
        assert_eq!(x.len(), cells * genes, "matrix must be cells x genes");
        let scale = log_base.map_or(1.0, f64::ln);
        let mut m = Self::new(genes);
        m.n = cells;
        for row in x.chunks(genes.max(1)) {
            for (g, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    m.add(g, v as f64, scale);
                }
            }
        }
        m
    }

    /// Add CSR rows (`indptr` has one entry per cell plus one) to the sums, as
    /// [`GeneMoments::from_csr`] adds them.
    pub fn add_csr(&mut self, data: &[f64], indices: &[usize], rows: usize, log_base: Option<f64>) {
        let scale = log_base.map_or(1.0, f64::ln);
        self.n += rows;
        for (&g, &v) in indices.iter().zip(data) {
            self.add(g, v, scale);
        }
    }

    /// Add CSR rows as [`GeneMoments::from_dense`] would see them after the values were
    /// stored as f32 (natural logarithm).
    pub fn add_csr_f32(&mut self, data: &[f64], indices: &[usize], rows: usize) {
        self.n += rows;
        for (&g, &v) in indices.iter().zip(data) {
            let v = v as f32;
            if v != 0.0 {
                self.add(g, v as f64, 1.0);
            }
        }
    }

    /// The moments of the genes `genes` only, in that order.
    pub fn select(&self, genes: &[usize]) -> GeneMoments {
        GeneMoments {
            n: self.n,
            sum: genes.iter().map(|&g| self.sum[g]).collect(),
            sum_sq: genes.iter().map(|&g| self.sum_sq[g]).collect(),
        }
    }

    /// From CSR storage (`indptr` has one entry per cell plus one).
    pub fn from_csr(
        data: &[f64],
        indices: &[usize],
        indptr: &[usize],
        genes: usize,
        log_base: Option<f64>,
    ) -> Self {
        let scale = log_base.map_or(1.0, f64::ln);
        let mut m = Self::new(genes);
        m.n = indptr.len().saturating_sub(1);
        for (&g, &v) in indices.iter().zip(data) {
            m.add(g, v, scale);
        }
        m
    }
}

/// Per-gene statistics of the seurat selection.
#[derive(Debug, Clone, PartialEq)]
pub struct HvgStats {
    /// `log1p(mean)` of expm1(X).
    pub means: Vec<f64>,
    /// log dispersion (NaN where the dispersion is 0).
    pub dispersions: Vec<f64>,
    /// Normalised dispersion (NaN where undefined).
    pub dispersions_norm: Vec<f64>,
}

const N_BINS: usize = 20;

/// The statistics of every gene.
pub fn seurat_stats(m: &GeneMoments) -> HvgStats {
    let n = m.n as f64;
    let genes = m.sum.len();
    let mut means = Vec::with_capacity(genes);
    let mut dispersions = Vec::with_capacity(genes);
    for g in 0..genes {
        let mean = m.sum[g] / n;
        let var = (m.sum_sq[g] / n - mean * mean) * (n / (n - 1.0));
        let mean = if mean == 0.0 { 1e-12 } else { mean };
        let disp = var / mean;
        dispersions.push(if disp == 0.0 { f64::NAN } else { disp.ln() });
        means.push(mean.ln_1p());
    }
    // pandas.cut(means, 20): equal-width right-closed bins, lowest edge lowered by 0.1% of range.
    let (mn, mx) = means
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut edges: Vec<f64> = if mn == mx {
        let (lo, hi) = if mn != 0.0 {
            (mn - 0.001 * mn.abs(), mx + 0.001 * mx.abs())
        } else {
            (-0.001, 0.001)
        };
        let step = (hi - lo) / N_BINS as f64;
        (0..=N_BINS).map(|i| lo + i as f64 * step).collect()
    } else {
        let step = (mx - mn) / N_BINS as f64;
        let mut e: Vec<f64> = (0..=N_BINS).map(|i| mn + i as f64 * step).collect();
        e[N_BINS] = mx;
        e[0] -= (mx - mn) * 0.001;
        e
    };
    edges[N_BINS] = edges[N_BINS].max(mx);
    let bin_of = |v: f64| -> usize { (1..=N_BINS).find(|&i| v <= edges[i]).unwrap_or(N_BINS) - 1 };
    let bins: Vec<usize> = means.iter().map(|&v| bin_of(v)).collect();
    // Mean and std (ddof 1) of the non-NaN log dispersions per bin.
    let mut avg = [f64::NAN; N_BINS];
    let mut sd = [f64::NAN; N_BINS];
    for b in 0..N_BINS {
        let vals: Vec<f64> = (0..genes)
            .filter(|&g| bins[g] == b && !dispersions[g].is_nan())
            .map(|g| dispersions[g])
            .collect();
        if vals.is_empty() {
            continue;
        }
        let k = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / k;
        avg[b] = mean;
        if vals.len() > 1 {
            sd[b] = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        }
    }
    for b in 0..N_BINS {
        if sd[b].is_nan() {
            // One value (or none) in the bin: scale by its mean, centre at 0.
            sd[b] = avg[b];
            avg[b] = 0.0;
        }
    }
    let dispersions_norm = (0..genes)
        .map(|g| (dispersions[g] - avg[bins[g]]) / sd[bins[g]])
        .collect();
    HvgStats {
        means,
        dispersions,
        dispersions_norm,
    }
}

/// Which genes the seurat flavour selects as the `n_top` most variable.
pub fn highly_variable_seurat(m: &GeneMoments, n_top: usize) -> Vec<bool> {
    let stats = seurat_stats(m);
    let mut valid: Vec<f64> = stats
        .dispersions_norm
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .collect();
    if valid.is_empty() || n_top == 0 {
        return vec![false; stats.dispersions_norm.len()];
    }
    valid.sort_by(|a, b| b.total_cmp(a));
    let cutoff = valid[n_top.min(valid.len()) - 1];
    stats
        .dispersions_norm
        .iter()
        .map(|&v| !v.is_nan() && v >= cutoff)
        .collect()
}
