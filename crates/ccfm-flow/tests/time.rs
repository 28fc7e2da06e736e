use burn::backend::Flex;
use burn::tensor::backend::Backend;
use ccfm_flow::{CascadedTimeSampler, FlowError, TimeSampler};
use ccfm_testkit::values;

type B = Flex;

#[test]
fn cascaded_sampler_splits_batch_into_latent_and_expression_samples() {
    let device = Default::default();
    B::seed(&device, 7);
    let n = 20_000;
    let s = CascadedTimeSampler::default();
    let out = s.sample::<B>(n, &device);
    let mask: Vec<bool> = out.latent_mask().into_data().to_vec::<bool>().unwrap();
    let (te, tl, we, wl) = (
        values(out.t_expr),
        values(out.t_latent),
        values(out.w_expr),
        values(out.w_latent),
    );
    let mut latent = 0usize;
    for i in 0..n {
        assert_eq!(we[i] + wl[i], 1.0, "weights are complementary");
        if mask[i] {
            latent += 1;
            assert_eq!(wl[i], 1.0);
            assert_eq!(te[i], 0.0, "latent samples see pure expression noise");
            assert!((0.0..=1.0).contains(&tl[i]));
        } else {
            assert_eq!(we[i], 1.0);
            assert_eq!(
                tl[i], 1.0,
                "expression samples see a clean latent by default"
            );
            assert!((0.0..=1.0).contains(&te[i]));
        }
    }
    let frac = latent as f64 / n as f64;
    // Binomial(20000, 0.4): sd 0.0035; 6 sd.
    assert!((frac - 0.4).abs() < 0.021, "latent fraction {frac}");
    // Uniform times on latent samples have mean 1/2.
    let mean_tl: f64 = (0..n)
        .filter(|&i| mask[i])
        .map(|i| tl[i] as f64)
        .sum::<f64>()
        / latent as f64;
    assert!((mean_tl - 0.5).abs() < 0.02, "mean latent time {mean_tl}");
}

#[test]
fn noised_latent_mode_draws_latent_time_in_range() {
    let device = Default::default();
    B::seed(&device, 8);
    let s = CascadedTimeSampler {
        latent_noise_min: 0.75,
        ..Default::default()
    };
    let out = s.sample::<B>(5000, &device);
    let mask: Vec<bool> = out.latent_mask().into_data().to_vec::<bool>().unwrap();
    let tl = values(out.t_latent);
    let expr: Vec<f32> = (0..5000).filter(|&i| !mask[i]).map(|i| tl[i]).collect();
    assert!(expr.iter().all(|&t| (0.75..=1.0).contains(&t)));
    let mean = expr.iter().map(|&t| t as f64).sum::<f64>() / expr.len() as f64;
    assert!((mean - 0.875).abs() < 0.01, "mean {mean}");
    assert!(expr.iter().any(|&t| t < 0.99), "not all clean");
}

#[test]
fn extreme_probabilities_give_single_kind_batches() {
    let device = Default::default();
    for (p, latent) in [(0.0, false), (1.0, true)] {
        let s = CascadedTimeSampler {
            choose_latent_p: p,
            ..Default::default()
        };
        let m: Vec<bool> = s
            .sample::<B>(500, &device)
            .latent_mask()
            .into_data()
            .to_vec()
            .unwrap();
        assert!(m.iter().all(|&x| x == latent), "p = {p}");
    }
}

#[test]
fn logit_normal_has_the_right_median() {
    let device = Default::default();
    B::seed(&device, 9);
    let (mean, std) = (-1.2, 1.0);
    let mut t = values(TimeSampler::LogitNormal { mean, std }.sample::<B>(20_001, &device));
    t.sort_by(f32::total_cmp);
    let median = t[10_000] as f64;
    let expected = 1.0 / (1.0 + (-mean).exp());
    assert!(
        (median - expected).abs() < 0.01,
        "median {median} vs {expected}"
    );
    assert!(t.iter().all(|&x| x > 0.0 && x < 1.0));
}

#[test]
fn invalid_parameters_are_rejected_by_name() {
    let bad = CascadedTimeSampler {
        choose_latent_p: 1.5,
        ..Default::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(FlowError::InvalidParameter {
            name: "choose_latent_p",
            ..
        })
    ));
    let bad = CascadedTimeSampler {
        latent: TimeSampler::LogitNormal {
            mean: 0.0,
            std: 0.0,
        },
        ..Default::default()
    };
    // The cascaded sampler names the stream of the parameter.
    assert!(matches!(
        bad.validate(),
        Err(FlowError::InvalidParameter {
            name: "latent.std",
            ..
        })
    ));
    assert!(CascadedTimeSampler::default().validate().is_ok());
}
