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

/// The autodiff backend over [`Selected`], for training.
pub type SelectedAutodiff = burn::backend::Autodiff<Selected>;

/// The device of the selected backend: GPU number `index` (`--device`), or the CPU.
pub fn device(index: Option<usize>) -> Result<burn::tensor::Device<Selected>, String> {
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
            Some(i) => Err(format!(
                "--device {i}: this binary runs on the CPU ({NAME}), which has only device 0; \
                 build with --features wgpu or cuda for GPUs"
            )),
        }
    }
}

/// `ccfm --version`: the version and the backends compiled in.
pub fn version() -> String {
    format!(
        "{} (backends: {}; selected: {NAME})",
        env!("CARGO_PKG_VERSION"),
        compiled().join(", ")
    )
}
