//! Reading the layout of `.h5ad` files (anndata >= 0.8 on-disk format).

use std::path::{Path, PathBuf};

use hdf5::{File, Group};

use crate::anndata::{string_attr, string_list_attr};

use crate::DataError;

/// What an `.h5ad` file holds, read without loading the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H5adSummary {
    pub n_obs: usize,
    pub n_vars: usize,
    /// `array` (dense), `csr_matrix` or `csc_matrix`.
    pub x_encoding: String,
    /// Stored element type of X's values, e.g. `float32`.
    pub x_dtype: String,
    /// Non-zeros stored (sparse X) or `n_obs * n_vars` (dense X).
    pub x_stored: usize,
    /// `obs` columns in their stored order.
    pub obs_columns: Vec<String>,
    /// `var` columns in their stored order.
    pub var_columns: Vec<String>,
    /// Names under `layers/`.
    pub layers: Vec<String>,
}

fn dtype_name(ds: &hdf5::Dataset) -> String {
    use hdf5::types::{FloatSize, TypeDescriptor as T};
    match ds.dtype().and_then(|d| d.to_descriptor()) {
        Ok(T::Float(FloatSize::U4)) => "float32".into(),
        Ok(T::Float(FloatSize::U8)) => "float64".into(),
        Ok(T::Integer(s)) => format!("int{}", s as usize * 8),
        Ok(T::Unsigned(s)) => format!("uint{}", s as usize * 8),
        Ok(T::Boolean) => "bool".into(),
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The number of rows of a dataframe group (`obs` or `var`): the length of its index.
fn dataframe_rows(path: &Path, group: &Group, name: &str) -> Result<usize, DataError> {
    let index = string_attr(group, "_index").ok_or_else(|| DataError::Missing {
        path: path.to_path_buf(),
        field: format!("{name}/@_index"),
        hint: "a dataframe group names its index column in the `_index` attribute",
    })?;
    let ds = group.dataset(&index).map_err(|_| DataError::Missing {
        path: path.to_path_buf(),
        field: format!("{name}/{index}"),
        hint: "the index column named by `_index`",
    })?;
    Ok(ds.shape().first().copied().unwrap_or(0))
}

/// How X is stored: its encoding, value type, stored entries and shape.
struct XLayout {
    encoding: String,
    dtype: String,
    stored: usize,
    shape: Vec<usize>,
}

/// The layout of X: a dense dataset or a CSR / CSC group.
fn x_layout(path: &Path, file: &File) -> Result<XLayout, DataError> {
    if let Ok(ds) = file.dataset("X") {
        let shape = ds.shape();
        return Ok(XLayout {
            encoding: "array".to_string(),
            dtype: dtype_name(&ds),
            stored: shape.iter().product(),
            shape,
        });
    }
    match file.group("X") {
        Ok(x) => sparse_x_layout(path, &x),
        Err(_) => Err(DataError::Missing {
            path: path.to_path_buf(),
            field: "X".into(),
            hint: "the expression matrix; write it with anndata",
        }),
    }
}

/// The layout of a sparse X group (`csr_matrix` or `csc_matrix`).
fn sparse_x_layout(path: &Path, x: &Group) -> Result<XLayout, DataError> {
    let encoding = string_attr(x, "encoding-type").unwrap_or_default();
    if encoding != "csr_matrix" && encoding != "csc_matrix" {
        return Err(DataError::UnsupportedEncoding {
            path: path.to_path_buf(),
            field: "X".into(),
            encoding,
            supported: "array, csr_matrix, csc_matrix",
        });
    }
    let shape: Vec<usize> = x
        .attr("shape")
        .and_then(|a| a.read_raw::<i64>())
        .map(|v| v.into_iter().map(|d| d.max(0) as usize).collect())
        .map_err(|e| DataError::Malformed {
            path: path.to_path_buf(),
            field: "X/@shape".into(),
            detail: e.to_string(),
        })?;
    let data = x.dataset("data").map_err(|_| DataError::Missing {
        path: path.to_path_buf(),
        field: "X/data".into(),
        hint: "a sparse matrix stores its values in `data`",
    })?;
    Ok(XLayout {
        encoding,
        dtype: dtype_name(&data),
        stored: data.shape().first().copied().unwrap_or(0),
        shape,
    })
}

/// The names under `layers/`, sorted (none when there is no `layers` group).
fn layer_names(file: &File) -> Vec<String> {
    match file.group("layers") {
        Ok(g) => {
            let mut v = g.member_names().unwrap_or_default();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

impl H5adSummary {
    /// Read the layout of the `.h5ad` at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let p = || -> PathBuf { path.to_path_buf() };
        if !path.exists() {
            return Err(DataError::NotFound { path: p() });
        }
        crate::anndata::refuse_stuck_heap(path)?;
        let file = File::open(path).map_err(|source| DataError::Open { path: p(), source })?;
        let group = |name: &str, hint: &'static str| {
            file.group(name).map_err(|_| DataError::Missing {
                path: p(),
                field: name.to_string(),
                hint,
            })
        };
        let obs = group("obs", "every AnnData file has an `obs` dataframe")?;
        let var = group("var", "every AnnData file has a `var` dataframe")?;
        let n_obs = dataframe_rows(path, &obs, "obs")?;
        let n_vars = dataframe_rows(path, &var, "var")?;

        let x = x_layout(path, &file)?;
        let shape = &x.shape;
        if shape.len() != 2 || shape[0] != n_obs || shape[1] != n_vars {
            return Err(DataError::Malformed {
                path: p(),
                field: "X".into(),
                detail: format!("shape {shape:?} does not match obs ({n_obs}) x var ({n_vars})"),
            });
        }
        Ok(Self {
            n_obs,
            n_vars,
            x_encoding: x.encoding,
            x_dtype: x.dtype,
            x_stored: x.stored,
            obs_columns: string_list_attr(&obs, "column-order"),
            var_columns: string_list_attr(&var, "column-order"),
            layers: layer_names(&file),
        })
    }

    /// Fraction of stored entries, `x_stored / (n_obs n_vars)`.
    pub fn density(&self) -> f64 {
        let total = (self.n_obs * self.n_vars).max(1);
        self.x_stored as f64 / total as f64
    }
}
