//! The one place where the `ccfm` binary maps its cargo features to a concrete Burn backend.
//! Priority when several are compiled in: `cuda`, `wgpu`, `flex`, `ndarray`.

#[cfg(feature = "cuda")]
pub type Selected = burn::backend::Cuda;
#[cfg(feature = "cuda")]
pub const NAME: &str = "cuda";

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Selected = burn::backend::Wgpu;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub const NAME: &str = "wgpu";

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
pub type Selected = burn::backend::Flex;
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
pub const NAME: &str = "flex";

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
pub type Selected = burn::backend::NdArray;
#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
pub const NAME: &str = "ndarray";

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("build ccfm-cli with at least one backend feature: flex, ndarray, wgpu or cuda");

/// Every backend this binary was compiled with, in priority order.
pub fn compiled() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    v
}
