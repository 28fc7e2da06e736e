//! The `ccfm` binary's backend: the one `ccfm::backend` selects from the cargo features
//! (forwarded to the `ccfm` package), its devices and the version line.

pub use ccfm::backend::{compiled, Selected, SelectedAutodiff, NAME};

use crate::error::CliResult;

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("build ccfm-cli with at least one backend feature: flex, ndarray, wgpu or cuda");

/// The device of the selected backend: GPU number `index` (`--device`), or the CPU.
pub fn device(index: Option<usize>) -> CliResult<burn::tensor::Device<Selected>> {
    Ok(ccfm::backend::device(index)?)
}

/// The device number of one rank of a data-parallel run: `--device` when given, else on a GPU
/// build the rank's place on its node (one process per GPU), else the CPU.
pub fn rank_device(explicit: Option<usize>, world: usize) -> Option<usize> {
    explicit.or_else(|| {
        (ccfm::backend::GPU && world > 1)
            .then(|| ccfm_train::distributed::Launch::from_env().local_rank)
    })
}

/// `ccfm --version`: the version and the backends compiled in.
pub fn version() -> String {
    format!(
        "{} (backends: {}; selected: {NAME}{})",
        env!("CARGO_PKG_VERSION"),
        compiled().join(", "),
        if cfg!(feature = "mpi") {
            "; data-parallel: mpi"
        } else {
            ""
        }
    )
}
