//! The distribution metrics beyond cell-eval: CellFlow's RBF MMD equals ccfm-flow's tensor
//! version (itself checked against CellFlow's formula), and the E-distance equals its pairwise
//! definition.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use ccfm_eval::metrics::{cellflow_e_distance, cellflow_mmd, MMD_GAMMAS};

fn data(n: usize, g: usize, seed: u32) -> Vec<f32> {
    (0..n * g)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 400.0
        })
        .collect()
}

#[test]
fn mmd_equals_the_tensor_implementation() {
    let (g, m, n) = (7, 12, 9);
    let (x, y) = (data(m, g, 1), data(n, g, 99));
    let a: Vec<usize> = (0..m).collect();
    let b: Vec<usize> = (0..n).collect();
    let ours = cellflow_mmd(&x, &a, &y, &b, g);
    let dev = Default::default();
    let tx = Tensor::<Flex, 2>::from_data(TensorData::new(x.clone(), [m, g]), &dev);
    let ty = Tensor::<Flex, 2>::from_data(TensorData::new(y.clone(), [n, g]), &dev);
    assert_eq!(
        MMD_GAMMAS,
        ccfm_flow::CELLFLOW_GAMMAS,
        "one list of kernels"
    );
    let theirs: f32 = ccfm_flow::mmd::rbf_mmd(tx, ty, &MMD_GAMMAS)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap()[0];
    assert!((ours - theirs as f64).abs() < 1e-5, "{ours} vs {theirs}");
    assert!(ours > 0.0);
    assert_eq!(MMD_GAMMAS.as_slice(), ccfm_flow::CELLFLOW_GAMMAS.as_slice());
}

#[test]
fn e_distance_is_its_pairwise_definition() {
    let (g, m, n) = (5, 8, 6);
    let (x, y) = (data(m, g, 3), data(n, g, 7));
    let a: Vec<usize> = (0..m).collect();
    let b: Vec<usize> = (0..n).collect();
    let sq = |p: &[f32], i: usize, q: &[f32], j: usize| -> f64 {
        (0..g)
            .map(|k| (p[i * g + k] as f64 - q[j * g + k] as f64).powi(2))
            .sum()
    };
    let mean = |p: &[f32], ia: &[usize], q: &[f32], ib: &[usize]| -> f64 {
        let mut s = 0.0;
        for &i in ia {
            for &j in ib {
                s += sq(p, i, q, j);
            }
        }
        s / (ia.len() * ib.len()) as f64
    };
    let direct = 2.0 * mean(&x, &a, &y, &b) - mean(&x, &a, &x, &a) - mean(&y, &b, &y, &b);
    let ours = cellflow_e_distance(&x, &a, &y, &b, g);
    assert!((ours - direct).abs() < 1e-10, "{ours} vs {direct}");
}
