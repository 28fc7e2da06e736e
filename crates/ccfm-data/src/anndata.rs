//! Reading AnnData (`.h5ad`, anndata >= 0.8 encoding) without Python: the `obs` / `var`
//! dataframes and the expression matrix (`X` or a layer), selecting cells and genes straight
//! from sparse storage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5::types::{VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, File, Group, Location};

use crate::DataError;

/// One dataframe column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `categorical`: codes into `categories`; code -1 is missing.
    Categorical {
        codes: Vec<i64>,
        categories: Vec<String>,
    },
    /// `string-array`.
    Strings(Vec<String>),
    /// Numeric `array` (any float or integer type, read as f64).
    Numeric(Vec<f64>),
    /// Boolean `array`.
    Bool(Vec<bool>),
    /// `nullable-integer`, `nullable-boolean` (mask true = missing) read as f64 with NaN.
    Nullable(Vec<Option<f64>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical { codes, .. } => codes.len(),
            Column::Strings(v) => v.len(),
            Column::Numeric(v) => v.len(),
            Column::Bool(v) => v.len(),
            Column::Nullable(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as text (categories resolved; missing = `None`), for label-like columns.
    pub fn as_labels(&self) -> Vec<Option<String>> {
        match self {
            Column::Categorical { codes, categories } => codes
                .iter()
                .map(|&c| {
                    usize::try_from(c)
                        .ok()
                        .and_then(|c| categories.get(c).cloned())
                })
                .collect(),
            Column::Strings(v) => v.iter().cloned().map(Some).collect(),
            Column::Numeric(v) => v.iter().map(|x| Some(format_number(*x))).collect(),
            Column::Bool(v) => v.iter().map(|b| Some(b.to_string())).collect(),
            Column::Nullable(v) => v.iter().map(|x| x.map(format_number)).collect(),
        }
    }
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A dataframe (`obs` or `var`): its index and its columns in stored order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFrame {
    pub index: Vec<String>,
    pub columns: Vec<(String, Column)>,
}

impl DataFrame {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Rows of a CSR matrix as stored: `indptr` has one entry per row plus one.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrRows {
    pub data: Vec<f64>,
    pub indices: Vec<usize>,
    pub indptr: Vec<usize>,
}

/// The three arrays of a sparse matrix as stored.
struct SparseArrays {
    indptr: Vec<i64>,
    indices: Vec<i64>,
    data: Vec<f64>,
}

/// How the matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixEncoding {
    Dense,
    Csr,
    Csc,
}

/// An open `.h5ad` file with its dataframes loaded.
pub struct AnnData {
    path: PathBuf,
    file: File,
    pub obs: DataFrame,
    pub var: DataFrame,
}

pub(crate) fn string_attr(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    if let Ok(v) = attr.read_scalar::<VarLenUnicode>() {
        return Some(v.as_str().to_string());
    }
    attr.read_scalar::<VarLenAscii>()
        .ok()
        .map(|v| v.as_str().to_string())
}

pub(crate) fn string_list_attr(loc: &Location, name: &str) -> Vec<String> {
    let Ok(attr) = loc.attr(name) else {
        return Vec::new();
    };
    if let Ok(v) = attr.read_raw::<VarLenUnicode>() {
        return v.iter().map(|s| s.as_str().to_string()).collect();
    }
    attr.read_raw::<VarLenAscii>()
        .map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
        .unwrap_or_default()
}

/// Refuse a dataset whose declared size its file cannot back: stored bytes beyond the file's
/// length, or more values than even maximal compression (deflate stays under ~1032:1) could
/// unpack from what is stored. Checked before reading, so a damaged header is an error and not
/// an allocation of its size.
fn guard(ds: &Dataset) -> hdf5::Result<()> {
    const MAX_RATIO: u64 = 1100;
    const SLACK: u64 = 64 << 20;
    let file_len = ds.file()?.size();
    let stored = ds.storage_size();
    let item = ds.dtype()?.size() as u64;
    let declared = (ds.size() as u64).saturating_mul(item.max(1));
    if stored > file_len.saturating_add(SLACK) {
        return Err(format!(
            "declares {stored} stored bytes in a file of {file_len} bytes (damaged header?)"
        )
        .into());
    }
    if declared > stored.saturating_mul(MAX_RATIO).saturating_add(SLACK) {
        return Err(format!(
            "declares {} values of {item} bytes but stores only {stored} bytes (damaged header?)",
            ds.size()
        )
        .into());
    }
    Ok(())
}

/// Refuse a file whose global heap would make the HDF5 library loop (see [`crate::heapcheck`]).
/// A file passes once per process while unchanged (length and modification time): one
/// command opens the same file several times (`inspect` reads its summary, then loads it), and
/// the walk reads the whole file (about 0.2 s per GB from the page cache).
pub(crate) fn refuse_stuck_heap(path: &Path) -> Result<(), DataError> {
    use std::sync::Mutex;
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static PASSED: Mutex<Vec<Key>> = Mutex::new(Vec::new());
    let key = std::fs::metadata(path)
        .ok()
        .map(|m| (path.to_path_buf(), m.len(), m.modified().ok()));
    let passed = |k: &Key| PASSED.lock().map(|v| v.contains(k)).unwrap_or(false);
    if key.as_ref().is_some_and(passed) {
        return Ok(());
    }
    match crate::heapcheck::find_stuck_heap(path) {
        Ok(Some(h)) => Err(DataError::Malformed {
            path: path.to_path_buf(),
            field: "(file)".into(),
            detail: format!(
                "damaged HDF5 string heap at byte {} (its object at byte {} has a size \
                 that stalls the reader); the file is corrupt: copy or download it again",
                h.offset, h.object
            ),
        }),
        Ok(None) => {
            if let (Some(k), Ok(mut v)) = (key, PASSED.lock()) {
                v.push(k);
            }
            Ok(())
        }
        Err(e) => Err(DataError::Io {
            path: path.to_path_buf(),
            detail: format!("reading: {e}"),
        }),
    }
}

/// All values of `ds`, after [`guard`].
fn read_vec<T: hdf5::H5Type>(ds: &Dataset) -> hdf5::Result<Vec<T>> {
    guard(ds)?;
    ds.read_raw::<T>()
}

fn read_strings(ds: &Dataset) -> hdf5::Result<Vec<String>> {
    guard(ds)?;
    if let Ok(v) = ds.read_raw::<VarLenUnicode>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    ds.read_raw::<VarLenAscii>()
        .map(|v| v.iter().map(|s| s.as_str().to_string()).collect())
}

/// Check compressed sparse pointers and indices as stored: `indptr` starts at 0, never
/// decreases, and every index is a valid position along the minor axis. Lengths are checked by
/// the caller.
fn check_compressed(
    indptr: &[i64],
    indices: &[i64],
    major: usize,
    minor: usize,
) -> Result<(), String> {
    if indptr.first() != Some(&0) {
        return Err(format!(
            "indptr starts at {:?}, not 0",
            indptr.first().copied().unwrap_or_default()
        ));
    }
    if let Some(m) = (0..major).find(|&m| indptr[m + 1] < indptr[m]) {
        return Err(format!(
            "indptr decreases at row/column {m} ({} then {})",
            indptr[m],
            indptr[m + 1]
        ));
    }
    if let Some((p, &i)) = indices
        .iter()
        .enumerate()
        .find(|(_, &i)| i < 0 || i >= minor as i64)
    {
        return Err(format!(
            "indices[{p}] = {i} is outside 0..{minor} (the other axis of the shape)"
        ));
    }
    Ok(())
}

impl AnnData {
    /// Open `path` and read `obs` and `var`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(DataError::NotFound { path });
        }
        refuse_stuck_heap(&path)?;
        let file = File::open(&path).map_err(|source| DataError::Open {
            path: path.clone(),
            source,
        })?;
        let mut ad = AnnData {
            path,
            file,
            obs: DataFrame::default(),
            var: DataFrame::default(),
        };
        ad.obs = ad.read_dataframe("obs")?;
        ad.var = ad.read_dataframe("var")?;
        Ok(ad)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn n_obs(&self) -> usize {
        self.obs.len()
    }

    pub fn n_vars(&self) -> usize {
        self.var.len()
    }

    fn missing(&self, field: String, hint: &'static str) -> DataError {
        DataError::Missing {
            path: self.path.clone(),
            field,
            hint,
        }
    }

    fn malformed(&self, field: &str, detail: impl ToString) -> DataError {
        DataError::Malformed {
            path: self.path.clone(),
            field: field.to_string(),
            detail: detail.to_string(),
        }
    }

    fn group(&self, name: &str, hint: &'static str) -> Result<Group, DataError> {
        self.file
            .group(name)
            .map_err(|_| self.missing(name.to_string(), hint))
    }

    fn read_dataframe(&self, name: &str) -> Result<DataFrame, DataError> {
        let g = self.group(name, "every AnnData file has `obs` and `var` dataframes")?;
        let enc = string_attr(&g, "encoding-type").unwrap_or_default();
        if enc != "dataframe" {
            return Err(DataError::UnsupportedEncoding {
                path: self.path.clone(),
                field: name.to_string(),
                encoding: enc,
                supported: "dataframe",
            });
        }
        let index_name = string_attr(&g, "_index").ok_or_else(|| {
            self.missing(
                format!("{name}/@_index"),
                "a dataframe names its index column in `_index`",
            )
        })?;
        let index_field = format!("{name}/{index_name}");
        let index_ds = g
            .dataset(&index_name)
            .map_err(|_| self.missing(index_field.clone(), "the index column named by `_index`"))?;
        let index = read_strings(&index_ds).map_err(|e| self.malformed(&index_field, e))?;
        let mut columns = Vec::new();
        for col in string_list_attr(&g, "column-order") {
            let field = format!("{name}/{col}");
            let column = self.read_column(&g, &col, &field)?;
            if column.len() != index.len() {
                return Err(self.malformed(
                    &field,
                    format!("{} values for {} rows", column.len(), index.len()),
                ));
            }
            columns.push((col, column));
        }
        Ok(DataFrame { index, columns })
    }

    /// One dataframe column, stored as a dataset or as an encoded group.
    fn read_column(&self, g: &Group, col: &str, field: &str) -> Result<Column, DataError> {
        if let Ok(ds) = g.dataset(col) {
            return self.read_array_column(&ds, field);
        }
        let sub = g
            .group(col)
            .map_err(|_| self.missing(field.to_string(), "listed in column-order"))?;
        let enc = string_attr(&sub, "encoding-type").unwrap_or_default();
        match enc.as_str() {
            "categorical" => self.read_categorical(&sub, field),
            "nullable-integer" | "nullable-boolean" => self.read_nullable(&sub, field),
            other => Err(self.unsupported_column(field, other)),
        }
    }

    /// A column stored as one dataset: `string-array`, or an `array` of booleans, numbers or
    /// strings.
    fn read_array_column(&self, ds: &Dataset, field: &str) -> Result<Column, DataError> {
        let err = |e: hdf5::Error| self.malformed(field, e);
        let enc = string_attr(ds, "encoding-type").unwrap_or_else(|| "array".into());
        match enc.as_str() {
            "string-array" => Ok(Column::Strings(read_strings(ds).map_err(err)?)),
            "array" => {
                if matches!(
                    ds.dtype().and_then(|d| d.to_descriptor()),
                    Ok(hdf5::types::TypeDescriptor::Boolean)
                ) {
                    Ok(Column::Bool(read_vec::<bool>(ds).map_err(err)?))
                } else if let Ok(v) = read_vec::<f64>(ds) {
                    Ok(Column::Numeric(v))
                } else {
                    Ok(Column::Strings(read_strings(ds).map_err(err)?))
                }
            }
            other => Err(self.unsupported_column(field, other)),
        }
    }

    /// A `categorical` column group, its codes checked against its categories.
    fn read_categorical(&self, sub: &Group, field: &str) -> Result<Column, DataError> {
        let err = |e: hdf5::Error| self.malformed(field, e);
        let codes = sub
            .dataset("codes")
            .and_then(|d| read_vec::<i64>(&d))
            .map_err(err)?;
        let categories = sub
            .dataset("categories")
            .map_err(err)
            .and_then(|d| read_strings(&d).map_err(err))?;
        if let Some((i, c)) = codes
            .iter()
            .enumerate()
            .find(|(_, &c)| c < -1 || c >= categories.len() as i64)
        {
            return Err(self.malformed(
                &format!("{field}/codes"),
                format!(
                    "code {c} at row {i}, but there are {} categories (codes run \
                     -1 (missing) to {})",
                    categories.len(),
                    categories.len() as i64 - 1
                ),
            ));
        }
        Ok(Column::Categorical { codes, categories })
    }

    /// A `nullable-integer` or `nullable-boolean` column group (mask true = missing).
    fn read_nullable(&self, sub: &Group, field: &str) -> Result<Column, DataError> {
        let err = |e: hdf5::Error| self.malformed(field, e);
        let values = sub
            .dataset("values")
            .and_then(|d| read_vec::<f64>(&d))
            .map_err(err)?;
        let mask = sub
            .dataset("mask")
            .and_then(|d| read_vec::<bool>(&d))
            .map_err(err)?;
        Ok(Column::Nullable(
            values
                .into_iter()
                .zip(mask)
                .map(|(v, m)| (!m).then_some(v))
                .collect(),
        ))
    }

    /// The error for a column whose encoding this reader does not know.
    fn unsupported_column(&self, field: &str, encoding: &str) -> DataError {
        DataError::UnsupportedEncoding {
            path: self.path.clone(),
            field: field.to_string(),
            encoding: encoding.to_string(),
            supported: "array, string-array, categorical, nullable-integer, nullable-boolean",
        }
    }

    /// How `element` (`"X"` or `"layers/<name>"`) is stored.
    pub fn encoding(&self, element: &str) -> Result<MatrixEncoding, DataError> {
        if self.file.dataset(element).is_ok() {
            return Ok(MatrixEncoding::Dense);
        }
        let g = self.file.group(element).map_err(|_| {
            self.missing(
                element.to_string(),
                "an expression matrix: `X` or `layers/<name>`",
            )
        })?;
        match string_attr(&g, "encoding-type")
            .unwrap_or_default()
            .as_str()
        {
            "csr_matrix" => Ok(MatrixEncoding::Csr),
            "csc_matrix" => Ok(MatrixEncoding::Csc),
            other => Err(DataError::UnsupportedEncoding {
                path: self.path.clone(),
                field: element.to_string(),
                encoding: other.to_string(),
                supported: "array, csr_matrix, csc_matrix",
            }),
        }
    }

    /// The group of a sparse `element` and its `indptr`, the shape checked against obs x var.
    fn sparse_header(&self, element: &str) -> Result<(Group, Vec<i64>), DataError> {
        let (n_obs, n_vars) = (self.n_obs(), self.n_vars());
        let err = |e: hdf5::Error| self.malformed(element, e);
        let g = self.file.group(element).map_err(err)?;
        let shape: Vec<i64> = g
            .attr("shape")
            .and_then(|a| a.read_raw::<i64>())
            .map_err(err)?;
        if shape != [n_obs as i64, n_vars as i64] {
            return Err(self.malformed(
                element,
                format!("shape {shape:?}, expected [{n_obs}, {n_vars}]"),
            ));
        }
        let indptr: Vec<i64> = g
            .dataset("indptr")
            .and_then(|d| read_vec::<i64>(&d))
            .map_err(err)?;
        Ok((g, indptr))
    }

    /// The arrays of a CSR or CSC `element`, checked against its `shape` and each other.
    fn read_sparse(&self, element: &str, enc: MatrixEncoding) -> Result<SparseArrays, DataError> {
        let (n_obs, n_vars) = (self.n_obs(), self.n_vars());
        let err = |e: hdf5::Error| self.malformed(element, e);
        let (g, indptr) = self.sparse_header(element)?;
        let indices: Vec<i64> = g
            .dataset("indices")
            .and_then(|d| read_vec::<i64>(&d))
            .map_err(err)?;
        let data: Vec<f64> = g
            .dataset("data")
            .and_then(|d| read_vec::<f64>(&d))
            .map_err(err)?;
        let (major, minor) = if enc == MatrixEncoding::Csr {
            (n_obs, n_vars)
        } else {
            (n_vars, n_obs)
        };
        if indptr.len() != major + 1
            || indices.len() != data.len()
            || indptr[major] != data.len() as i64
        {
            return Err(self.malformed(element, "indptr / indices / data lengths disagree"));
        }
        check_compressed(&indptr, &indices, major, minor)
            .map_err(|detail| self.malformed(element, detail))?;
        Ok(SparseArrays {
            indptr,
            indices,
            data,
        })
    }

    /// The row pointers of a CSR `element` (checked against its shape and its `data`) and its
    /// `indices` and `data` datasets, unread: for reading rows by hyperslabs.
    pub(crate) fn csr_parts(
        &self,
        element: &str,
    ) -> Result<(Vec<u64>, Dataset, Dataset), DataError> {
        let (n_obs, n_vars) = (self.n_obs(), self.n_vars());
        let err = |e: hdf5::Error| self.malformed(element, e);
        let (g, indptr) = self.sparse_header(element)?;
        let indices = g.dataset("indices").map_err(err)?;
        let data = g.dataset("data").map_err(err)?;
        guard(&indices).map_err(err)?;
        guard(&data).map_err(err)?;
        if indptr.len() != n_obs + 1
            || indices.size() != data.size()
            || indptr[n_obs] != data.size() as i64
        {
            return Err(self.malformed(element, "indptr / indices / data lengths disagree"));
        }
        check_compressed(&indptr, &[], n_obs, n_vars)
            .map_err(|detail| self.malformed(element, detail))?;
        Ok((
            indptr.into_iter().map(|p| p as u64).collect(),
            indices,
            data,
        ))
    }

    /// Values stored by a sparse `element` (the length of its `data`), if it has one.
    pub(crate) fn stored_values(&self, element: &str) -> Option<u64> {
        let g = self.file.group(element).ok()?;
        Some(g.dataset("data").ok()?.size() as u64)
    }

    /// The dataset of a dense `element`.
    pub(crate) fn dense_dataset(&self, element: &str) -> Result<Dataset, DataError> {
        let ds = self
            .file
            .dataset(element)
            .map_err(|e| self.malformed(element, e))?;
        guard(&ds).map_err(|e| self.malformed(element, e))?;
        Ok(ds)
    }

    /// Whether an HDF5 object exists at `path` (e.g. `"uns/log1p"`, `"layers/counts"`).
    pub fn exists(&self, path: &str) -> bool {
        self.file.link_exists(path)
    }

    /// A numeric scalar stored at `path` (e.g. `"uns/log1p/base"`), if there is one.
    pub fn scalar_f64(&self, path: &str) -> Option<f64> {
        let ds = self.file.dataset(path).ok()?;
        if ds.ndim() != 0 {
            return None;
        }
        ds.read_scalar::<f64>().ok()
    }

    /// The strings stored at `path` (e.g. `"uns/gi_type"`), if it is a string dataset.
    pub fn strings(&self, path: &str) -> Option<Vec<String>> {
        let ds = self.file.dataset(path).ok()?;
        read_strings(&ds).ok()
    }

    /// The interaction type of each double (`A+B` -> `synergy`, ...) when the file records them
    /// as parallel `uns/gi_doubles` and `uns/gi_type` string arrays (the synthetic presets do);
    /// empty otherwise. Keys are condition names as [`crate::Condition::name`] writes them.
    pub fn interaction_types(&self) -> Result<BTreeMap<String, String>, DataError> {
        let (Some(doubles), Some(types)) =
            (self.strings("uns/gi_doubles"), self.strings("uns/gi_type"))
        else {
            return Ok(BTreeMap::new());
        };
        if doubles.len() != types.len() {
            return Err(self.malformed(
                "uns/gi_type",
                format!(
                    "{} types for {} doubles in uns/gi_doubles; the two arrays must be parallel",
                    types.len(),
                    doubles.len()
                ),
            ));
        }
        Ok(doubles
            .iter()
            .map(|d| crate::Condition::parse(d).name())
            .zip(types)
            .collect())
    }

    /// The rows `rows` of `element` in CSR form whatever its storage (dense and CSC blocks are
    /// read through [`AnnData::read_matrix`], which is exact for float32 files; CSR keeps the
    /// stored f64 precision). Explicit zeros are dropped.
    pub fn read_rows_sparse(&self, element: &str, rows: &[usize]) -> Result<CsrRows, DataError> {
        if self.encoding(element)? == MatrixEncoding::Csr {
            let mut m = self.read_csr_rows(element, rows)?;
            let (mut w, mut ptr) = (0usize, vec![0usize]);
            for r in 0..rows.len() {
                for p in m.indptr[r]..m.indptr[r + 1] {
                    if m.data[p] != 0.0 {
                        m.data[w] = m.data[p];
                        m.indices[w] = m.indices[p];
                        w += 1;
                    }
                }
                ptr.push(w);
            }
            m.data.truncate(w);
            m.indices.truncate(w);
            m.indptr = ptr;
            return Ok(m);
        }
        let g = self.n_vars();
        let (mut data, mut indices, mut indptr) = (Vec::new(), Vec::new(), vec![0usize]);
        // In blocks of cells so a dense file is never read whole into memory twice.
        for chunk in rows.chunks(4096) {
            let block = self.read_matrix(element, chunk, None)?;
            for row in block.chunks(g.max(1)) {
                for (j, &v) in row.iter().enumerate() {
                    if v != 0.0 {
                        data.push(v as f64);
                        indices.push(j);
                    }
                }
                indptr.push(data.len());
            }
        }
        Ok(CsrRows {
            data,
            indices,
            indptr,
        })
    }

    /// The rows `rows` of a CSR `element` as stored (f64 values, gene indices, row pointers),
    /// without densifying: for statistics that must see the file's full precision.
    pub fn read_csr_rows(&self, element: &str, rows: &[usize]) -> Result<CsrRows, DataError> {
        if self.encoding(element)? != MatrixEncoding::Csr {
            return Err(self.malformed(element, "not stored as csr_matrix"));
        }
        let SparseArrays {
            indptr,
            indices,
            data,
        } = self.read_sparse(element, MatrixEncoding::Csr)?;
        let (mut d, mut ix, mut ptr) = (Vec::new(), Vec::new(), vec![0usize]);
        for &r in rows {
            if r >= self.n_obs() {
                return Err(self.malformed(
                    element,
                    format!("cell {r} requested, the file has {}", self.n_obs()),
                ));
            }
            for p in indptr[r] as usize..indptr[r + 1] as usize {
                d.push(data[p]);
                ix.push(indices[p] as usize);
            }
            ptr.push(d.len());
        }
        Ok(CsrRows {
            data: d,
            indices: ix,
            indptr: ptr,
        })
    }

    /// The values of `element` for the cells `rows` and genes `cols` (all genes when `None`),
    /// as a row-major `rows.len() x cols.len()` matrix. Sparse storage is read as stored
    /// (data, indices, indptr) and only the selected block is made dense.
    pub fn read_matrix(
        &self,
        element: &str,
        rows: &[usize],
        cols: Option<&[usize]>,
    ) -> Result<Vec<f32>, DataError> {
        let all: Vec<usize>;
        let cols = match cols {
            Some(c) => c,
            None => {
                all = (0..self.n_vars()).collect();
                &all
            }
        };
        self.check_selection(element, rows, cols)?;
        let mut out = vec![0f32; rows.len() * cols.len()];
        match self.encoding(element)? {
            MatrixEncoding::Dense => self.fill_dense(element, rows, cols, &mut out)?,
            enc => self.fill_sparse(element, enc, rows, cols, &mut out)?,
        }
        copy_repeats(&mut out, rows, cols, self.n_vars());
        Ok(out)
    }

    /// Refuse cells or genes beyond the file's.
    fn check_selection(
        &self,
        element: &str,
        rows: &[usize],
        cols: &[usize],
    ) -> Result<(), DataError> {
        let (n_obs, n_vars) = (self.n_obs(), self.n_vars());
        if let Some(&r) = rows.iter().find(|&&r| r >= n_obs) {
            return Err(
                self.malformed(element, format!("cell {r} requested, the file has {n_obs}"))
            );
        }
        if let Some(&c) = cols.iter().find(|&&c| c >= n_vars) {
            return Err(self.malformed(
                element,
                format!("gene {c} requested, the file has {n_vars}"),
            ));
        }
        Ok(())
    }

    /// Fill `out` (row-major `rows x cols`) from a dense `element`.
    fn fill_dense(
        &self,
        element: &str,
        rows: &[usize],
        cols: &[usize],
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let (n_obs, n_vars) = (self.n_obs(), self.n_vars());
        let width = cols.len();
        let err = |e: hdf5::Error| self.malformed(element, e);
        let ds = self.file.dataset(element).map_err(err)?;
        let shape = ds.shape();
        if shape != [n_obs, n_vars] {
            return Err(self.malformed(
                element,
                format!("shape {shape:?}, expected [{n_obs}, {n_vars}]"),
            ));
        }
        // A few cells: one read per cell; many: one read of the whole matrix.
        let whole = (rows.len() * 4 > n_obs)
            .then(|| read_vec::<f64>(&ds))
            .transpose()
            .map_err(err)?;
        for (i, &r) in rows.iter().enumerate() {
            let row: Vec<f64> = match &whole {
                Some(all) => all[r * n_vars..(r + 1) * n_vars].to_vec(),
                None => ds
                    .read_slice_1d::<f64, _>(ndarray::s![r, ..])
                    .map_err(err)?
                    .to_vec(),
            };
            for (k, &c) in cols.iter().enumerate() {
                out[i * width + k] = row[c] as f32;
            }
        }
        Ok(())
    }

    /// Fill `out` (row-major `rows x cols`) from a CSR or CSC `element`, at the first occurrence
    /// of each repeated cell or gene.
    fn fill_sparse(
        &self,
        element: &str,
        enc: MatrixEncoding,
        rows: &[usize],
        cols: &[usize],
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let width = cols.len();
        let SparseArrays {
            indptr,
            indices,
            data,
        } = self.read_sparse(element, enc)?;
        let span = |m: usize| indptr[m] as usize..indptr[m + 1] as usize;
        if enc == MatrixEncoding::Csr {
            // Position of each gene in the output (usize::MAX = not selected; first occurrence).
            let col_pos = first_positions(cols, self.n_vars());
            for (i, &r) in rows.iter().enumerate() {
                for p in span(r) {
                    let k = col_pos[indices[p] as usize];
                    if k != usize::MAX {
                        out[i * width + k] = data[p] as f32;
                    }
                }
            }
        } else {
            let row_pos = first_positions(rows, self.n_obs());
            for (k, &c) in cols.iter().enumerate() {
                for p in span(c) {
                    let i = row_pos[indices[p] as usize];
                    if i != usize::MAX {
                        out[i * width + k] = data[p] as f32;
                    }
                }
            }
        }
        Ok(())
    }
}

/// For each of `n` items, its first position in `selected` (`usize::MAX` when absent).
fn first_positions(selected: &[usize], n: usize) -> Vec<usize> {
    let mut pos = vec![usize::MAX; n];
    for (k, &s) in selected.iter().enumerate().rev() {
        pos[s] = k;
    }
    pos
}

/// Sparse scattering filled the first occurrence of a repeated cell or gene; copy it to the
/// repeats (cells are often sampled with replacement).
fn copy_repeats(out: &mut [f32], rows: &[usize], cols: &[usize], n_vars: usize) {
    let width = cols.len();
    let mut first_col = vec![usize::MAX; n_vars];
    for (k, &c) in cols.iter().enumerate() {
        if first_col[c] == usize::MAX {
            first_col[c] = k;
        } else {
            for i in 0..rows.len() {
                out[i * width + k] = out[i * width + first_col[c]];
            }
        }
    }
    let mut first_row = std::collections::HashMap::new();
    for (i, &r) in rows.iter().enumerate() {
        match first_row.get(&r) {
            None => {
                first_row.insert(r, i);
            }
            Some(&i0) => out.copy_within(i0 * width..(i0 + 1) * width, i * width),
        }
    }
}
