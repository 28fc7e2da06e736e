//! From a file to the training matrix, as scDFM prepares it: read the layout
//! ([`crate::schema`]), check the values, normalise counts (`normalize_total` + `log1p`) or take
//! log1p data as it is, select seurat highly-variable genes on all cells, force in the perturbed
//! genes, and hold the result as a dense `cells x genes` log1p matrix.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::anndata::AnnData;
use crate::hvg::{highly_variable_seurat, GeneMoments};
use crate::preprocess::{
    check_values, detect_scale, log1p, normalize_total, TargetSum, ValueScale,
};
use crate::schema::{read_table, Perturbagen, PerturbationTable, SchemaOptions};
use crate::vocab::GeneVocab;
use crate::DataError;

/// What to do with perturbed genes that are not measured (absent from var).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmeasuredPerturbations {
    /// Refuse the file (catches typos in condition labels).
    #[default]
    Error,
    /// Give them vocabulary tokens of their own so the model can embed them (HVG-subset files,
    /// such as PerturBench's 500 genes, rarely contain the perturbed genes).
    Vocabulary,
}

impl std::str::FromStr for UnmeasuredPerturbations {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "vocabulary" => Ok(Self::Vocabulary),
            _ => Err(format!(
                "unknown policy `{s}` for unmeasured perturbed genes; choose error or vocabulary"
            )),
        }
    }
}

/// How to prepare a file.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub schema: SchemaOptions,
    /// The matrix to read: `X` or `layers/<name>`. Default: `layers/counts` for ComboSciPlex
    /// when it exists (as scDFM does), else `X`.
    pub element: Option<String>,
    /// Override the detected value scale.
    pub scale: Option<ValueScale>,
    /// Target of `normalize_total` for count data (scDFM: the median).
    pub target_sum: TargetSum,
    /// Number of seurat HVGs to keep; `None` keeps every gene.
    pub n_top_genes: Option<usize>,
    /// Add measured perturbed genes to the HVG selection (scDFM does).
    pub force_include_perturbed: bool,
    pub unmeasured: UnmeasuredPerturbations,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            schema: SchemaOptions::default(),
            element: None,
            scale: None,
            target_sum: TargetSum::Median,
            n_top_genes: None,
            force_include_perturbed: true,
            unmeasured: UnmeasuredPerturbations::Error,
        }
    }
}

/// What loading did, for the run log and `ccfm inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareReport {
    pub path: PathBuf,
    pub element: String,
    pub scale: ValueScale,
    /// The `normalize_total` target when counts were normalised.
    pub target_sum: Option<f64>,
    pub value_max: f64,
    pub genes_in_file: usize,
    pub genes_selected: usize,
    /// Measured perturbed genes added to the HVG selection.
    pub forced_genes: Vec<String>,
    /// Perturbed genes with no expression column.
    pub unmeasured_genes: Vec<String>,
    pub seconds: f64,
}

/// A prepared dataset: the layout plus the dense log1p expression of the selected genes.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub table: PerturbationTable,
    /// Selected gene symbols, in var order.
    pub genes: Vec<String>,
    /// Their columns in the file.
    pub gene_columns: Vec<usize>,
    /// Row-major `(table.n_cells(), genes.len())` log1p values.
    pub x: Vec<f32>,
    pub report: PrepareReport,
}

impl PreparedData {
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// The expression row of kept cell `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        let g = self.genes.len();
        &self.x[i * g..(i + 1) * g]
    }

    /// Row-major `(cells, genes)` values of the kept cells `cells` over the columns `genes`.
    pub fn gather(&self, cells: &[usize], genes: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(cells.len() * genes.len());
        for &c in cells {
            let row = self.row(c);
            out.extend(genes.iter().map(|&g| row[g]));
        }
        out
    }

    /// The scDFM vocabulary: the specials, the selected genes, and for gene perturbations the
    /// unmeasured perturbed genes (when allowed), all in byte order.
    pub fn vocabulary(&self) -> GeneVocab {
        let mut all = self.genes.clone();
        if self.table.kind == Perturbagen::Gene {
            all.extend(self.report.unmeasured_genes.iter().cloned());
        }
        GeneVocab::from_genes(&all)
    }

    /// scDFM's `perturbation_dict`: every perturbation token plus `control`, sorted by bytes.
    pub fn perturbation_dict(&self) -> Vec<String> {
        let mut t = self.table.perturbation_tokens();
        t.push(crate::schema::CONTROL.to_string());
        t.sort();
        t
    }
}

/// Rows of a matrix as log1p values, with what was found on the way.
struct Log1pRows {
    matrix: crate::anndata::CsrRows,
    stats: crate::preprocess::ValueStats,
    scale: ValueScale,
    target_sum: Option<f64>,
    log_base: Option<f64>,
}

/// Read `rows` of `element`, check the values, and bring them to log1p: counts (detected, or
/// `scale` when given) are normalised with `target` and log1p'd; log1p data is kept, with its
/// `uns['log1p']['base']`.
fn read_log1p(
    ad: &AnnData,
    element: &str,
    rows: &[usize],
    scale: Option<ValueScale>,
    target: TargetSum,
) -> Result<Log1pRows, DataError> {
    let path = ad.path();
    let mut matrix = ad.read_rows_sparse(element, rows)?;
    let names: Vec<String> = rows.iter().map(|&r| ad.obs.index[r].clone()).collect();
    let stats = check_values(path, element, &matrix, &names)?;
    let scale = match scale {
        Some(s) => s,
        None => detect_scale(path, element, &stats, ad.exists("uns/log1p"))?,
    };
    let (mut target_sum, mut log_base) = (None, None);
    match scale {
        ValueScale::Counts => {
            target_sum = Some(normalize_total(&mut matrix, target));
            log1p(&mut matrix);
        }
        ValueScale::Log1p => log_base = ad.scalar_f64("uns/log1p/base"),
    }
    Ok(Log1pRows {
        matrix,
        stats,
        scale,
        target_sum,
        log_base,
    })
}

/// The matrix to read: the requested one, else `layers/counts` for ComboSciPlex files that have
/// it, else `X`.
fn choose_element(ad: &AnnData, table: &PerturbationTable, opts: &PrepareOptions) -> String {
    match &opts.element {
        Some(e) => e.clone(),
        None if table.schema == crate::Schema::ComboSciPlex && ad.exists("layers/counts") => {
            "layers/counts".to_string()
        }
        None => "X".to_string(),
    }
}

/// The columns of the measured perturbed genes and the names of the unmeasured ones (empty for
/// drug perturbations); unmeasured genes are an error unless `policy` allows them.
fn perturbed_genes(
    path: &Path,
    table: &PerturbationTable,
    policy: UnmeasuredPerturbations,
) -> Result<(Vec<usize>, Vec<String>), DataError> {
    let gene_pos: std::collections::HashMap<&str, usize> = table
        .genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut unmeasured = Vec::new();
    let mut perturbed_cols = Vec::new();
    if table.kind == Perturbagen::Gene {
        for t in table.perturbation_tokens() {
            match gene_pos.get(t.as_str()) {
                Some(&c) => perturbed_cols.push(c),
                None => unmeasured.push(t),
            }
        }
        if !unmeasured.is_empty() && policy == UnmeasuredPerturbations::Error {
            return Err(unmeasured_error(path, &unmeasured));
        }
    }
    Ok((perturbed_cols, unmeasured))
}

/// The error for perturbed genes that are not among the file's genes (the first 8 shown).
fn unmeasured_error(path: &Path, unmeasured: &[String]) -> DataError {
    let shown: Vec<&str> = unmeasured.iter().take(8).map(String::as_str).collect();
    DataError::Invalid {
        path: path.to_path_buf(),
        problem: format!(
            "{} perturbed gene(s) named by conditions are not among the file's genes: {}{}",
            unmeasured.len(),
            shown.join(", "),
            if unmeasured.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ),
        fix: "check the condition labels for typos; if the file is an HVG subset that \
              leaves the perturbed genes out, allow them as vocabulary-only tokens \
              (config: data.unmeasured_perturbations = \"vocabulary\"; CLI: \
              --allow-unmeasured)"
            .into(),
    }
}

/// The kept gene columns (seurat HVGs, or all) in var order, and the measured perturbed genes
/// that were forced in.
fn select_genes(
    m: &crate::anndata::CsrRows,
    table: &PerturbationTable,
    opts: &PrepareOptions,
    log_base: Option<f64>,
    perturbed_cols: &[usize],
) -> (Vec<usize>, Vec<String>) {
    let n_genes = table.genes.len();
    let mut keep = match opts.n_top_genes {
        Some(n) => {
            let moments = GeneMoments::from_csr(&m.data, &m.indices, &m.indptr, n_genes, log_base);
            highly_variable_seurat(&moments, n)
        }
        None => vec![true; n_genes],
    };
    let mut forced = Vec::new();
    if opts.force_include_perturbed {
        for &c in perturbed_cols {
            if !keep[c] {
                keep[c] = true;
                forced.push(table.genes[c].clone());
            }
        }
    }
    let gene_columns: Vec<usize> = (0..n_genes).filter(|&c| keep[c]).collect();
    (gene_columns, forced)
}

/// Row-major dense `(n_rows, gene_columns.len())` values of the selected columns of `m`.
fn densify(
    m: &crate::anndata::CsrRows,
    n_rows: usize,
    n_genes: usize,
    gene_columns: &[usize],
) -> Vec<f32> {
    let mut col_pos = vec![usize::MAX; n_genes];
    for (k, &c) in gene_columns.iter().enumerate() {
        col_pos[c] = k;
    }
    let width = gene_columns.len();
    let mut x = vec![0f32; n_rows * width];
    for r in 0..n_rows {
        for p in m.indptr[r]..m.indptr[r + 1] {
            let k = col_pos[m.indices[p]];
            if k != usize::MAX {
                x[r * width + k] = m.data[p] as f32;
            }
        }
    }
    x
}

/// Read and prepare `path`.
pub fn prepare(path: impl AsRef<Path>, opts: &PrepareOptions) -> Result<PreparedData, DataError> {
    let start = Instant::now();
    let path = path.as_ref();
    let ad = AnnData::open(path)?;
    let table = read_table(&ad, &opts.schema)?;

    let element = choose_element(&ad, &table, opts);
    let values = read_log1p(&ad, &element, &table.rows, opts.scale, opts.target_sum)?;
    // Perturbed genes: measured ones may be forced in, unmeasured ones are refused or noted.
    let (perturbed_cols, unmeasured) = perturbed_genes(path, &table, opts.unmeasured)?;
    let m = &values.matrix;
    let (gene_columns, forced) = select_genes(m, &table, opts, values.log_base, &perturbed_cols);
    let genes: Vec<String> = gene_columns
        .iter()
        .map(|&c| table.genes[c].clone())
        .collect();
    // Densify only the selected genes.
    let n_genes = table.genes.len();
    let x = densify(m, table.n_cells(), n_genes, &gene_columns);

    let report = PrepareReport {
        path: path.to_path_buf(),
        element,
        scale: values.scale,
        target_sum: values.target_sum,
        value_max: values.stats.max,
        genes_in_file: n_genes,
        genes_selected: genes.len(),
        forced_genes: forced,
        unmeasured_genes: unmeasured,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok(PreparedData {
        table,
        genes,
        gene_columns,
        x,
        report,
    })
}

/// Seurat highly-variable genes of a file, as `sc.pp.highly_variable_genes(adata,
/// n_top_genes=n_top)` selects them: var names in var order. Count data are normalised to the
/// median total and log1p'd first; `dataset` keeps the cells with that `obs['dataset']`.
pub fn highly_variable_genes(
    path: impl AsRef<Path>,
    element: &str,
    dataset: Option<&str>,
    n_top: usize,
) -> Result<Vec<String>, DataError> {
    let path = path.as_ref();
    let ad = AnnData::open(path)?;
    let rows = crate::schema::dataset_rows(&ad, dataset, false)?;
    let v = read_log1p(&ad, element, &rows, None, TargetSum::Median)?;
    let (m, log_base) = (v.matrix, v.log_base);
    let moments = GeneMoments::from_csr(&m.data, &m.indices, &m.indptr, ad.n_vars(), log_base);
    Ok(highly_variable_seurat(&moments, n_top)
        .iter()
        .zip(&ad.var.index)
        .filter(|(keep, _)| **keep)
        .map(|(_, g)| g.clone())
        .collect())
}
