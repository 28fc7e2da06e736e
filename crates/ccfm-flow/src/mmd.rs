//! Maximum mean discrepancy between two sets of cells (rows).
//!
//! * [`mmd2_unbiased_multi_sigma`] with [`median_sigmas`]: scDFM's training loss term
//!   (unbiased MMD², Gaussian kernels with median-heuristic bandwidths). Differentiable in `x`.
//! * [`rbf_mmd`]: CellFlow's evaluation metric (biased, RBF kernels over fixed gammas).

use burn::tensor::{backend::Backend, Tensor};

use crate::FlowError;

/// scDFM's bandwidth scales: `sigma_l^2 = s_l * median`.
pub const SCDFM_SIGMA_SCALES: [f64; 4] = [0.5, 1.0, 2.0, 4.0];
/// CellFlow's RBF gammas for `compute_scalar_mmd`.
pub const CELLFLOW_GAMMAS: [f64; 6] = [2.0, 1.0, 0.5, 0.1, 0.01, 0.005];

/// Squared Euclidean distances between every row of `x` (m, d) and of `y` (n, d), `(m, n)`,
/// from the differences themselves: exact zeros on identical rows, never negative.
pub fn pairwise_sq_dists<B: Backend>(x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    let [m, d] = x.dims();
    let [n, _] = y.dims();
    let diff = x.reshape([m, 1, d]) - y.reshape([1, n, d]);
    diff.powi_scalar(2).sum_dim(2).reshape([m, n])
}

/// Squared Euclidean distances as `|x|^2 + |y|^2 - 2 x.y` (one matmul; the form CellFlow uses).
pub fn pairwise_sq_dists_gram<B: Backend>(x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 2> {
    let xx = x.clone().powi_scalar(2).sum_dim(1); // (m, 1)
    let yy = y.clone().powi_scalar(2).sum_dim(1).transpose(); // (1, n)
    let xy = x.matmul(y.transpose());
    xx + yy - xy.mul_scalar(2.0)
}

/// The median-heuristic bandwidths of scDFM's MMD loss.
#[derive(Debug, Clone, PartialEq)]
pub struct MedianSigmas {
    /// The lower median of the off-diagonal squared distances, clamped at 1e-12.
    pub median_sq_dist: f64,
    /// `sqrt(s * median)` for each scale `s`.
    pub sigmas: Vec<f64>,
}

fn check_rows(rows: usize) -> Result<(), FlowError> {
    if rows < 2 {
        return Err(FlowError::TooFewSamples {
            needed: 2,
            got: rows,
        });
    }
    Ok(())
}

/// Bandwidths from the target cells: the lower median `m` (as `torch.median`) of the
/// `n(n-1)` off-diagonal squared distances, clamped at 1e-12, then `sigma = sqrt(s m)`.
/// No gradient flows through the result (it is read back to the host).
pub fn median_sigmas<B: Backend>(
    target: Tensor<B, 2>,
    scales: &[f64],
) -> Result<MedianSigmas, FlowError> {
    let [n, _] = target.dims();
    check_rows(n)?;
    let d = pairwise_sq_dists(target.clone(), target);
    let values = d
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| FlowError::Shape(format!("{e:?}")))?;
    let mut off: Vec<f32> = values
        .iter()
        .enumerate()
        .filter(|(k, _)| k / n != k % n)
        .map(|(_, &v)| v)
        .collect();
    off.sort_by(f32::total_cmp);
    let median = (off[(off.len() - 1) / 2] as f64).max(1e-12);
    Ok(MedianSigmas {
        median_sq_dist: median,
        sigmas: scales.iter().map(|s| (s * median).sqrt()).collect(),
    })
}

/// A `(n, n)` matrix with ones off the diagonal and zeros on it.
fn off_diagonal<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::<B, 2>::ones([n, n], device) - Tensor::eye(n, device)
}

/// scDFM's unbiased multi-bandwidth MMD² between rows of `x` (m, d) and `y` (n, d):
/// for each `sigma`, with `k(a, b) = exp(-|a-b|^2 / (2 sigma^2 + 1e-12))`,
/// `(sum Kxx - tr Kxx)/(m(m-1)+1e-12) + (sum Kyy - tr Kyy)/(n(n-1)+1e-12) - 2 mean Kxy`,
/// averaged over the bandwidths. Returns a `(1,)` tensor.
pub fn mmd2_unbiased_multi_sigma<B: Backend>(
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
    sigmas: &[f64],
) -> Result<Tensor<B, 1>, FlowError> {
    let [m, dx] = x.dims();
    let [n, dy] = y.dims();
    check_rows(m)?;
    check_rows(n)?;
    if dx != dy {
        return Err(FlowError::Shape(format!(
            "x has {dx} columns but y has {dy}"
        )));
    }
    if sigmas.is_empty() {
        return Err(FlowError::InvalidParameter {
            name: "sigmas",
            value: 0.0,
            expected: "at least one bandwidth",
        });
    }
    let device = x.device();
    let dxx = pairwise_sq_dists(x.clone(), x.clone());
    let dyy = pairwise_sq_dists(y.clone(), y.clone());
    let dxy = pairwise_sq_dists(x, y);
    let off_x = off_diagonal::<B>(m, &device);
    let off_y = off_diagonal::<B>(n, &device);
    let mut total: Option<Tensor<B, 1>> = None;
    for &sigma in sigmas {
        let beta = 1.0 / (2.0 * sigma * sigma + 1e-12);
        let kxx = dxx.clone().mul_scalar(-beta).exp();
        let kyy = dyy.clone().mul_scalar(-beta).exp();
        let kxy = dxy.clone().mul_scalar(-beta).exp();
        let term_x = (kxx * off_x.clone())
            .sum()
            .div_scalar((m * (m - 1)) as f64 + 1e-12);
        let term_y = (kyy * off_y.clone())
            .sum()
            .div_scalar((n * (n - 1)) as f64 + 1e-12);
        let term_xy = kxy.mean().mul_scalar(2.0);
        let v = term_x + term_y - term_xy;
        total = Some(match total {
            Some(t) => t + v,
            None => v,
        });
    }
    Ok(total
        .expect("sigmas is not empty")
        .div_scalar(sigmas.len() as f64))
}

/// CellFlow's biased RBF MMD: the mean over `gammas` of
/// `mean Kxx + mean Kyy - 2 mean Kxy` with `K = exp(-gamma |a-b|^2)` (diagonals included),
/// squared distances computed as `|a|^2 + |b|^2 - 2 a.b`. Returns a `(1,)` tensor.
pub fn rbf_mmd<B: Backend>(
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
    gammas: &[f64],
) -> Result<Tensor<B, 1>, FlowError> {
    let [m, dx] = x.dims();
    let [n, dy] = y.dims();
    if m == 0 || n == 0 {
        return Err(FlowError::TooFewSamples {
            needed: 1,
            got: m.min(n),
        });
    }
    if dx != dy {
        return Err(FlowError::Shape(format!(
            "x has {dx} columns but y has {dy}"
        )));
    }
    if gammas.is_empty() {
        return Err(FlowError::InvalidParameter {
            name: "gammas",
            value: 0.0,
            expected: "at least one gamma",
        });
    }
    let dxx = pairwise_sq_dists_gram(x.clone(), x.clone());
    let dyy = pairwise_sq_dists_gram(y.clone(), y.clone());
    let dxy = pairwise_sq_dists_gram(x, y);
    let mut total: Option<Tensor<B, 1>> = None;
    for &g in gammas {
        let v = dxx.clone().mul_scalar(-g).exp().mean() + dyy.clone().mul_scalar(-g).exp().mean()
            - dxy.clone().mul_scalar(-g).exp().mean().mul_scalar(2.0);
        total = Some(match total {
            Some(t) => t + v,
            None => v,
        });
    }
    Ok(total
        .expect("gammas is not empty")
        .div_scalar(gammas.len() as f64))
}
