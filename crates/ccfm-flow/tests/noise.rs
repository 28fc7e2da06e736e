use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ccfm_flow::{gaussian_like, poisson_noise, FlowError, PoissonNoise};
use ccfm_testkit::values;
use rand::{rngs::StdRng, SeedableRng};

type B = Flex;

fn control(rows: &[[f32; 3]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &Default::default())
}

fn mean_counts(noise: &PoissonNoise, x: Tensor<B, 2>, reps: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(1);
    let n = x.dims().iter().product::<usize>();
    let mut acc = vec![0.0f64; n];
    for _ in 0..reps {
        let v = values(poisson_noise(x.clone(), noise, &mut rng).unwrap());
        for (a, v) in acc.iter_mut().zip(v) {
            *a += (v as f64).exp_m1(); // back to counts
        }
    }
    acc.iter().map(|a| a / reps as f64).collect()
}

#[test]
fn alpha_branch_has_mean_alpha_times_counts() {
    // log1p values of counts 0, 3, 10.
    let x = control(&[[0.0, 3f32.ln_1p(), 10f32.ln_1p()]]);
    let m = mean_counts(
        &PoissonNoise {
            library_size: None,
            alpha: 2.0,
        },
        x,
        4000,
    );
    assert!(m[0] < 1e-3, "zero counts stay (almost) zero: {}", m[0]);
    assert!((m[1] - 6.0).abs() < 0.25, "{}", m[1]);
    assert!((m[2] - 20.0).abs() < 0.5, "{}", m[2]);
}

#[test]
fn library_size_branch_rescales_each_cell() {
    let x = control(&[
        [1f32.ln_1p(), 1f32.ln_1p(), 2f32.ln_1p()],
        [0.0, 5f32.ln_1p(), 5f32.ln_1p()],
    ]);
    let noise = PoissonNoise {
        library_size: Some(40.0),
        alpha: 1.0,
    };
    let m = mean_counts(&noise, x, 3000);
    let expected = [10.0, 10.0, 20.0, 0.0, 20.0, 20.0];
    for (a, e) in m.iter().zip(expected) {
        assert!((a - e).abs() < 0.5, "{m:?}");
    }
}

#[test]
fn the_reference_default_of_minus_one_is_refused() {
    let x = control(&[[1.0, 2.0, 3.0]]);
    let mut rng = StdRng::seed_from_u64(0);
    let bad = PoissonNoise {
        library_size: Some(-1.0),
        alpha: 1.0,
    };
    assert!(matches!(
        poisson_noise(x, &bad, &mut rng),
        Err(FlowError::InvalidParameter {
            name: "library_size",
            ..
        })
    ));
}

#[test]
fn poisson_noise_is_reproducible_from_the_seed() {
    let x = control(&[[1.0, 2.0, 3.0], [0.5, 0.0, 4.0]]);
    let n = PoissonNoise::default();
    let a = values(poisson_noise(x.clone(), &n, &mut StdRng::seed_from_u64(5)).unwrap());
    let b = values(poisson_noise(x, &n, &mut StdRng::seed_from_u64(5)).unwrap());
    assert_eq!(a, b);
}

#[test]
fn gaussian_noise_is_standard_normal() {
    let x = Tensor::<B, 2>::zeros([200, 100], &Default::default());
    let v = values(gaussian_like(&x));
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.03 && (var - 1.0).abs() < 0.03,
        "mean {mean} var {var}"
    );
}
