//! Writing AnnData (`.h5ad`, anndata >= 0.8 encoding): X (dense float32 or CSR), `layers`, the
//! `obs` and `var` dataframes and `uns` scalars, string lists and numeric arrays. The file is written under a temporary name beside
//! the target and renamed into place, so a failure never leaves a half-written file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, Location};
use ndarray::ArrayView2;

use crate::anndata::{Column, DataFrame};
use crate::DataError;

/// The expression matrix to write.
#[derive(Debug, Clone, Copy)]
pub enum MatrixOut<'a> {
    /// Row-major `(n_obs, n_vars)` values.
    Dense(&'a [f32]),
    /// Compressed sparse rows: `indptr` has `n_obs + 1` entries.
    Csr {
        data: &'a [f32],
        indices: &'a [i32],
        indptr: &'a [i64],
    },
}

/// A value in `uns`.
#[derive(Debug, Clone, PartialEq)]
pub enum UnsValue {
    Text(String),
    Number(f64),
    /// A 1-d array of strings.
    Strings(Vec<String>),
    /// A row-major numeric array of the given shape (read by anndata as a numpy array).
    Array {
        shape: Vec<usize>,
        values: Vec<f64>,
    },
}

/// Everything an `.h5ad` written by CCFM holds.
#[derive(Debug, Clone, Copy)]
pub struct AnnDataOut<'a> {
    pub x: MatrixOut<'a>,
    /// Extra matrices of the same shape as X, e.g. `("counts", ...)`.
    pub layers: &'a [(&'a str, MatrixOut<'a>)],
    pub obs: &'a DataFrame,
    pub var: &'a DataFrame,
    pub uns: &'a [(String, UnsValue)],
}

fn h5(path: &Path, field: &str) -> impl Fn(hdf5::Error) -> DataError {
    let (path, field) = (path.to_path_buf(), field.to_string());
    move |e| DataError::Malformed {
        path: path.clone(),
        field: field.clone(),
        detail: format!("writing: {e}"),
    }
}

fn vlen(s: &str) -> hdf5::Result<VarLenUnicode> {
    VarLenUnicode::from_str(s).map_err(|e| hdf5::Error::from(format!("string {s:?}: {e}")))
}

fn set_str(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&vlen(value)?)
}

fn set_encoding(loc: &Location, kind: &str, version: &str) -> hdf5::Result<()> {
    set_str(loc, "encoding-type", kind)?;
    set_str(loc, "encoding-version", version)
}

fn write_strings(g: &Group, name: &str, values: &[String]) -> hdf5::Result<()> {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| vlen(s))
        .collect::<hdf5::Result<_>>()?;
    let ds = g.new_dataset_builder().with_data(&v[..]).create(name)?;
    set_encoding(&ds, "string-array", "0.2.0")
}

fn write_column(g: &Group, name: &str, col: &Column) -> hdf5::Result<()> {
    match col {
        Column::Categorical { codes, categories } => {
            let c = g.create_group(name)?;
            set_encoding(&c, "categorical", "0.2.0")?;
            c.new_attr::<bool>()
                .create("ordered")?
                .write_scalar(&false)?;
            let codes: Vec<i32> = codes.iter().map(|&x| x as i32).collect();
            c.new_dataset_builder()
                .with_data(&codes[..])
                .create("codes")?;
            write_strings(&c, "categories", categories)
        }
        Column::Strings(v) => write_strings(g, name, v),
        Column::Numeric(v) => {
            let ds = g.new_dataset_builder().with_data(&v[..]).create(name)?;
            set_encoding(&ds, "array", "0.2.0")
        }
        Column::Bool(v) => {
            let ds = g.new_dataset_builder().with_data(&v[..]).create(name)?;
            set_encoding(&ds, "array", "0.2.0")
        }
        Column::Nullable(v) => {
            // Written as a float column, missing values as NaN.
            let f: Vec<f64> = v.iter().map(|x| x.unwrap_or(f64::NAN)).collect();
            let ds = g.new_dataset_builder().with_data(&f[..]).create(name)?;
            set_encoding(&ds, "array", "0.2.0")
        }
    }
}

fn write_dataframe(file: &File, name: &str, df: &DataFrame) -> hdf5::Result<()> {
    let g = file.create_group(name)?;
    set_encoding(&g, "dataframe", "0.2.0")?;
    set_str(&g, "_index", "_index")?;
    let order: Vec<VarLenUnicode> = df
        .columns
        .iter()
        .map(|(n, _)| vlen(n))
        .collect::<hdf5::Result<_>>()?;
    g.new_attr::<VarLenUnicode>()
        .shape(order.len())
        .create("column-order")?
        .write(&order[..])?;
    write_strings(&g, "_index", &df.index)?;
    for (col, values) in &df.columns {
        write_column(&g, col, values)?;
    }
    Ok(())
}

fn check(
    path: &Path,
    what: &str,
    ok: bool,
    detail: impl FnOnce() -> String,
) -> Result<(), DataError> {
    if ok {
        Ok(())
    } else {
        Err(DataError::Malformed {
            path: path.to_path_buf(),
            field: what.to_string(),
            detail: detail(),
        })
    }
}

fn check_matrix(
    path: &Path,
    what: &str,
    m: &MatrixOut<'_>,
    n: usize,
    g: usize,
) -> Result<(), DataError> {
    match *m {
        MatrixOut::Dense(v) => check(path, what, v.len() == n * g, || {
            format!("{} values for {n} x {g}", v.len())
        }),
        MatrixOut::Csr {
            data,
            indices,
            indptr,
        } => check(
            path,
            what,
            indptr.len() == n + 1
                && data.len() == indices.len()
                && indptr.last().copied() == Some(data.len() as i64)
                && indices.iter().all(|&j| (j as usize) < g),
            || "indptr must have n_obs + 1 entries ending at nnz, indices below n_vars".to_string(),
        ),
    }
}

fn write_matrix(
    parent: &Group,
    name: &str,
    m: &MatrixOut<'_>,
    n: usize,
    g: usize,
) -> hdf5::Result<()> {
    match *m {
        MatrixOut::Dense(v) => {
            let view = ArrayView2::from_shape((n, g), v).expect("length checked");
            let ds = parent.new_dataset_builder().with_data(view).create(name)?;
            set_encoding(&ds, "array", "0.2.0")
        }
        MatrixOut::Csr {
            data,
            indices,
            indptr,
        } => {
            let x = parent.create_group(name)?;
            set_encoding(&x, "csr_matrix", "0.1.0")?;
            x.new_attr::<i64>()
                .shape(2)
                .create("shape")?
                .write(&[n as i64, g as i64][..])?;
            x.new_dataset_builder().with_data(data).create("data")?;
            x.new_dataset_builder()
                .with_data(indices)
                .create("indices")?;
            x.new_dataset_builder().with_data(indptr).create("indptr")?;
            Ok(())
        }
    }
}

/// Write `content` to `path` (atomically).
pub fn write_h5ad(path: impl AsRef<Path>, content: &AnnDataOut<'_>) -> Result<(), DataError> {
    let path = path.as_ref();
    check_content(path, content)?;
    let tmp: PathBuf = path.with_extension(format!("h5ad.tmp{}", std::process::id()));
    let result = write_file(path, &tmp, content).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| DataError::Malformed {
            path: path.to_path_buf(),
            field: "file".into(),
            detail: format!("moving the finished file into place: {e}"),
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Refuse content whose columns, matrices or `uns` arrays disagree with their shapes.
fn check_content(path: &Path, content: &AnnDataOut<'_>) -> Result<(), DataError> {
    let (n, g) = (content.obs.len(), content.var.len());
    for (name, df) in [("obs", content.obs), ("var", content.var)] {
        for (col, values) in &df.columns {
            check(
                path,
                &format!("{name}/{col}"),
                values.len() == df.len(),
                || format!("{} values for {} rows", values.len(), df.len()),
            )?;
        }
    }
    check_matrix(path, "X", &content.x, n, g)?;
    for (name, m) in content.layers {
        check_matrix(path, &format!("layers/{name}"), m, n, g)?;
    }
    if let Some((key, _)) = content.uns.iter().find(|(_, v)| match v {
        UnsValue::Array { shape, values } => shape.iter().product::<usize>() != values.len(),
        _ => false,
    }) {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            field: format!("uns/{key}"),
            detail: "array length disagrees with its shape".into(),
        });
    }
    Ok(())
}

/// Write all of `content` into a new file at `tmp`; errors name `path`.
fn write_file(path: &Path, tmp: &Path, content: &AnnDataOut<'_>) -> Result<(), DataError> {
    let (n, g) = (content.obs.len(), content.var.len());
    let err = h5(path, "file");
    let file = File::create(tmp).map_err(&err)?;
    set_encoding(&file, "anndata", "0.1.0").map_err(&err)?;
    write_matrix(&file, "X", &content.x, n, g).map_err(h5(path, "X"))?;
    write_dataframe(&file, "obs", content.obs).map_err(h5(path, "obs"))?;
    write_dataframe(&file, "var", content.var).map_err(h5(path, "var"))?;
    write_uns(path, &file, content.uns)?;
    let layers = file.create_group("layers").map_err(h5(path, "layers"))?;
    set_encoding(&layers, "dict", "0.1.0").map_err(h5(path, "layers"))?;
    for (name, m) in content.layers {
        let field = format!("layers/{name}");
        write_matrix(&layers, name, m, n, g).map_err(h5(path, &field))?;
    }
    for empty in ["obsm", "varm", "obsp", "varp"] {
        let grp = file.create_group(empty).map_err(h5(path, empty))?;
        set_encoding(&grp, "dict", "0.1.0").map_err(h5(path, empty))?;
    }
    file.close().map_err(h5(path, "file"))
}

/// Write the `uns` dict of `file`; errors name `path`.
fn write_uns(path: &Path, file: &File, entries: &[(String, UnsValue)]) -> Result<(), DataError> {
    let uns = file.create_group("uns").map_err(h5(path, "uns"))?;
    set_encoding(&uns, "dict", "0.1.0").map_err(h5(path, "uns"))?;
    for (key, value) in entries {
        let field = format!("uns/{key}");
        write_uns_value(&uns, key, value).map_err(h5(path, &field))?;
    }
    Ok(())
}

/// Write one `uns` entry under `key`, with its anndata encoding.
fn write_uns_value(uns: &Group, key: &str, value: &UnsValue) -> hdf5::Result<()> {
    match value {
        UnsValue::Text(s) => {
            let ds = uns.new_dataset::<VarLenUnicode>().create(key)?;
            ds.write_scalar(&vlen(s)?)?;
            set_encoding(&ds, "string", "0.2.0")
        }
        UnsValue::Number(x) => {
            let ds = uns.new_dataset::<f64>().create(key)?;
            ds.write_scalar(x)?;
            set_encoding(&ds, "numeric-scalar", "0.2.0")
        }
        UnsValue::Strings(v) => write_strings(uns, key, v),
        UnsValue::Array { shape, values } => {
            let view =
                ndarray::ArrayViewD::from_shape(shape.clone(), values).expect("length checked");
            let ds = uns.new_dataset_builder().with_data(view).create(key)?;
            set_encoding(&ds, "array", "0.2.0")
        }
    }
}

/// Values per HDF5 chunk of an appended matrix (1 MiB of f32).
const APPEND_CHUNK: usize = 1 << 18;

/// One CSR matrix written by appending rows.
struct CsrAppender {
    field: String,
    data: hdf5::Dataset,
    indices: hdf5::Dataset,
    indptr: hdf5::Dataset,
    rows: usize,
    nnz: usize,
}

impl CsrAppender {
    fn create(parent: &Group, name: &str, field: &str) -> hdf5::Result<Self> {
        let g = parent.create_group(name)?;
        set_encoding(&g, "csr_matrix", "0.1.0")?;
        let growing = |n: &str, chunk: usize| -> hdf5::Result<hdf5::Dataset> {
            match n {
                "data" => g.new_dataset::<f32>().chunk(chunk).shape(0..).create(n),
                "indices" => g.new_dataset::<i32>().chunk(chunk).shape(0..).create(n),
                _ => g.new_dataset::<i64>().chunk(chunk).shape(0..).create(n),
            }
        };
        let indptr = growing("indptr", APPEND_CHUNK / 2)?;
        indptr.resize(1)?;
        indptr.write_slice(&[0i64][..], 0..1)?;
        Ok(Self {
            field: field.to_string(),
            data: growing("data", APPEND_CHUNK)?,
            indices: growing("indices", APPEND_CHUNK)?,
            indptr,
            rows: 0,
            nnz: 0,
        })
    }

    /// Append rows: `indptr` is local to the block (starts at 0, one entry per row plus one).
    fn append(&mut self, data: &[f32], indices: &[i32], indptr: &[i64]) -> hdf5::Result<()> {
        let (n0, r0) = (self.nnz, self.rows);
        let (n1, r1) = (n0 + data.len(), r0 + indptr.len() - 1);
        self.data.resize(n1)?;
        self.data.write_slice(data, n0..n1)?;
        self.indices.resize(n1)?;
        self.indices.write_slice(indices, n0..n1)?;
        let ptr: Vec<i64> = indptr[1..].iter().map(|&p| p + n0 as i64).collect();
        self.indptr.resize(r1 + 1)?;
        self.indptr.write_slice(&ptr[..], r0 + 1..r1 + 1)?;
        (self.nnz, self.rows) = (n1, r1);
        Ok(())
    }

    fn finish(&self, n_vars: usize) -> hdf5::Result<()> {
        self.data
            .file()?
            .group(&self.field)?
            .new_attr::<i64>()
            .shape(2)
            .create("shape")?
            .write(&[self.rows as i64, n_vars as i64][..])
    }
}

/// An `.h5ad` written in pieces, for data larger than memory: CSR matrices (X and layers)
/// appended a block of rows at a time, then the dataframes and `uns`. Written under a temporary
/// name and renamed into place by [`StreamingH5ad::finish`]; dropped unfinished, the temporary
/// file is removed.
pub struct StreamingH5ad {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    matrices: Vec<CsrAppender>,
    n_vars: usize,
}

impl StreamingH5ad {
    /// Start `path` with `n_vars` genes and the CSR matrices `names` (`"X"`,
    /// `"layers/<name>"`), in the order [`StreamingH5ad::append`] addresses them.
    pub fn create(path: &Path, n_vars: usize, names: &[&str]) -> Result<Self, DataError> {
        let tmp = path.with_extension(format!("h5ad.tmp{}", std::process::id()));
        let err = h5(path, "file");
        let file = File::create(&tmp).map_err(&err)?;
        // From here on, dropping `out` (an error below included) removes the temporary file.
        let mut out = Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            matrices: Vec::new(),
            n_vars,
        };
        let file = out.file.as_ref().expect("just opened");
        set_encoding(file, "anndata", "0.1.0").map_err(&err)?;
        let layers = file.create_group("layers").map_err(h5(path, "layers"))?;
        set_encoding(&layers, "dict", "0.1.0").map_err(h5(path, "layers"))?;
        let mut matrices = Vec::new();
        for &name in names {
            let m = match name.strip_prefix("layers/") {
                Some(layer) => CsrAppender::create(&layers, layer, name),
                None => CsrAppender::create(file, name, name),
            };
            matrices.push(m.map_err(h5(path, name))?);
        }
        out.matrices = matrices;
        Ok(out)
    }

    /// Append a block of rows to matrix `which` (block-local `indptr`).
    pub fn append(
        &mut self,
        which: usize,
        data: &[f32],
        indices: &[i32],
        indptr: &[i64],
    ) -> Result<(), DataError> {
        let g = self.n_vars;
        let m = &mut self.matrices[which];
        check(
            &self.path,
            &m.field,
            indptr.first() == Some(&0)
                && indptr.last().copied() == Some(data.len() as i64)
                && data.len() == indices.len()
                && indices.iter().all(|&j| j >= 0 && (j as usize) < g),
            || {
                "a block's indptr must start at 0 and end at its length, indices below n_vars"
                    .into()
            },
        )?;
        m.append(data, indices, indptr)
            .map_err(h5(&self.path, &m.field.clone()))
    }

    /// Write the dataframes and `uns`, check that every matrix has one row per cell, and move
    /// the file into place.
    pub fn finish(
        mut self,
        obs: &DataFrame,
        var: &DataFrame,
        uns: &[(String, UnsValue)],
    ) -> Result<(), DataError> {
        let result = self.write_rest(obs, var, uns);
        if result.is_err() {
            self.matrices.clear();
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    fn write_rest(
        &mut self,
        obs: &DataFrame,
        var: &DataFrame,
        uns: &[(String, UnsValue)],
    ) -> Result<(), DataError> {
        let path = self.path.clone();
        for m in &self.matrices {
            check(&path, &m.field, m.rows == obs.len(), || {
                format!("{} rows appended for {} cells", m.rows, obs.len())
            })?;
            m.finish(self.n_vars).map_err(h5(&path, &m.field))?;
        }
        check(&path, "var", var.len() == self.n_vars, || {
            format!("{} genes for {} columns", var.len(), self.n_vars)
        })?;
        let file = self.file.take().expect("open until finished");
        write_dataframe(&file, "obs", obs).map_err(h5(&path, "obs"))?;
        write_dataframe(&file, "var", var).map_err(h5(&path, "var"))?;
        write_uns(&path, &file, uns)?;
        for empty in ["obsm", "varm", "obsp", "varp"] {
            let grp = file.create_group(empty).map_err(h5(&path, empty))?;
            set_encoding(&grp, "dict", "0.1.0").map_err(h5(&path, empty))?;
        }
        self.matrices.clear();
        file.close().map_err(h5(&path, "file"))?;
        std::fs::rename(&self.tmp, &path).map_err(|e| DataError::Malformed {
            path: path.clone(),
            field: "file".into(),
            detail: format!("moving the finished file into place: {e}"),
        })
    }
}

impl Drop for StreamingH5ad {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.matrices.clear();
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
