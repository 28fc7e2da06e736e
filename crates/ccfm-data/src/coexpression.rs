//! scDFM's gene co-expression attention mask (`build_gene_coexpression_graph` +
//! `sorted_pad_mask`): which vocabulary tokens each gene token may attend to in the gene
//! encoder.
//!
//! 1. Expression is clipped at 0, `log1p`-transformed (again: scDFM applies it to
//!    already-normalised data) and z-scored per gene (ddof 1; a zero std counts as 1).
//! 2. Pearson correlation between genes; non-finite entries and zero-variance genes get 0,
//!    the diagonal 1, values clipped to [-1, 1].
//! 3. Each gene keeps its `k` strongest partners by |r| (itself excluded); ties go to the lower
//!    gene index. Edge weights are |r| (`use_negative_edge`) or the signed r; the graph is
//!    symmetrised with an element-wise max, so a signed negative edge survives only if mutual.
//! 4. Blocked = no edge, except the diagonal. Rows and columns are reordered to the vocabulary's
//!    gene order (sorted names) and 4 special tokens are prepended, each allowed only itself.

use rayon::prelude::*;

/// Settings of the co-expression graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoexpressionConfig {
    /// Partners kept per gene (scDFM: 30).
    pub top_k: usize,
    /// Weight edges by |r| (true, scDFM's setting) or by the signed r.
    pub use_negative_edge: bool,
    /// Special tokens before the genes in the vocabulary (scDFM: 4).
    pub n_specials: usize,
}

impl Default for CoexpressionConfig {
    fn default() -> Self {
        Self {
            top_k: 30,
            use_negative_edge: true,
            n_specials: 4,
        }
    }
}

/// The `(genes, genes)` Pearson correlation of the standardised expression (step 1-2), row-major.
/// The statistics are those [`streamed_coexpression_mask`] builds pass by pass, here over the
/// whole matrix as one block.
pub fn correlation(x: &[f64], cells: usize, genes: usize) -> Vec<f64> {
    assert_eq!(x.len(), cells * genes, "expression must be cells x genes");
    let mut z = ZScores::new(genes, cells);
    z.add_log_sums(x);
    z.finish_log_means();
    z.add_variance(x);
    z.finish_variance();
    z.add_mean(x);
    z.finish_mean();
    let mut cross = vec![0.0; genes * genes];
    z.add_cross(x, &mut cross);
    z.correlation(&cross)
}

/// The `(genes, genes)` blocked-mask in the input gene order (steps 3-4, before padding):
/// `true` = may not attend.
pub fn blocked_mask(corr: &[f64], genes: usize, cfg: &CoexpressionConfig) -> Vec<bool> {
    let k = cfg.top_k.min(genes.saturating_sub(1));
    let mut adj = vec![0.0f64; genes * genes];
    for i in 0..genes {
        let row = &corr[i * genes..(i + 1) * genes];
        let mut order: Vec<usize> = (0..genes).filter(|&j| j != i).collect();
        // Strongest |r| first; ties to the lower index (stable sort).
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()));
        for &j in &order[..k] {
            let w = if cfg.use_negative_edge {
                row[j].abs()
            } else {
                row[j]
            };
            adj[i * genes + j] = w;
        }
    }
    let mut blocked = vec![true; genes * genes];
    for i in 0..genes {
        for j in 0..genes {
            let w = adj[i * genes + j].max(adj[j * genes + i]);
            blocked[i * genes + j] = i != j && w == 0.0;
        }
    }
    blocked
}

/// Reorder a `(genes, genes)` mask to sorted gene names (byte order, the vocabulary's) and
/// prepend `n_specials` tokens that may attend only to themselves: `(G + n, G + n)`.
pub fn sorted_pad_mask(blocked: &[bool], gene_names: &[String], n_specials: usize) -> Vec<bool> {
    let g = gene_names.len();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| gene_names[a].as_bytes().cmp(gene_names[b].as_bytes()));
    let m = g + n_specials;
    let mut out = vec![true; m * m];
    for (ri, &src_r) in order.iter().enumerate() {
        for (ci, &src_c) in order.iter().enumerate() {
            out[(ri + n_specials) * m + ci + n_specials] = blocked[src_r * g + src_c];
        }
    }
    for i in 0..m {
        out[i * m + i] = false;
    }
    out
}

/// The whole mask from a row-major `(cells, genes)` training matrix and its gene names:
/// `(G + n_specials)^2` flags in vocabulary order, `true` = blocked.
pub fn coexpression_mask(
    x: &[f64],
    cells: usize,
    gene_names: &[String],
    cfg: &CoexpressionConfig,
) -> Vec<bool> {
    let genes = gene_names.len();
    let corr = correlation(x, cells, genes);
    let blocked = blocked_mask(&corr, genes, cfg);
    sorted_pad_mask(&blocked, gene_names, cfg.n_specials)
}

/// FNV-1a, 64 bit: a stable content hash for cache keys (not for security).
fn fnv1a(state: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *state ^= b as u64;
        *state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

const CACHE_MAGIC: &[u8] = b"CCFM-COEXPRESSION-MASK-1\n";

/// The cache key of a mask: a hash of the settings, the gene names and the training matrix.
pub fn cache_key(x: &[f64], cells: usize, gene_names: &[String], cfg: &CoexpressionConfig) -> u64 {
    let mut h = key_prefix(cells, gene_names, cfg);
    for v in x {
        fnv1a(&mut h, &v.to_bits().to_le_bytes());
    }
    h
}

fn decode(bytes: &[u8], m: usize) -> Option<Vec<bool>> {
    let rest = bytes.strip_prefix(CACHE_MAGIC)?;
    let (len, bits) = rest.split_at_checked(8)?;
    if u64::from_le_bytes(len.try_into().ok()?) != m as u64 || bits.len() != (m * m).div_ceil(8) {
        return None;
    }
    Some(
        (0..m * m)
            .map(|i| bits[i / 8] >> (i % 8) & 1 == 1)
            .collect(),
    )
}

/// [`coexpression_mask`] cached in `cache_dir` under a name derived from [`cache_key`]: a later
/// call with the same inputs reads the file instead of recomputing. A cache file that does not
/// decode is recomputed and replaced. Returns the mask and whether it came from the cache.
pub fn cached_coexpression_mask(
    cache_dir: &std::path::Path,
    x: &[f64],
    cells: usize,
    gene_names: &[String],
    cfg: &CoexpressionConfig,
) -> Result<(Vec<bool>, bool), crate::DataError> {
    let m = gene_names.len() + cfg.n_specials;
    let path = cache_path(cache_dir, cache_key(x, cells, gene_names, cfg), cfg);
    if let Some(mask) = read_cached(&path, m) {
        return Ok((mask, true));
    }
    let mask = coexpression_mask(x, cells, gene_names, cfg);
    write_cached(cache_dir, &path, &mask)?;
    Ok((mask, false))
}

fn cache_path(dir: &std::path::Path, key: u64, cfg: &CoexpressionConfig) -> std::path::PathBuf {
    dir.join(format!("coexpression-{key:016x}-k{}.mask", cfg.top_k))
}

fn read_cached(path: &std::path::Path, m: usize) -> Option<Vec<bool>> {
    std::fs::read(path).ok().and_then(|b| decode(&b, m))
}

fn write_cached(
    cache_dir: &std::path::Path,
    path: &std::path::Path,
    mask: &[bool],
) -> Result<(), crate::DataError> {
    let m = (mask.len() as f64).sqrt() as usize;
    let mut bytes = CACHE_MAGIC.to_vec();
    bytes.extend_from_slice(&(m as u64).to_le_bytes());
    let mut bits = vec![0u8; mask.len().div_ceil(8)];
    for (i, &b) in mask.iter().enumerate() {
        bits[i / 8] |= u8::from(b) << (i % 8);
    }
    bytes.extend_from_slice(&bits);
    std::fs::create_dir_all(cache_dir).map_err(|e| crate::DataError::Io {
        path: cache_dir.to_path_buf(),
        detail: format!("creating the cache directory: {e}"),
    })?;
    crate::fs::write_atomic(path, &bytes)
}

/// Visits the training matrix: calls its argument with consecutive row-major `(rows, genes)`
/// blocks of f64 values, every cell once, in the same order on every call.
pub type RowPasses<'a> = dyn FnMut(&mut dyn FnMut(&[f64])) -> Result<(), crate::DataError> + 'a;

/// [`cached_coexpression_mask`] for a training matrix that is not in memory, in four passes
/// over it (gene means, variances, means of the z-scores, then the cross-products of the centred
/// z-scores): the arithmetic of [`correlation`] in the same order, each sum accumulated cell by
/// cell, so the mask is the same bit for bit. The cache key is the in-memory one, so both paths
/// share cached masks.
pub fn streamed_coexpression_mask(
    rows: &mut RowPasses<'_>,
    cells: usize,
    gene_names: &[String],
    cfg: &CoexpressionConfig,
    cache_dir: Option<&std::path::Path>,
) -> Result<(Vec<bool>, bool), crate::DataError> {
    let genes = gene_names.len();
    let mut key = key_prefix(cells, gene_names, cfg);
    let mut z = ZScores::new(genes, cells);
    rows(&mut |block| {
        for &v in block {
            fnv1a(&mut key, &v.to_bits().to_le_bytes());
        }
        z.add_log_sums(block);
    })?;
    let m = genes + cfg.n_specials;
    let path = cache_dir.map(|d| cache_path(d, key, cfg));
    if let Some(mask) = path.as_deref().and_then(|p| read_cached(p, m)) {
        return Ok((mask, true));
    }
    z.finish_log_means();
    rows(&mut |block| z.add_variance(block))?;
    z.finish_variance();
    rows(&mut |block| z.add_mean(block))?;
    z.finish_mean();
    let mut cross = vec![0.0; genes * genes];
    rows(&mut |block| z.add_cross(block, &mut cross))?;
    let corr = z.correlation(&cross);
    let mask = sorted_pad_mask(&blocked_mask(&corr, genes, cfg), gene_names, cfg.n_specials);
    if let (Some(dir), Some(p)) = (cache_dir, &path) {
        write_cached(dir, p, &mask)?;
    }
    Ok((mask, false))
}

/// The per-gene statistics of [`correlation`] (step 1-2), built pass by pass over row-major
/// `(rows, genes)` blocks, each sum accumulated cell by cell.
struct ZScores {
    cells: usize,
    genes: usize,
    /// Mean of `log1p(max(x, 0))`; sums until finished.
    mean: Vec<f64>,
    /// Its standard deviation (ddof 1; 1 where 0 or not finite); sums of squares until finished.
    sd: Vec<f64>,
    /// Mean of the z-scores; sums until finished.
    z_mean: Vec<f64>,
}

impl ZScores {
    fn new(genes: usize, cells: usize) -> Self {
        Self {
            cells,
            genes,
            mean: vec![0.0; genes],
            sd: vec![0.0; genes],
            z_mean: vec![0.0; genes],
        }
    }

    fn add_log_sums(&mut self, block: &[f64]) {
        for (k, &v) in block.iter().enumerate() {
            self.mean[k % self.genes] += v.max(0.0).ln_1p();
        }
    }

    fn finish_log_means(&mut self) {
        let n = self.cells as f64;
        self.mean.iter_mut().for_each(|s| *s /= n);
    }

    fn add_variance(&mut self, block: &[f64]) {
        for (k, &v) in block.iter().enumerate() {
            let g = k % self.genes;
            self.sd[g] += (v.max(0.0).ln_1p() - self.mean[g]).powi(2);
        }
    }

    fn finish_variance(&mut self) {
        for s in &mut self.sd {
            let v = (*s / (self.cells as f64 - 1.0)).sqrt();
            *s = if v == 0.0 || !v.is_finite() { 1.0 } else { v };
        }
    }

    fn z(&self, v: f64, g: usize) -> f64 {
        (v.max(0.0).ln_1p() - self.mean[g]) / self.sd[g]
    }

    fn add_mean(&mut self, block: &[f64]) {
        for (k, &v) in block.iter().enumerate() {
            let g = k % self.genes;
            self.z_mean[g] += self.z(v, g);
        }
    }

    fn finish_mean(&mut self) {
        let n = self.cells as f64;
        self.z_mean.iter_mut().for_each(|s| *s /= n);
    }

    /// Add a block's products of centred z-scores to the upper triangle of `cross`, each sum
    /// in cell order.
    fn add_cross(&self, block: &[f64], cross: &mut [f64]) {
        let g = self.genes;
        let rows = block.len() / g.max(1);
        let mut cols = vec![0.0; rows * g];
        for r in 0..rows {
            for k in 0..g {
                cols[k * rows + r] = self.z(block[r * g + k], k) - self.z_mean[k];
            }
        }
        cross.par_chunks_mut(g).enumerate().for_each(|(i, out)| {
            let ci = &cols[i * rows..(i + 1) * rows];
            for (j, o) in out.iter_mut().enumerate().skip(i) {
                let cj = &cols[j * rows..(j + 1) * rows];
                let mut acc = *o;
                for (a, b) in ci.iter().zip(cj) {
                    acc += a * b;
                }
                *o = acc;
            }
        });
    }

    /// Pearson correlation as [`correlation`] defines it, from the finished cross-products.
    fn correlation(&self, cross: &[f64]) -> Vec<f64> {
        let g = self.genes;
        let at = |i: usize, j: usize| cross[i.min(j) * g + i.max(j)];
        let norm: Vec<f64> = (0..g).map(|i| at(i, i).sqrt()).collect();
        let mut r = vec![0.0; g * g];
        for i in 0..g {
            for j in 0..g {
                r[i * g + j] = if i == j {
                    1.0
                } else if norm[i] == 0.0 || norm[j] == 0.0 {
                    0.0
                } else {
                    let v = at(i, j) / (norm[i] * norm[j]);
                    if v.is_finite() {
                        v.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }
                };
            }
        }
        r
    }
}

/// The hash of everything in a cache key but the values.
fn key_prefix(cells: usize, gene_names: &[String], cfg: &CoexpressionConfig) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, CACHE_MAGIC);
    for v in [
        cfg.top_k as u64,
        cfg.use_negative_edge as u64,
        cfg.n_specials as u64,
        cells as u64,
    ] {
        fnv1a(&mut h, &v.to_le_bytes());
    }
    for g in gene_names {
        fnv1a(&mut h, g.as_bytes());
        fnv1a(&mut h, &[0]);
    }
    h
}
