//! Reading a matrix by rows without loading it: for CSR storage the row pointers are read once
//! and each request reads only the `indices` / `data` hyperslabs of its rows; row-chunked dense
//! storage is read as row slabs. CSC storage cannot be read by rows without reading it whole and
//! is refused with the conversion to make.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::Dataset;

use crate::anndata::{AnnData, CsrRows, MatrixEncoding};
use crate::DataError;

/// Rows whose gap is at most this many rows are read in one hyperslab (their neighbours are
/// read and dropped): fewer, larger reads for files that interleave conditions.
const MERGE_GAP: usize = 16;

/// How the element is stored.
enum Storage {
    Csr {
        indptr: Vec<u64>,
        indices: Dataset,
        data: Dataset,
    },
    Dense(Dataset),
}

/// An expression matrix (`X` or `layers/<name>`) read by rows.
pub struct RowReader {
    path: PathBuf,
    element: String,
    n_rows: usize,
    n_cols: usize,
    storage: Storage,
}

impl std::fmt::Debug for RowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowReader")
            .field("path", &self.path)
            .field("element", &self.element)
            .field("n_rows", &self.n_rows)
            .field("n_cols", &self.n_cols)
            .finish()
    }
}

impl RowReader {
    /// Open `element` of `ad` for reading by rows; its shape and row pointers are checked here.
    pub fn open(ad: &AnnData, element: &str) -> Result<Self, DataError> {
        let (n_rows, n_cols) = (ad.n_obs(), ad.n_vars());
        let malformed = |detail: String| DataError::Malformed {
            path: ad.path().to_path_buf(),
            field: element.to_string(),
            detail,
        };
        let storage = match ad.encoding(element)? {
            MatrixEncoding::Csr => {
                let (indptr, indices, data) = ad.csr_parts(element)?;
                Storage::Csr {
                    indptr,
                    indices,
                    data,
                }
            }
            MatrixEncoding::Dense => {
                let ds = ad.dense_dataset(element)?;
                if ds.shape() != [n_rows, n_cols] {
                    return Err(malformed(format!(
                        "shape {:?}, expected [{n_rows}, {n_cols}]",
                        ds.shape()
                    )));
                }
                Storage::Dense(ds)
            }
            MatrixEncoding::Csc => return Err(csc_error(ad.path(), element)),
        };
        Ok(Self {
            path: ad.path().to_path_buf(),
            element: element.to_string(),
            n_rows,
            n_cols,
            storage,
        })
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Rows per block of a pass over the matrix whose values take about `bytes` (f64 and index),
    /// between 64 and 8192.
    pub fn rows_within(&self, rows: &[usize], bytes: u64) -> usize {
        let per_row = 16 * self.stored(rows) / rows.len().max(1) as u64;
        (bytes / per_row.max(1)).clamp(64, 8192) as usize
    }

    /// Values stored in the whole matrix (dense storage: every entry).
    pub fn stored_total(&self) -> u64 {
        match &self.storage {
            Storage::Csr { indptr, .. } => indptr[self.n_rows],
            Storage::Dense(_) => (self.n_rows * self.n_cols) as u64,
        }
    }

    /// Values stored for `rows` (dense storage: every entry), known without reading them.
    pub fn stored(&self, rows: &[usize]) -> u64 {
        match &self.storage {
            Storage::Csr { indptr, .. } => rows.iter().map(|&r| indptr[r + 1] - indptr[r]).sum(),
            Storage::Dense(_) => (rows.len() * self.n_cols) as u64,
        }
    }

    fn malformed(&self, detail: String) -> DataError {
        DataError::Malformed {
            path: self.path.clone(),
            field: self.element.clone(),
            detail,
        }
    }

    /// The rows `rows` (ascending file rows) in CSR form, as [`AnnData::read_rows_sparse`]
    /// returns them: f64 values, explicit zeros dropped.
    pub fn read(&self, rows: &[usize]) -> Result<CsrRows, DataError> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(self.malformed(format!("cell {r} requested, the file has {}", self.n_rows)));
        }
        let mut out = CsrRows {
            data: Vec::new(),
            indices: Vec::new(),
            indptr: vec![0],
        };
        for span in spans(rows) {
            self.read_span(span, &mut out)?;
        }
        Ok(out)
    }

    /// Append the rows of `span` (all wanted) to `out`.
    fn read_span(&self, span: Span<'_>, out: &mut CsrRows) -> Result<(), DataError> {
        let err = |e: hdf5::Error| self.malformed(format!("reading rows {:?}: {e}", span.range));
        match &self.storage {
            Storage::Csr {
                indptr,
                indices,
                data,
            } => {
                let (a, b) = (indptr[span.range.start], indptr[span.range.end]);
                let slab = a as usize..b as usize;
                let values: Vec<f64> = data.read_slice_1d(slab.clone()).map_err(err)?.to_vec();
                let cols: Vec<i64> = indices.read_slice_1d(slab).map_err(err)?.to_vec();
                for &r in span.rows {
                    let lo = (indptr[r] - a) as usize;
                    let hi = (indptr[r + 1] - a) as usize;
                    self.push_row(&values[lo..hi], &cols[lo..hi], r, out)?;
                }
            }
            Storage::Dense(ds) => {
                // As f32, as the in-memory path reads dense storage (exact for float32 files).
                let block: ndarray::Array2<f32> = ds
                    .read_slice_2d(ndarray::s![span.range.clone(), ..])
                    .map_err(err)?;
                for &r in span.rows {
                    for (j, &v) in block.row(r - span.range.start).iter().enumerate() {
                        if v != 0.0 {
                            out.data.push(v as f64);
                            out.indices.push(j);
                        }
                    }
                    out.indptr.push(out.data.len());
                }
            }
        }
        Ok(())
    }

    /// Append one CSR row, its column indices checked.
    fn push_row(
        &self,
        values: &[f64],
        cols: &[i64],
        row: usize,
        out: &mut CsrRows,
    ) -> Result<(), DataError> {
        for (&v, &j) in values.iter().zip(cols) {
            if j < 0 || j as usize >= self.n_cols {
                return Err(self.malformed(format!(
                    "row {row} has column index {j}, outside 0..{} (the other axis of the shape)",
                    self.n_cols
                )));
            }
            if v != 0.0 {
                out.data.push(v);
                out.indices.push(j as usize);
            }
        }
        out.indptr.push(out.data.len());
        Ok(())
    }

    /// Visit `rows` (ascending) in blocks of at most `block` rows: `f(rows of the block, their
    /// values)`.
    pub fn for_each_block(
        &self,
        rows: &[usize],
        block: usize,
        mut f: impl FnMut(&[usize], CsrRows) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        for chunk in rows.chunks(block.max(1)) {
            f(chunk, self.read(chunk)?)?;
        }
        Ok(())
    }
}

/// A run of wanted rows read with one hyperslab: the file rows `range`, of which `rows` are
/// kept.
struct Span<'a> {
    range: Range<usize>,
    rows: &'a [usize],
}

/// Split ascending `rows` into spans, merging rows closer than [`MERGE_GAP`].
fn spans(rows: &[usize]) -> Vec<Span<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        if i == rows.len() || rows[i] > rows[i - 1] + MERGE_GAP || rows[i] <= rows[i - 1] {
            if i > start {
                out.push(Span {
                    range: rows[start]..rows[i - 1] + 1,
                    rows: &rows[start..i],
                });
            }
            start = i;
        }
    }
    out
}

/// The error for a CSC matrix that must be read by rows.
pub fn csc_error(path: &Path, element: &str) -> DataError {
    DataError::Invalid {
        path: path.to_path_buf(),
        problem: format!(
            "`{element}` is stored as csc_matrix (by genes), which cannot be read cell by cell \
             without loading all of it"
        ),
        fix: format!(
            "convert it to CSR once, e.g. python -c \"import anndata as ad; a = \
             ad.read_h5ad('{p}'); a.{attr} = a.{attr}.tocsr(); a.write_h5ad('{p}.csr.h5ad')\", \
             or raise data.max_memory so that the file is loaded into memory",
            p = path.display(),
            attr = if element == "X" {
                "X".to_string()
            } else {
                format!("layers['{}']", element.trim_start_matches("layers/"))
            }
        ),
    }
}
