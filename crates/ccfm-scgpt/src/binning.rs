//! scGPT's per-cell value binning (`scgpt.preprocess.binning` / `_digitize`, n_bins = 51):
//! the non-zero values of a cell are mapped to bins 1..n_bins-1 by 50 quantile edges; zeros
//! stay 0.
//!
//! Edges are numpy's `np.quantile(x, np.linspace(0, 1, n_bins - 1))` reproduced bit for bit:
//! on the float32-sorted values, `v = (n-1) q`, `p = floor(v)`, `t = v - p`, the difference of
//! neighbours taken in float32, and `a + d t` below `t = 0.5`, `b - d (1 - t)` from it.
//! With `left = #(edges <= x)` and `right = #(edges < x)`:
//! - [`TieBreak::Left`]: `bin = left` (the pretraining-era `np.digitize`);
//! - [`TieBreak::Random`]: `bin = ceil(u (right - left) + left)` with one uniform `u` per
//!   value (scgpt 0.2.4): tied values spanning several edges get uniformly random bins.

/// How values that tie across several edges are binned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Deterministic: tied values take the lowest bin.
    #[default]
    Left,
    /// scgpt 0.2.4: tied values spanning several edges get uniformly random bins.
    Random,
}

/// The `n_edges` quantile edges of `values` (non-empty), as numpy computes them.
pub fn quantile_edges(values: &[f32], n_edges: usize) -> Vec<f64> {
    let mut s = values.to_vec();
    s.sort_by(f32::total_cmp);
    let n = s.len();
    let step = 1.0 / (n_edges - 1) as f64;
    (0..n_edges)
        .map(|i| {
            let q = if i == n_edges - 1 {
                1.0
            } else {
                i as f64 * step
            };
            let v = (n - 1) as f64 * q;
            if v >= (n - 1) as f64 {
                return s[n - 1] as f64;
            }
            let p = v.floor();
            let t = v - p;
            let (a, b) = (s[p as usize], s[p as usize + 1]);
            let d = (b - a) as f64;
            if t < 0.5 {
                a as f64 + d * t
            } else {
                b as f64 - d * (1.0 - t)
            }
        })
        .collect()
}

/// Bin one cell's values (zeros included, they stay 0). `uniforms` supplies one draw in
/// [0, 1) per non-zero value, in order, for [`TieBreak::Random`]; it is not used by `Left`.
pub fn bin_cell(
    row: &[f32],
    n_bins: usize,
    mode: TieBreak,
    uniforms: &mut dyn FnMut() -> f64,
) -> Vec<f32> {
    let nz: Vec<f32> = row.iter().copied().filter(|&v| v != 0.0).collect();
    if nz.is_empty() {
        return vec![0.0; row.len()];
    }
    let edges = quantile_edges(&nz, n_bins - 1);
    row.iter()
        .map(|&v| {
            if v == 0.0 {
                return 0.0;
            }
            let x = v as f64;
            let left = edges.iter().filter(|&&e| e <= x).count() as f64;
            match mode {
                TieBreak::Left => left as f32,
                TieBreak::Random => {
                    let right = edges.iter().filter(|&&e| e < x).count() as f64;
                    (uniforms() * (right - left) + left).ceil() as f32
                }
            }
        })
        .collect()
}
