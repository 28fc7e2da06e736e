//! Test support shared by the CCFM crates (a dev-dependency only).
//!
//! * Locating `../shared` beside the workspace, with the skip rule of the project: a test whose
//!   input is missing prints a visible notice and skips, unless `CCFM_REQUIRE_SHARED=1`, where it
//!   fails.
//! * Loading the scDFM parity fixtures (`<case>.safetensors` + `<case>.json`).
//! * Comparing tensors with a max-abs tolerance and a useful failure message.
//! * [`rng_lock`]: one seeded random stream at a time; [`fork_lock`]: files written in-process
//!   and child processes take turns.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// The workspace root (the directory holding the top-level `Cargo.toml`), found from the
/// package under test: cargo sets `CARGO_MANIFEST_DIR` when it runs a test. (The compile-time
/// value would name whichever checkout compiled this crate into a shared target directory.)
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .unwrap_or(&start)
        .to_path_buf()
}

/// `../shared` beside the workspace, or `$CCFM_SHARED_DIR` when set.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CCFM_SHARED_DIR") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("../shared"),
    }
}

/// The `.h5ad` files Python anndata wrote in each schema's layout (tools/gen_h5ad_fixtures.py),
/// names under `tests/fixtures/h5ad/` without the extension.
pub const SCHEMA_FIXTURES: [&str; 4] = [
    "schema_gears",
    "schema_figshare_norman",
    "schema_perturbench",
    "schema_combosciplex",
];

/// The scDFM fixture directory: `$CCFM_SCDFM_FIXTURES`, else `../shared/fixtures/scdfm`.
pub fn scdfm_fixture_dir() -> PathBuf {
    match std::env::var_os("CCFM_SCDFM_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => shared_dir().join("fixtures/scdfm"),
    }
}

/// True when `CCFM_REQUIRE_SHARED=1`: missing shared inputs are failures, not skips.
pub fn shared_required() -> bool {
    std::env::var("CCFM_REQUIRE_SHARED").is_ok_and(|v| v == "1")
}

/// Returns true when `path` exists. Otherwise prints a notice that bypasses the test
/// harness's output capture and returns false (the caller returns early), or panics when
/// [`shared_required`].
pub fn available(path: &Path, test: &str) -> bool {
    if path.exists() {
        return true;
    }
    if shared_required() {
        panic!(
            "{test}: required input {} is missing (CCFM_REQUIRE_SHARED=1)",
            path.display()
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping {test}: {} not found (set CCFM_REQUIRE_SHARED=1 to make this a failure)",
        path.display()
    );
    false
}

/// One tensor of a fixture, widened to f64 or i64 on load.
#[derive(Debug, Clone)]
pub enum FixtureData {
    Float(Vec<f32>),
    Int(Vec<i64>),
    Byte(Vec<u8>),
}

/// A parity case: its named tensors and its JSON description.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub case: String,
    pub json: serde_json::Value,
    tensors: HashMap<String, (Vec<usize>, FixtureData)>,
}

impl Fixture {
    /// Load `<dir>/<case>.safetensors` and `<dir>/<case>.json`.
    pub fn load(dir: &Path, case: &str) -> Fixture {
        let st_path = dir.join(format!("{case}.safetensors"));
        let bytes = std::fs::read(&st_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", st_path.display()));
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", st_path.display()));
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => FixtureData::Float(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                Dtype::I64 => FixtureData::Int(
                    raw.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                Dtype::U8 | Dtype::BOOL => FixtureData::Byte(raw.to_vec()),
                other => panic!("{}: tensor {name} has unsupported dtype {other:?}", case),
            };
            tensors.insert(name, (shape, data));
        }
        let json_path = dir.join(format!("{case}.json"));
        let json = std::fs::read_to_string(&json_path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Fixture {
            case: case.to_string(),
            json,
            tensors,
        }
    }

    /// Names of every tensor, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The value at `key` of the JSON's `config` (the settings the official module was built
    /// with), so that a parity test takes every dimension from the fixture it reads.
    pub fn config(&self, key: &str) -> &serde_json::Value {
        let v = &self.json["config"][key];
        assert!(
            !v.is_null(),
            "fixture {}: its JSON has no config.{key}",
            self.case
        );
        v
    }

    /// `config.<key>` as a size.
    pub fn dim(&self, key: &str) -> usize {
        self.config(key)
            .as_u64()
            .unwrap_or_else(|| panic!("fixture {}: config.{key} is not a size", self.case))
            as usize
    }

    /// `config.<key>` as a number.
    pub fn number(&self, key: &str) -> f64 {
        self.config(key)
            .as_f64()
            .unwrap_or_else(|| panic!("fixture {}: config.{key} is not a number", self.case))
    }

    /// `config.<key>` as a flag.
    pub fn flag(&self, key: &str) -> bool {
        self.config(key)
            .as_bool()
            .unwrap_or_else(|| panic!("fixture {}: config.{key} is not true/false", self.case))
    }

    /// `config.<key>` as text.
    pub fn text(&self, key: &str) -> &str {
        self.config(key)
            .as_str()
            .unwrap_or_else(|| panic!("fixture {}: config.{key} is not text", self.case))
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.get(name).0
    }

    fn get(&self, name: &str) -> &(Vec<usize>, FixtureData) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture {} has no tensor `{name}`", self.case))
    }

    /// A float tensor's values.
    pub fn f32s(&self, name: &str) -> &[f32] {
        match &self.get(name).1 {
            FixtureData::Float(v) => v,
            _ => panic!("fixture {}: `{name}` is not float32", self.case),
        }
    }

    /// An integer tensor's values.
    pub fn i64s(&self, name: &str) -> &[i64] {
        match &self.get(name).1 {
            FixtureData::Int(v) => v,
            _ => panic!("fixture {}: `{name}` is not int64", self.case),
        }
    }

    /// A uint8/bool tensor's values.
    pub fn bytes(&self, name: &str) -> &[u8] {
        match &self.get(name).1 {
            FixtureData::Byte(v) => v,
            _ => panic!("fixture {}: `{name}` is not uint8", self.case),
        }
    }

    /// A uint8/bool tensor as flags (non-zero = true), e.g. a mask stored as uint8.
    pub fn flags(&self, name: &str) -> Vec<bool> {
        self.bytes(name).iter().map(|&v| v != 0).collect()
    }

    /// A float tensor on `device`; its rank must be `D`.
    pub fn float<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let shape = self.shape(name);
        assert_eq!(
            shape.len(),
            D,
            "fixture {}: `{name}` has shape {shape:?}",
            self.case
        );
        Tensor::from_data(
            TensorData::new(self.f32s(name).to_vec(), shape.to_vec()),
            device,
        )
    }

    /// An int64 tensor on `device`; its rank must be `D`.
    pub fn int<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Tensor<B, D, Int> {
        let shape = self.shape(name);
        assert_eq!(
            shape.len(),
            D,
            "fixture {}: `{name}` has shape {shape:?}",
            self.case
        );
        Tensor::from_data(
            TensorData::new(self.i64s(name).to_vec(), shape.to_vec()),
            device,
        )
    }
}

/// Values of a float tensor as f32 (any float dtype is converted).
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("float tensor data")
}

/// Assert `max |actual - expected| <= tol`, naming the quantity, the worst index and values.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} values, expected {}",
        actual.len(),
        expected.len()
    );
    let (worst, diff) = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .enumerate()
        .map(|(i, d)| (i, if d.is_nan() { f32::INFINITY } else { d }))
        .fold((0, 0.0f32), |acc, x| if x.1 > acc.1 { x } else { acc });
    assert!(
        diff <= tol,
        "{what}: max |diff| = {diff:e} > {tol:e} at index {worst} (got {}, expected {})",
        actual[worst],
        expected[worst]
    );
}

/// Burn's CPU backends keep one random stream per process, and `B::seed` resets it for every
/// thread. Tests that seed it and then expect reproducible draws hold this lock, so that tests
/// running in parallel threads do not draw from (or re-seed) each other's stream.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// HDF5 opens files without close-on-exec: a child process started while another test thread
/// has an `.h5ad` open for writing inherits the descriptor, and with it the file's lock, for as
/// long as the child lives (a later `ccfm` then cannot open that file). Tests that write files
/// in-process and tests that start children hold this lock for the write, and for the spawn.
pub fn fork_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start `cmd` under [`fork_lock`] and wait for its output (stdout and stderr captured).
pub fn run_child(cmd: &mut std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let child = {
        let _turn = fork_lock();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
    };
    child
        .and_then(|c| c.wait_with_output())
        .unwrap_or_else(|e| panic!("{cmd:?} could not run: {e}"))
}
