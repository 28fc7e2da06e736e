use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ccfm_flow::{integrate, FlowError, OdeMethod, TimeGrid};
use ccfm_testkit::values;

type B = Flex;

const ALL: [OdeMethod; 5] = [
    OdeMethod::Euler,
    OdeMethod::Midpoint,
    OdeMethod::Heun,
    OdeMethod::Rk4,
    OdeMethod::Rk4ThreeEighths,
];

fn scalar(v: f32) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(vec![v], [1]), &Default::default())
}

/// Solve dx/dt = x on [0, 1] from x = 1; the error against e.
fn exp_error(method: OdeMethod, steps: usize) -> f64 {
    let grid = TimeGrid::uniform(steps).unwrap();
    let sol = integrate(|x: Tensor<B, 1>, _t| x, scalar(1.0), &grid, method, false);
    (values(sol.final_state)[0] as f64 - std::f64::consts::E).abs()
}

#[test]
fn each_method_converges_at_its_order() {
    for (method, order) in [
        (OdeMethod::Euler, 1.0),
        (OdeMethod::Midpoint, 2.0),
        (OdeMethod::Heun, 2.0),
        (OdeMethod::Rk4, 4.0),
        (OdeMethod::Rk4ThreeEighths, 4.0),
    ] {
        // Coarse grids keep the RK4 errors far above f32 round-off.
        let (coarse, fine) = (exp_error(method, 2), exp_error(method, 4));
        let observed = (coarse / fine).log2();
        assert!(
            (observed - order).abs() < 0.45,
            "{method:?}: observed order {observed:.2}, expected {order}"
        );
    }
}

#[test]
fn time_dependent_velocity_is_integrated_exactly_by_rk4() {
    // dx/dt = 4 t^3 gives x(1) - x(0) = 1; both RK4 variants are exact for cubic velocities.
    for method in [OdeMethod::Rk4, OdeMethod::Rk4ThreeEighths] {
        let grid = TimeGrid::linspace(0.0, 1.0, 4).unwrap();
        let sol = integrate(
            |x: Tensor<B, 1>, t| x.zeros_like().add_scalar(4.0 * t.powi(3)),
            scalar(0.5),
            &grid,
            method,
            true,
        );
        assert!(
            (values(sol.final_state)[0] - 1.5).abs() < 1e-6,
            "{method:?}"
        );
        assert_eq!(sol.trajectory.len(), 4);
        assert_eq!(values(sol.trajectory[0].clone())[0], 0.5);
        assert!((values(sol.trajectory[1].clone())[0] - (0.5 + 1.0 / 81.0)).abs() < 1e-6);
    }
}

#[test]
fn three_eighths_rule_step_matches_hand_computation() {
    // One step of torchdiffeq's rk4 on dx/dt = t * x^2 from x = 0.5, t in [0.2, 0.7], in f64.
    let f = |t: f64, x: f64| t * x * x;
    let (t0, dt, y) = (0.2f64, 0.5f64, 0.5f64);
    let k1 = f(t0, y);
    let k2 = f(t0 + dt / 3.0, y + dt * k1 / 3.0);
    let k3 = f(t0 + 2.0 * dt / 3.0, y + dt * (k2 - k1 / 3.0));
    let k4 = f(t0 + dt, y + dt * (k1 - k2 + k3));
    let expected = y + (k1 + 3.0 * (k2 + k3) + k4) * dt * 0.125;
    let grid = TimeGrid::new(vec![0.2, 0.7]).unwrap();
    let mut calls = Vec::new();
    let sol = integrate(
        |x: Tensor<B, 1>, t| {
            calls.push(t);
            x.powi_scalar(2).mul_scalar(t)
        },
        scalar(0.5),
        &grid,
        OdeMethod::Rk4ThreeEighths,
        false,
    );
    assert!((values(sol.final_state)[0] as f64 - expected).abs() < 1e-6);
    let want = [0.2, 0.2 + 0.5 / 3.0, 0.2 + 1.0 / 3.0, 0.7];
    assert_eq!(calls.len(), 4);
    for (c, w) in calls.iter().zip(want) {
        assert!((c - w).abs() < 1e-12, "{calls:?}");
    }
    assert_eq!(sol.nfe, 4);
}

#[test]
fn evaluation_counts_match_scdfm_inference() {
    // scDFM: linspace(0, 1, 20) with rk4 = 19 steps, 76 evaluations.
    let grid = TimeGrid::linspace(0.0, 1.0, 20).unwrap();
    let mut n = 0;
    let sol = integrate(
        |x: Tensor<B, 1>, _| {
            n += 1;
            x
        },
        scalar(1.0),
        &grid,
        OdeMethod::Rk4ThreeEighths,
        false,
    );
    assert_eq!((n, sol.nfe), (76, 76));
    for m in ALL {
        let steps = TimeGrid::uniform(3).unwrap();
        let s = integrate(|x: Tensor<B, 1>, _| x, scalar(1.0), &steps, m, false);
        assert_eq!(s.nfe, 3 * m.evaluations_per_step());
    }
}

#[test]
fn method_names_parse() {
    assert_eq!(OdeMethod::from_name("rk4"), Some(OdeMethod::Rk4));
    assert_eq!(
        OdeMethod::from_name("torchdiffeq_rk4"),
        Some(OdeMethod::Rk4ThreeEighths)
    );
    assert_eq!(OdeMethod::from_name("heun"), Some(OdeMethod::Heun));
    assert_eq!(OdeMethod::from_name("dopri5"), None);
    // One spelling everywhere: serde reads and writes the same names as from_name.
    for m in OdeMethod::ALL {
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{}\"", m.name()));
        assert_eq!(serde_json::from_str::<OdeMethod>(&json).unwrap(), m);
        assert_eq!(OdeMethod::from_name(m.name()), Some(m));
    }
    assert_eq!(
        serde_json::from_str::<OdeMethod>("\"rk4_three_eighths\"").unwrap(),
        OdeMethod::Rk4ThreeEighths
    );
}

#[test]
fn bad_grids_are_rejected() {
    assert!(matches!(
        TimeGrid::new(vec![0.0]),
        Err(FlowError::InvalidGrid(_))
    ));
    assert!(matches!(
        TimeGrid::new(vec![0.0, 0.5, 0.5]),
        Err(FlowError::InvalidGrid(_))
    ));
    assert!(matches!(
        TimeGrid::new(vec![0.0, f64::NAN]),
        Err(FlowError::InvalidGrid(_))
    ));
    assert!(TimeGrid::linspace(0.0, 1.0, 1).is_err());
    assert_eq!(
        TimeGrid::uniform(4).unwrap().points(),
        &[0.0, 0.25, 0.5, 0.75, 1.0]
    );
}
