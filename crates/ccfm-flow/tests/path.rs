use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor, TensorData};
use ccfm_flow::{AffineProbPath, CondOt, Cosine};
use ccfm_testkit::{assert_close, values};

type B = Flex;

fn rand3(seed: u64) -> Tensor<B, 3> {
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, seed);
    Tensor::random([4, 5, 3], Distribution::Normal(0.0, 1.0), &device)
}

#[test]
fn condot_interpolates_and_hits_endpoints_for_rank_3() {
    let device = Default::default();
    let (x0, x1) = (rand3(1), rand3(2));
    let t = Tensor::<B, 1>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.25, 0.5], [4]), &device);
    let s = AffineProbPath::new(CondOt).sample(x0.clone(), x1.clone(), t);
    let (xt, v) = (values(s.x_t), values(s.dx_t));
    let (a, b) = (values(x0), values(x1));
    let per = 15;
    for (i, &tt) in [0.0f32, 1.0, 0.25, 0.5].iter().enumerate() {
        for k in i * per..(i + 1) * per {
            assert!((xt[k] - ((1.0 - tt) * a[k] + tt * b[k])).abs() < 1e-6);
            assert!((v[k] - (b[k] - a[k])).abs() < 1e-6);
        }
    }
}

#[test]
fn cosine_path_derivative_matches_finite_difference() {
    let device = Default::default();
    let (x0, x1) = (rand3(3), rand3(4));
    let path = AffineProbPath::new(Cosine);
    let h = 1e-3f32;
    let t = [0.1f32, 0.4, 0.7, 0.9];
    let mk = |d: f32| {
        Tensor::<B, 1>::from_data(TensorData::new(t.map(|x| x + d).to_vec(), [4]), &device)
    };
    let s = path.sample(x0.clone(), x1.clone(), mk(0.0));
    let plus = values(path.sample(x0.clone(), x1.clone(), mk(h)).x_t);
    let minus = values(path.sample(x0.clone(), x1.clone(), mk(-h)).x_t);
    let fd: Vec<f32> = plus
        .iter()
        .zip(&minus)
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect();
    assert_close("cosine dx_t", &values(s.dx_t), &fd, 2e-3);
    // Endpoints: t = 0 gives x0 and t = 1 gives x1.
    let zero = Tensor::<B, 1>::zeros([4], &device);
    assert_close(
        "cosine t=0",
        &values(path.sample(x0.clone(), x1.clone(), zero).x_t),
        &values(x0.clone()),
        1e-6,
    );
    let one = Tensor::<B, 1>::ones([4], &device);
    assert_close(
        "cosine t=1",
        &values(path.sample(x0, x1.clone(), one).x_t),
        &values(x1),
        1e-6,
    );
}

#[test]
fn data_prediction_and_endpoint_conversions_invert_the_path() {
    let device = Default::default();
    let (x0, x1) = (rand3(5), rand3(6));
    let t = Tensor::<B, 1>::from_data(TensorData::new(vec![0.0f32, 0.3, 0.6, 0.9], [4]), &device);
    for path_is_cosine in [false, true] {
        let (s, v_from_x1, x1_from_v) = if path_is_cosine {
            let p = AffineProbPath::new(Cosine);
            let s = p.sample(x0.clone(), x1.clone(), t.clone());
            let v = p.velocity_from_data_prediction(x1.clone(), s.x_t.clone(), t.clone(), 0.0);
            let e = p.endpoint_from_velocity(s.dx_t.clone(), s.x_t.clone(), t.clone());
            (s, v, e)
        } else {
            let p = AffineProbPath::new(CondOt);
            let s = p.sample(x0.clone(), x1.clone(), t.clone());
            let v = p.velocity_from_data_prediction(x1.clone(), s.x_t.clone(), t.clone(), 0.0);
            let e = p.endpoint_from_velocity(s.dx_t.clone(), s.x_t.clone(), t.clone());
            (s, v, e)
        };
        assert_close(
            "v from clean x1",
            &values(v_from_x1),
            &values(s.dx_t.clone()),
            1e-5,
        );
        assert_close(
            "x1 from true v",
            &values(x1_from_v),
            &values(x1.clone()),
            1e-5,
        );
    }
}

#[test]
fn data_prediction_divisor_is_clamped_near_t_equal_one() {
    let device = Default::default();
    let x1_hat = Tensor::<B, 2>::ones([1, 2], &device);
    let x_t = Tensor::<B, 2>::zeros([1, 2], &device);
    let t = Tensor::<B, 1>::ones([1], &device);
    let v = AffineProbPath::new(CondOt).velocity_from_data_prediction(x1_hat, x_t, t, 0.05);
    assert_close("clamped", &values(v), &[20.0, 20.0], 1e-4);
}
