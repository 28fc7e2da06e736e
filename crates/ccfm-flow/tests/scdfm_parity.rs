//! Parity with the official scDFM code, via the recorded fixtures in `../shared/fixtures/scdfm`
//! (or `$CCFM_SCDFM_FIXTURES`): the affine path (case 10b) and the MMD loss helpers (case 10a).
//! The `odeint` case (09) needs the whole model and is tested in `ccfm-model`.

use burn::backend::Flex;
use ccfm_flow::{
    median_sigmas, mmd2_unbiased_multi_sigma, AffineProbPath, CondOt, SCDFM_SIGMA_SCALES,
};
use ccfm_testkit::{assert_close, available, scdfm_fixture_dir, values, Fixture};

type B = Flex;

fn fixture(case: &str, test: &str) -> Option<Fixture> {
    let dir = scdfm_fixture_dir();
    available(&dir.join(format!("{case}.safetensors")), test).then(|| Fixture::load(&dir, case))
}

#[test]
fn affine_path_matches_scdfm() {
    let Some(f) = fixture("10b_affine_path", "affine_path_matches_scdfm") else {
        return;
    };
    let device = Default::default();
    let path = AffineProbPath::new(CondOt);
    let s = path.sample(
        f.float::<B, 2>("input.x0", &device),
        f.float::<B, 2>("input.x1", &device),
        f.float::<B, 1>("input.t", &device),
    );
    assert_close("x_t", &values(s.x_t), f.f32s("output.x_t"), 1e-6);
    assert_close("dx_t", &values(s.dx_t), f.f32s("output.dx_t"), 1e-6);
}

#[test]
fn mmd_matches_scdfm() {
    let Some(f) = fixture("10a_mmd", "mmd_matches_scdfm") else {
        return;
    };
    let device = Default::default();
    let x = f.float::<B, 2>("input.x1_hat", &device);
    let y = f.float::<B, 2>("input.target", &device);
    let scales: Vec<f64> = f.json["config"]["scales"]
        .as_array()
        .expect("config.scales")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect();
    // The fixture's scales are those the official run.py uses, which the loss takes by default.
    assert_eq!(scales, SCDFM_SIGMA_SCALES, "config.scales");
    let sig = median_sigmas(y.clone(), &scales).unwrap();
    let median = f.f32s("output.median_sq_dist")[0];
    assert!(
        (sig.median_sq_dist as f32 - median).abs() <= 1e-5 * median.abs().max(1.0),
        "median {} vs {median}",
        sig.median_sq_dist
    );
    let sigmas: Vec<f32> = sig.sigmas.iter().map(|&s| s as f32).collect();
    assert_close("sigmas", &sigmas, f.f32s("output.sigmas"), 1e-5);
    let mmd = mmd2_unbiased_multi_sigma(x, y, &sig.sigmas).unwrap();
    assert_close("mmd2", &values(mmd), f.f32s("output.mmd2"), 1e-5);
}
