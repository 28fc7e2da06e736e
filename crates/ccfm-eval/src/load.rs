//! Reading one side of an evaluation from `.h5ad`: X as cell-eval sees it (log1p values used as
//! they are; integer counts normalised to the median total and log1p'd) and a label per cell.

use std::path::{Path, PathBuf};

use ccfm_data::preprocess::{check_values, log1p, normalize_total};
use ccfm_data::{AnnData, TargetSum};

use crate::pair::{CellSet, EvalError};

/// Cells read from a file.
#[derive(Debug, Clone)]
pub struct LoadedCells {
    pub path: PathBuf,
    pub genes: Vec<String>,
    pub cells: CellSet,
}

/// Read `path`'s X and `obs[pert_col]`.
pub fn load_cells(path: &Path, pert_col: &str) -> Result<LoadedCells, EvalError> {
    let ad = AnnData::open(path)?;
    let labels = ad
        .obs
        .column(pert_col)
        .ok_or_else(|| EvalError::MissingColumn {
            path: path.to_path_buf(),
            column: pert_col.to_string(),
            available: ad
                .obs
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?
        .as_labels();
    if let Some(i) = labels.iter().position(Option::is_none) {
        return Err(EvalError::Io {
            path: path.to_path_buf(),
            detail: format!(
                "obs/{pert_col}: cell {i} (`{}`) has no label; every cell needs its perturbation",
                ad.obs.index.get(i).map_or("", String::as_str)
            ),
        });
    }
    let labels: Vec<String> = labels.into_iter().map(Option::unwrap_or_default).collect();
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    let mut m = ad.read_rows_sparse("X", &rows)?;
    let stats = check_values(path, "X", &m, &ad.obs.index)?;
    if stats.all_integer && stats.stored > 0 {
        normalize_total(&mut m, TargetSum::Median);
        log1p(&mut m);
    } else if stats.max >= 15.0 {
        return Err(EvalError::NotLog {
            path: path.to_path_buf(),
            max: stats.max,
        });
    }
    let g = ad.n_vars();
    let mut x = vec![0f32; rows.len() * g];
    for r in 0..rows.len() {
        for p in m.indptr[r]..m.indptr[r + 1] {
            x[r * g + m.indices[p]] = m.data[p] as f32;
        }
    }
    Ok(LoadedCells {
        path: path.to_path_buf(),
        genes: ad.var.index.clone(),
        cells: CellSet { x, labels },
    })
}
