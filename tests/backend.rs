//! The root crate's re-exports and backend selection work together.

use burn::tensor::{Tensor, TensorData};
use ccfm::backend::{Selected, NAME};
use ccfm::flow::{AffineProbPath, CondOt};
use ccfm_testkit::{assert_close, values};

#[test]
fn the_selected_backend_is_the_compiled_one_and_runs_the_flow_path() {
    // GPU features take precedence over the CPU default (src/backend.rs).
    let expected = if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "flex") {
        "flex"
    } else {
        "ndarray"
    };
    assert_eq!(NAME, expected);
    let device = Default::default();
    let x0 = Tensor::<Selected, 2>::from_data(TensorData::new(vec![0.0f32, 2.0], [1, 2]), &device);
    let x1 = Tensor::<Selected, 2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &device);
    let t = Tensor::<Selected, 1>::from_data(TensorData::new(vec![0.25f32], [1]), &device);
    let s = AffineProbPath::new(CondOt).sample(x0, x1, t);
    assert_close("x_t", &values(s.x_t), &[0.25, 1.5], 1e-7);
}
