//! Loading scDFM state dicts (PyTorch key names, safetensors files) into the layers.
//!
//! The modules' field paths are the PyTorch keys, except where PyTorch numbers the children
//! of an `nn.Sequential`; those become named fields:
//!
//! | PyTorch key | Burn field path |
//! |---|---|
//! | `t_embedder.mlp.0`, `.mlp.2` | `t_embedder.mlp_0`, `.mlp_2` |
//! | `*.adaLN_modulation.1` | `*.adaLN_modulation_1` |
//! | `final_layer.fc.{0,2,4}` | `final_layer.fc_{0,2,4}` |
//! | `fusion_layer.{0,2,3}` | `fusion_layer.layer_{0,2,3}` |
//! | `adapter_layer.i.{0,3}` | `adapter_layer.i.layer_{0,3}` |
//! | `p_head.{0,1}` | `p_head_{0,1}` |
//! | `latent_embedder.proj.{0,2}`, `latent_decoder.final.{0,1,3}` | `proj_{0,2}`, `final_{0,1,3}` (under `latent.` in `CascadedFlowModel`) |
//!
//! Linear weights are transposed and LayerNorm `weight`/`bias` become `gamma`/`beta` on the way
//! in (Burn's PyTorch adapter). A key the module lacks is reported as unused; a parameter the
//! file lacks, or a shape that differs, is an error naming it.

use std::path::{Path, PathBuf};

use burn::store::{
    KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::backend::Backend;
use thiserror::Error;

/// What a successful load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Module parameters set from the file.
    pub applied: Vec<String>,
    /// Keys of the file (after remapping) that no parameter took.
    pub unused: Vec<String>,
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{path}: cannot read the checkpoint: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: parameters missing from the checkpoint: {}", .keys.join(", "))]
    Missing { path: PathBuf, keys: Vec<String> },
    #[error("{path}: {}", .errors.join("; "))]
    Mismatch { path: PathBuf, errors: Vec<String> },
}

/// The key mapping from scDFM's PyTorch names to this crate's field paths, after removing
/// `strip_prefix` (e.g. `"param."` in the parity fixtures; `""` for a plain state dict).
pub fn scdfm_key_remapper(strip_prefix: &str) -> KeyRemapper {
    let mut patterns: Vec<(String, String)> = Vec::new();
    if !strip_prefix.is_empty() {
        patterns.push((format!("^{}", regex_escape(strip_prefix)), String::new()));
    }
    patterns.push((
        r"(^|\.)(adapter_layer\.\d+|fusion_layer)\.(\d+)\.".into(),
        "${1}${2}.layer_${3}.".into(),
    ));
    patterns.push((
        r"(^|\.)(mlp|adaLN_modulation|fc|p_head|proj|final)\.(\d+)\.".into(),
        "${1}${2}_${3}.".into(),
    ));
    KeyRemapper::from_patterns(patterns).expect("the remapping patterns are valid regexes")
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// Load the parameters of `module` from a safetensors file holding an scDFM state dict whose
/// keys start with `strip_prefix`. Every parameter of `module` must be present.
pub fn load_scdfm_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    module: &mut M,
    path: &Path,
    strip_prefix: &str,
) -> Result<LoadReport, LoadError> {
    let mut store = SafetensorsStore::from_file(path)
        .remap(scdfm_key_remapper(strip_prefix))
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(true);
    load_from_store(module, &mut store, path)
}

/// Apply `store` (configured with its remapping and the PyTorch adapter, partial loads
/// allowed) to `module`: every parameter of `module` must be found with its shape; file keys
/// no parameter took are reported. `path` names the file in errors.
pub fn load_from_store<B: Backend, M: ModuleSnapshot<B>, S: ModuleStore>(
    module: &mut M,
    store: &mut S,
    path: &Path,
) -> Result<LoadReport, LoadError> {
    let result = module.load_from(store).map_err(|e| LoadError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if !result.errors.is_empty() {
        return Err(LoadError::Mismatch {
            path: path.to_path_buf(),
            errors: result.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    if !result.missing.is_empty() {
        return Err(LoadError::Missing {
            path: path.to_path_buf(),
            keys: result.missing.iter().map(|(k, _)| k.clone()).collect(),
        });
    }
    // The store lists a LayerNorm `weight`/`bias` as unused even when it was applied under
    // Burn's name (`gamma`/`beta`); only report keys that really found no parameter.
    let applied = result.applied;
    let taken = |alt: String| applied.contains(&alt);
    let unused = result
        .unused
        .into_iter()
        .filter(|k| {
            let alt = k
                .strip_suffix(".weight")
                .map(|p| format!("{p}.gamma"))
                .or_else(|| k.strip_suffix(".bias").map(|p| format!("{p}.beta")));
            !alt.is_some_and(taken)
        })
        .collect();
    Ok(LoadReport { applied, unused })
}
