//! From a file to the training matrix, as scDFM prepares it: read the layout
//! ([`crate::schema`]), check the values, normalise counts (`normalize_total` + `log1p`) or take
//! log1p data as it is, select seurat highly-variable genes on all cells, force in the perturbed
//! genes, and hold the result as a dense `cells x genes` log1p matrix — in memory when it fits
//! the memory budget (`PrepareOptions::max_memory`), otherwise read from the file block by block
//! ([`crate::stream`]), with the same statistics computed in passes over the file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::anndata::{AnnData, MatrixEncoding};
use crate::blocks::RowReader;
use crate::hvg::{highly_variable_seurat, GeneMoments};
use crate::preprocess::{
    check_values, detect_scale, log1p, normalize_total, row_totals, scale_factors, target_total,
    to_log1p, TargetSum, ValueScale, ValueStats,
};
use crate::schema::{read_table, Perturbagen, PerturbationTable, SchemaOptions};
use crate::stream::{human_bytes, Expression, Layout, MemoryBudget, StreamedMatrix};
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
    /// Memory the prepared expression may take: in memory when loading fits it, else streamed.
    pub max_memory: MemoryBudget,
    /// Cells per streamed block (one condition's consecutive cells).
    pub block_cells: usize,
}

/// Cells per streamed block by default.
pub const BLOCK_CELLS: usize = 1024;

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
            max_memory: MemoryBudget::Auto,
            block_cells: BLOCK_CELLS,
        }
    }
}

/// Where the prepared expression is kept, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageReport {
    /// The in-memory loader's peak (sparse arrays read whole, the kept rows, the dense result),
    /// estimated from the row pointers before reading values.
    pub in_memory_bytes: u64,
    /// The budget it was compared with (`max_memory`, resolved).
    pub budget: u64,
    pub budget_setting: MemoryBudget,
    /// Cells per block when streamed; `None` in memory.
    pub block_cells: Option<usize>,
}

impl std::fmt::Display for StorageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let setting = match self.budget_setting {
            MemoryBudget::Auto => format!("auto = {}", human_bytes(self.budget)),
            MemoryBudget::Bytes(b) => human_bytes(b),
        };
        match self.block_cells {
            None => write!(
                f,
                "in memory (~{} to load, data.max_memory {setting})",
                human_bytes(self.in_memory_bytes)
            ),
            Some(b) => write!(
                f,
                "streamed from the file (~{} to load exceeds data.max_memory {setting}; \
                 a cache of at most {} holds decoded blocks of {b} cells)",
                human_bytes(self.in_memory_bytes),
                human_bytes(self.budget)
            ),
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
    pub storage: StorageReport,
    pub seconds: f64,
}

/// A prepared dataset: the layout plus the log1p expression of the selected genes.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub table: PerturbationTable,
    /// Selected gene symbols, in var order.
    pub genes: Vec<String>,
    /// Their columns in the file.
    pub gene_columns: Vec<usize>,
    /// `(table.n_cells(), genes.len())` log1p values, in memory or streamed.
    pub x: Expression,
    pub report: PrepareReport,
}

impl PreparedData {
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// Row-major `(cells, genes)` values of the kept cells `cells` over the columns `genes`.
    pub fn gather(&self, cells: &[usize], genes: &[usize]) -> Result<Vec<f32>, DataError> {
        match &self.x {
            Expression::InMemory(x) => {
                let g = self.genes.len();
                let mut out = Vec::with_capacity(cells.len() * genes.len());
                for &c in cells {
                    let row = &x[c * g..(c + 1) * g];
                    out.extend(genes.iter().map(|&j| row[j]));
                }
                Ok(out)
            }
            Expression::Streamed(s) => s.gather(cells, genes),
        }
    }

    /// Every selected gene of the kept cells `cells`, row-major.
    pub fn rows(&self, cells: &[usize]) -> Result<Vec<f32>, DataError> {
        let all: Vec<usize> = (0..self.genes.len()).collect();
        self.gather(cells, &all)
    }

    /// Per selected gene, the sums of `expm1(x)` and its square over every kept cell (as
    /// [`GeneMoments::from_dense`] computes them on the dense matrix).
    pub fn gene_moments(&self) -> GeneMoments {
        match &self.x {
            Expression::InMemory(x) => {
                GeneMoments::from_dense(x, self.table.n_cells(), self.genes.len(), None)
            }
            Expression::Streamed(s) => s.moments().clone(),
        }
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

/// The kept gene columns (seurat HVGs from `moments`, or all) in var order, and the measured
/// perturbed genes that were forced in.
fn select_genes(
    moments: impl FnOnce() -> GeneMoments,
    table: &PerturbationTable,
    opts: &PrepareOptions,
    perturbed_cols: &[usize],
) -> (Vec<usize>, Vec<String>) {
    let n_genes = table.genes.len();
    let mut keep = match opts.n_top_genes {
        Some(n) => highly_variable_seurat(&moments(), n),
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

/// Row-major dense `(rows of m, width)` f32 values of `m`, each stored value at its column's
/// position `col_pos[column]` (`u32::MAX`: not selected).
pub(crate) fn densify(m: &crate::anndata::CsrRows, col_pos: &[u32], width: usize) -> Vec<f32> {
    let n_rows = m.indptr.len() - 1;
    let mut x = vec![0f32; n_rows * width];
    for r in 0..n_rows {
        for p in m.indptr[r]..m.indptr[r + 1] {
            let k = col_pos[m.indices[p]];
            if k != u32::MAX {
                x[r * width + k as usize] = m.data[p] as f32;
            }
        }
    }
    x
}

/// For each of `n_genes` file columns, its position among `gene_columns` (`u32::MAX`: absent).
pub(crate) fn column_positions(n_genes: usize, gene_columns: &[usize]) -> Vec<u32> {
    let mut col_pos = vec![u32::MAX; n_genes];
    for (k, &c) in gene_columns.iter().enumerate() {
        col_pos[c] = k as u32;
    }
    col_pos
}

/// Estimated peak memory of loading `element` for `rows` the way the in-memory path does, from
/// the row pointers, before any value is read: sparse arrays read whole (f64 values, i64
/// indices), the kept rows as f64 values and indices, and a dense f32 result `width` genes wide.
/// The reader comes back for CSR storage, to be reused when streaming.
fn load_estimate(
    ad: &AnnData,
    element: &str,
    rows: &[usize],
    width: u64,
) -> Result<(u64, Option<RowReader>), DataError> {
    let n_kept = rows.len() as u64;
    let dense = 4 * n_kept * width;
    Ok(match ad.encoding(element)? {
        MatrixEncoding::Csr => {
            let reader = RowReader::open(ad, element)?;
            let read = 16 * (reader.stored_total() + reader.stored(rows));
            (read + dense, Some(reader))
        }
        MatrixEncoding::Dense => (16 * n_kept * ad.n_vars() as u64 + dense, None),
        MatrixEncoding::Csc => {
            let stored = ad.stored_values(element).unwrap_or(0);
            (40 * stored + dense, None)
        }
    })
}

/// Read and prepare `path`: in memory when loading fits `opts.max_memory`, else streamed.
pub fn prepare(path: impl AsRef<Path>, opts: &PrepareOptions) -> Result<PreparedData, DataError> {
    let start = Instant::now();
    let path = path.as_ref();
    let ad = AnnData::open(path)?;
    let table = read_table(&ad, &opts.schema)?;
    let element = choose_element(&ad, &table, opts);
    let n_vars = ad.n_vars() as u64;
    let width = opts.n_top_genes.map_or(n_vars, |n| {
        (n as u64 + table.perturbation_tokens().len() as u64).min(n_vars)
    });
    let (in_memory_bytes, reader) = load_estimate(&ad, &element, &table.rows, width)?;
    let budget = opts.max_memory.bytes();
    let fits = in_memory_bytes <= budget;
    let storage = StorageReport {
        in_memory_bytes,
        budget,
        budget_setting: opts.max_memory,
        block_cells: (!fits).then_some(opts.block_cells.max(1)),
    };
    let mut data = if fits {
        prepare_in_memory(&ad, table, &element, opts, storage)?
    } else {
        let reader = match reader {
            Some(r) => r,
            None => RowReader::open(&ad, &element)?,
        };
        prepare_streamed(&ad, table, &element, opts, (reader, storage))?
    };
    data.report.seconds = start.elapsed().as_secs_f64();
    Ok(data)
}

/// The report of a preparation before its time is filled in.
fn report(
    ad: &AnnData,
    element: &str,
    (found, genes): (&Found, &GenesChosen),
    n_genes: usize,
    storage: StorageReport,
) -> PrepareReport {
    PrepareReport {
        path: ad.path().to_path_buf(),
        element: element.to_string(),
        scale: found.scale,
        target_sum: found.target_sum,
        value_max: found.stats.max,
        genes_in_file: n_genes,
        genes_selected: genes.columns.len(),
        forced_genes: genes.forced.clone(),
        unmeasured_genes: genes.unmeasured.clone(),
        storage,
        seconds: 0.0,
    }
}

/// What reading the values found: their summary, scale and normalisation.
struct Found {
    stats: ValueStats,
    scale: ValueScale,
    target_sum: Option<f64>,
    log_base: Option<f64>,
}

/// The chosen genes.
struct GenesChosen {
    columns: Vec<usize>,
    forced: Vec<String>,
    unmeasured: Vec<String>,
}

impl GenesChosen {
    fn names(&self, table: &PerturbationTable) -> Vec<String> {
        self.columns
            .iter()
            .map(|&c| table.genes[c].clone())
            .collect()
    }
}

/// Prepare with every value in memory.
fn prepare_in_memory(
    ad: &AnnData,
    table: PerturbationTable,
    element: &str,
    opts: &PrepareOptions,
    storage: StorageReport,
) -> Result<PreparedData, DataError> {
    let values = read_log1p(ad, element, &table.rows, opts.scale, opts.target_sum)?;
    // Perturbed genes: measured ones may be forced in, unmeasured ones are refused or noted.
    let (perturbed_cols, unmeasured) = perturbed_genes(ad.path(), &table, opts.unmeasured)?;
    let m = &values.matrix;
    let n_genes = table.genes.len();
    let moments =
        || GeneMoments::from_csr(&m.data, &m.indices, &m.indptr, n_genes, values.log_base);
    let (columns, forced) = select_genes(moments, &table, opts, &perturbed_cols);
    let chosen = GenesChosen {
        columns,
        forced,
        unmeasured,
    };
    // Densify only the selected genes.
    let col_pos = column_positions(n_genes, &chosen.columns);
    let x = densify(m, &col_pos, chosen.columns.len());
    let found = Found {
        stats: values.stats,
        scale: values.scale,
        target_sum: values.target_sum,
        log_base: values.log_base,
    };
    Ok(PreparedData {
        report: report(ad, element, (&found, &chosen), n_genes, storage),
        genes: chosen.names(&table),
        gene_columns: chosen.columns,
        x: Expression::InMemory(x),
        table,
    })
}

/// The names of the file rows `rows`.
fn row_names(ad: &AnnData, rows: &[usize]) -> Vec<String> {
    rows.iter().map(|&r| ad.obs.index[r].clone()).collect()
}

/// Pass 1 over the kept rows: check the values, find their scale and each cell's total; the
/// `normalize_total` factor of each cell for counts.
fn scan_values(
    ad: &AnnData,
    reader: &RowReader,
    rows: &[usize],
    element: &str,
    opts: &PrepareOptions,
) -> Result<(Found, Option<Vec<f64>>), DataError> {
    let mut stats: Option<ValueStats> = None;
    let mut totals = Vec::with_capacity(rows.len());
    let block_rows = reader.rows_within(rows, opts.max_memory.bytes() / 4);
    reader.for_each_block(rows, block_rows, |block, m| {
        let s = check_values(ad.path(), element, &m, &row_names(ad, block))?;
        stats = Some(stats.map_or(s, |t| t.merge(s)));
        totals.extend(row_totals(&m));
        Ok(())
    })?;
    let stats = stats.unwrap_or(ValueStats {
        min: 0.0,
        max: 0.0,
        all_integer: true,
        stored: 0,
    });
    let scale = match opts.scale {
        Some(s) => s,
        None => detect_scale(ad.path(), element, &stats, ad.exists("uns/log1p"))?,
    };
    let (target_sum, log_base, factors) = match scale {
        ValueScale::Counts => {
            let target = target_total(&totals, opts.target_sum);
            (Some(target), None, Some(scale_factors(&totals, target)))
        }
        ValueScale::Log1p => (None, ad.scalar_f64("uns/log1p/base"), None),
    };
    let found = Found {
        stats,
        scale,
        target_sum,
        log_base,
    };
    Ok((found, factors))
}

/// Pass 2: per-gene moments of every file gene over the kept cells, at the file's precision
/// (for the HVG selection) and as f32 values (for the prediction genes).
fn scan_moments(
    reader: &RowReader,
    rows: &[usize],
    (factors, log_base): (Option<&[f64]>, Option<f64>),
    budget: MemoryBudget,
) -> Result<(GeneMoments, GeneMoments), DataError> {
    let n = reader.n_cols();
    let (mut full, mut f32s) = (GeneMoments::new(n), GeneMoments::new(n));
    let mut done = 0;
    let block_rows = reader.rows_within(rows, budget.bytes() / 4);
    reader.for_each_block(rows, block_rows, |block, mut m| {
        to_log1p(&mut m, factors.map(|f| &f[done..done + block.len()]));
        full.add_csr(&m.data, &m.indices, block.len(), log_base);
        f32s.add_csr_f32(&m.data, &m.indices, block.len());
        done += block.len();
        Ok(())
    })?;
    Ok((full, f32s))
}

/// Prepare with the values left in the file: the statistics in two passes over it, the
/// expression read block by block later.
fn prepare_streamed(
    ad: &AnnData,
    table: PerturbationTable,
    element: &str,
    opts: &PrepareOptions,
    (reader, storage): (RowReader, StorageReport),
) -> Result<PreparedData, DataError> {
    let rows = &table.rows;
    let (found, factors) = scan_values(ad, &reader, rows, element, opts)?;
    let (perturbed_cols, unmeasured) = perturbed_genes(ad.path(), &table, opts.unmeasured)?;
    let scale = (factors.as_deref(), found.log_base);
    let (full, f32s) = scan_moments(&reader, rows, scale, opts.max_memory)?;
    let (columns, forced) = select_genes(|| full, &table, opts, &perturbed_cols);
    let chosen = GenesChosen {
        columns,
        forced,
        unmeasured,
    };
    let n_genes = table.genes.len();
    let pools = table.cells_by_condition();
    let mut place = vec![(0u32, 0u32); table.n_cells()];
    for (cond, pool) in pools.iter().enumerate() {
        for (pos, &c) in pool.iter().enumerate() {
            place[c] = (cond as u32, pos as u32);
        }
    }
    let layout = Layout {
        rows: table.rows.clone(),
        factors,
        col_pos: column_positions(n_genes, &chosen.columns),
        width: chosen.columns.len(),
        block_cells: opts.block_cells.max(1),
        pools,
        place,
        moments: f32s.select(&chosen.columns),
        reader,
    };
    let budget = opts.max_memory.bytes();
    Ok(PreparedData {
        report: report(ad, element, (&found, &chosen), n_genes, storage),
        genes: chosen.names(&table),
        gene_columns: chosen.columns,
        x: Expression::Streamed(StreamedMatrix::new(layout, budget)),
        table,
    })
}

/// Seurat highly-variable genes of a file, as `sc.pp.highly_variable_genes(adata,
/// n_top_genes=n_top)` selects them: var names in var order. Count data are normalised to the
/// median total and log1p'd first; `dataset` keeps the cells with that `obs['dataset']`. The
/// matrix is loaded when that fits `budget`; otherwise (CSR and dense storage) it is read in
/// blocks of rows, in two passes, with the same result.
pub fn highly_variable_genes(
    path: impl AsRef<Path>,
    element: &str,
    dataset: Option<&str>,
    n_top: usize,
    budget: MemoryBudget,
) -> Result<Vec<String>, DataError> {
    let path = path.as_ref();
    let ad = AnnData::open(path)?;
    let rows = crate::schema::dataset_rows(&ad, dataset, false)?;
    let (estimate, reader) = load_estimate(&ad, element, &rows, 0)?;
    let moments = if estimate <= budget.bytes() {
        let v = read_log1p(&ad, element, &rows, None, TargetSum::Median)?;
        let m = v.matrix;
        GeneMoments::from_csr(&m.data, &m.indices, &m.indptr, ad.n_vars(), v.log_base)
    } else {
        let reader = match reader {
            Some(r) => r,
            None => RowReader::open(&ad, element)?,
        };
        let opts = PrepareOptions {
            max_memory: budget,
            ..Default::default()
        };
        let (found, factors) = scan_values(&ad, &reader, &rows, element, &opts)?;
        scan_moments(&reader, &rows, (factors.as_deref(), found.log_base), budget)?.0
    };
    Ok(highly_variable_seurat(&moments, n_top)
        .iter()
        .zip(&ad.var.index)
        .filter(|(keep, _)| **keep)
        .map(|(_, g)| g.clone())
        .collect())
}
