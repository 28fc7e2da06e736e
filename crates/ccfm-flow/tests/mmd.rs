use burn::backend::{Autodiff, Flex};
use burn::tensor::{backend::Backend, Distribution, Tensor, TensorData};
use ccfm_flow::{
    median_sigmas, mmd2_unbiased_multi_sigma, rbf_mmd, CELLFLOW_GAMMAS, SCDFM_SIGMA_SCALES,
};
use ccfm_testkit::values;

type B = Flex;
type AD = Autodiff<Flex>;

fn rows(v: &[f32], n: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(v.to_vec(), [n, v.len() / n]),
        &Default::default(),
    )
}

/// A direct f64 evaluation of the biased RBF MMD for comparison.
fn rbf_mmd_f64(x: &[Vec<f64>], y: &[Vec<f64>], gammas: &[f64]) -> f64 {
    let d = |a: &Vec<f64>, b: &Vec<f64>| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
    let mean_k = |a: &[Vec<f64>], b: &[Vec<f64>], g: f64| {
        let mut s = 0.0;
        for p in a {
            for q in b {
                s += (-g * d(p, q)).exp();
            }
        }
        s / (a.len() * b.len()) as f64
    };
    gammas
        .iter()
        .map(|&g| mean_k(x, x, g) + mean_k(y, y, g) - 2.0 * mean_k(x, y, g))
        .sum::<f64>()
        / gammas.len() as f64
}

#[test]
fn rbf_mmd_matches_direct_definition_and_is_zero_for_identical_sets() {
    let device = Default::default();
    B::seed(&device, 3);
    let x = Tensor::<B, 2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<B, 2>::random([9, 5], Distribution::Normal(0.5, 1.0), &device);
    let to_rows = |t: &Tensor<B, 2>| -> Vec<Vec<f64>> {
        values(t.clone())
            .chunks(5)
            .map(|c| c.iter().map(|&v| v as f64).collect())
            .collect()
    };
    let expected = rbf_mmd_f64(&to_rows(&x), &to_rows(&y), &CELLFLOW_GAMMAS);
    let got = values(rbf_mmd(x.clone(), y, &CELLFLOW_GAMMAS).unwrap())[0] as f64;
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    let same = values(rbf_mmd(x.clone(), x, &CELLFLOW_GAMMAS).unwrap())[0];
    assert!(same.abs() < 1e-5);
}

#[test]
fn median_is_the_lower_median_of_off_diagonal_distances() {
    // Points on a line at 0, 1, 3: squared distances 1, 9, 4 (each twice): sorted
    // [1,1,4,4,9,9], lower median = 4.
    let s = median_sigmas(rows(&[0.0, 1.0, 3.0], 3), &SCDFM_SIGMA_SCALES).unwrap();
    assert_eq!(s.median_sq_dist, 4.0);
    assert_eq!(s.sigmas, vec![2f64.sqrt(), 2.0, 8f64.sqrt(), 4.0]);
    assert!(median_sigmas(rows(&[1.0], 1), &SCDFM_SIGMA_SCALES).is_err());
}

#[test]
fn unbiased_mmd_gradient_matches_finite_differences() {
    let device = Default::default();
    AD::seed(&device, 11);
    let x = Tensor::<AD, 2>::random([5, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let y = Tensor::<AD, 2>::random([6, 4], Distribution::Normal(0.3, 1.0), &device);
    let sigmas = median_sigmas(y.clone().inner(), &SCDFM_SIGMA_SCALES)
        .unwrap()
        .sigmas;
    let loss = mmd2_unbiased_multi_sigma(x.clone(), y.clone(), &sigmas).unwrap();
    let grads = loss.backward();
    let g = values(x.grad(&grads).unwrap());
    let (xv, yv) = (values(x.inner()), y.inner());
    let h = 1e-2f32;
    for k in [0usize, 7, 13, 19] {
        let f = |delta: f32| {
            let mut v = xv.clone();
            v[k] += delta;
            values(mmd2_unbiased_multi_sigma(rows(&v, 5), yv.clone(), &sigmas).unwrap())[0] as f64
        };
        let fd = (f(h) - f(-h)) / (2.0 * h as f64);
        assert!(
            (g[k] as f64 - fd).abs() < 2e-3,
            "element {k}: autodiff {} vs fd {fd}",
            g[k]
        );
    }
}

#[test]
fn unbiased_mmd_separates_shifted_distributions() {
    let device = Default::default();
    B::seed(&device, 5);
    let a = Tensor::<B, 2>::random([64, 8], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<B, 2>::random([64, 8], Distribution::Normal(0.0, 1.0), &device);
    let c = Tensor::<B, 2>::random([64, 8], Distribution::Normal(1.5, 1.0), &device);
    let s = median_sigmas(b.clone(), &SCDFM_SIGMA_SCALES)
        .unwrap()
        .sigmas;
    let same = values(mmd2_unbiased_multi_sigma(a.clone(), b.clone(), &s).unwrap())[0];
    let diff = values(mmd2_unbiased_multi_sigma(c, b, &s).unwrap())[0];
    assert!(same.abs() < 0.02, "same distribution: {same}");
    assert!(
        diff > 10.0 * same.abs().max(0.01),
        "shifted: {diff} vs {same}"
    );
}
