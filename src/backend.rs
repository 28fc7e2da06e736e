//! The backend chosen by this build's cargo features, for the `ccfm` binary (`ccfm-cli` uses
//! this module), the examples, benches and tests. The library crates never choose one; this
//! is the only place in the workspace that does.
//!
//! Priority when several are enabled: `cuda`, then `wgpu`, then `flex`, then `ndarray`.

#[cfg(feature = "cuda")]
mod chosen {
    pub type Backend = burn::backend::Cuda;
    pub const NAME: &str = "cuda";
    pub const GPU: bool = true;
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    pub type Backend = burn::backend::Wgpu;
    pub const NAME: &str = "wgpu";
    pub const GPU: bool = true;
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    pub type Backend = burn::backend::Flex;
    pub const NAME: &str = "flex";
    pub const GPU: bool = false;
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    pub type Backend = burn::backend::NdArray;
    pub const NAME: &str = "ndarray";
    pub const GPU: bool = false;
}

#[cfg(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
))]
/// `GPU`: whether the selected backend runs on GPUs (numbered devices).
pub use chosen::{Backend as Selected, GPU, NAME};

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

/// `--device N` names a device this build does not have.
#[derive(Debug)]
pub struct NoSuchDevice {
    pub index: usize,
}

impl std::fmt::Display for NoSuchDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--device {}: this build runs on the CPU ({NAME}), which has only device 0; \
             build with --features wgpu or cuda for GPUs",
            self.index
        )
    }
}

impl std::error::Error for NoSuchDevice {}

#[cfg(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
))]
/// The device of the selected backend: GPU number `index` (`--device`), or the CPU.
pub fn device(index: Option<usize>) -> Result<burn::tensor::Device<Selected>, NoSuchDevice> {
    #[cfg(feature = "cuda")]
    {
        Ok(burn::backend::cuda::CudaDevice::new(index.unwrap_or(0)))
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        use burn::backend::wgpu::WgpuDevice;
        Ok(match index {
            None => WgpuDevice::DefaultDevice,
            Some(i) => WgpuDevice::DiscreteGpu(i),
        })
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        match index {
            None | Some(0) => Ok(Default::default()),
            Some(index) => Err(NoSuchDevice { index }),
        }
    }
}
