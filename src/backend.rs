//! The backend chosen by this build's cargo features, for the `ccfm` binary (`ccfm-cli` uses
//! this module), the examples, benches and tests. The library crates never choose one; this
//! is the only place in the workspace that does.
//!
//! Priority when several are enabled: `cuda`, then `wgpu`, then `flex`, then `ndarray`.

#[cfg(feature = "cuda")]
mod chosen {
    pub type Backend = burn::backend::Cuda;
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    pub type Backend = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    pub type Backend = burn::backend::Flex;
    pub const NAME: &str = "flex";
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    pub type Backend = burn::backend::NdArray;
    pub const NAME: &str = "ndarray";
}

#[cfg(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
))]
pub use chosen::{Backend as Selected, NAME};

/// The selected backend with automatic differentiation, for training.
#[cfg(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
))]
pub type SelectedAutodiff = burn::backend::Autodiff<Selected>;

/// Every backend this build was compiled with, in priority order.
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
