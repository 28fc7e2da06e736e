//! Dataset schemas: how a perturbation `.h5ad` names its conditions, its control cells and its
//! genes, and the one normalised form ([`PerturbationTable`]) every schema becomes.
//!
//! | schema | condition column | control | single | double | gene symbols |
//! |---|---|---|---|---|---|
//! | `gears` (GEARS / scDFM Norman) | `condition` | `ctrl` | `A+ctrl`, `ctrl+B` | `A+B` | `var['gene_name']`, `var['feature_name']`, else the index |
//! | `perturbench` | `condition` | `control` | `A` | `A+B` | the var index |
//! | `figshare-norman` | `guide_merged` | `ctrl` | `A+ctrl` | `A+B` | `var['gene_name']` (numeric index) |
//! | `combosciplex` (pertpy) | `condition` (+ `Drug1`, `Drug2`) | `control+control` / `control` | `control+X` | `A+B` | the var index |
//!
//! A condition becomes its perturbation tokens in file order, control tokens dropped; its
//! canonical name is the tokens joined by `+`, and `control` for the controls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::anndata::{AnnData, Column};
use crate::DataError;

/// The canonical name of the control condition.
pub const CONTROL: &str = "control";

/// A supported dataset layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    Gears,
    PerturBench,
    FigshareNorman,
    ComboSciPlex,
}

impl Schema {
    pub const ALL: [Schema; 4] = [
        Schema::Gears,
        Schema::PerturBench,
        Schema::FigshareNorman,
        Schema::ComboSciPlex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Schema::Gears => "gears",
            Schema::PerturBench => "perturbench",
            Schema::FigshareNorman => "figshare-norman",
            Schema::ComboSciPlex => "combosciplex",
        }
    }

    /// The obs column holding the condition labels.
    pub fn condition_column(self) -> &'static str {
        match self {
            Schema::FigshareNorman => "guide_merged",
            _ => "condition",
        }
    }

    /// What is perturbed: genes (CRISPRa) or drugs.
    pub fn kind(self) -> Perturbagen {
        match self {
            Schema::ComboSciPlex => Perturbagen::Drug,
            _ => Perturbagen::Gene,
        }
    }

    /// Whether a token of a condition label means "no perturbation in this slot".
    fn is_control_token(self, token: &str) -> bool {
        match self {
            Schema::Gears | Schema::FigshareNorman => token == "ctrl",
            Schema::PerturBench | Schema::ComboSciPlex => token == CONTROL,
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Schema {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schema::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown schema `{s}`; choose one of: {}",
                    Schema::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// Genetic or chemical perturbations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perturbagen {
    Gene,
    Drug,
}

/// One condition: the perturbation tokens applied together (empty for the control).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition {
    pub tokens: Vec<String>,
}

impl Condition {
    pub fn control() -> Self {
        Self { tokens: Vec::new() }
    }

    pub fn is_control(&self) -> bool {
        self.tokens.is_empty()
    }

    /// `control`, `A` or `A+B`.
    pub fn name(&self) -> String {
        if self.tokens.is_empty() {
            CONTROL.to_string()
        } else {
            self.tokens.join("+")
        }
    }

    /// Perturbations per condition the models take (scDFM's `Drug1`/`Drug2`).
    pub const SLOTS: usize = 2;

    /// The [`Self::SLOTS`] model slots, `control` filling an empty one.
    pub fn slots(&self) -> [String; Self::SLOTS] {
        std::array::from_fn(|i| {
            self.tokens
                .get(i)
                .cloned()
                .unwrap_or_else(|| CONTROL.to_string())
        })
    }

    /// Parse a canonical name (`control`, `A`, `A+B`; `ctrl` slots are accepted and dropped).
    pub fn parse(name: &str) -> Self {
        Self {
            tokens: name
                .split('+')
                .map(str::trim)
                .filter(|t| !t.is_empty() && *t != CONTROL && *t != "ctrl")
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Options that choose how a file is read.
#[derive(Debug, Clone, Default)]
pub struct SchemaOptions {
    /// Force a schema instead of detecting it.
    pub schema: Option<Schema>,
    /// Keep only cells whose `obs['dataset']` equals this (PerturBench mixes datasets).
    pub dataset: Option<String>,
}

/// A file's cells described in the normalised form.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbationTable {
    pub schema: Schema,
    pub kind: Perturbagen,
    /// Gene symbols in var order.
    pub genes: Vec<String>,
    /// Rows of the file that were kept (all, or those of the chosen dataset).
    pub rows: Vec<usize>,
    /// Distinct conditions, the control first, then by name.
    pub conditions: Vec<Condition>,
    /// For each kept row, its index into `conditions`.
    pub cell_condition: Vec<usize>,
    /// Per kept row, the doses of the two slots when the file has them (`Dose1`/`Dose2`,
    /// or `dose_val` like `1000+100`).
    pub doses: Option<Vec<[f64; 2]>>,
}

impl PerturbationTable {
    /// Index of the control condition (always 0).
    pub const CONTROL_INDEX: usize = 0;

    pub fn n_cells(&self) -> usize {
        self.rows.len()
    }

    /// Kept-cell positions (not file rows) of each condition.
    pub fn cells_by_condition(&self) -> Vec<Vec<usize>> {
        let mut by = vec![Vec::new(); self.conditions.len()];
        for (i, &c) in self.cell_condition.iter().enumerate() {
            by[c].push(i);
        }
        by
    }

    pub fn condition_index(&self, name: &str) -> Option<usize> {
        let want = Condition::parse(name);
        self.conditions.iter().position(|c| *c == want)
    }

    /// Number of (single, double) perturbation conditions.
    pub fn singles_doubles(&self) -> (usize, usize) {
        let n = |k: usize| {
            self.conditions
                .iter()
                .filter(|c| c.tokens.len() == k)
                .count()
        };
        (n(1), n(2))
    }

    /// Every distinct perturbation token, sorted.
    pub fn perturbation_tokens(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&String> =
            self.conditions.iter().flat_map(|c| &c.tokens).collect();
        set.into_iter().cloned().collect()
    }
}

fn labels(ad: &AnnData, column: &str) -> Option<Vec<Option<String>>> {
    ad.obs.column(column).map(Column::as_labels)
}

/// Guess the schema from the obs columns and the condition labels.
pub fn detect(ad: &AnnData) -> Result<Schema, DataError> {
    let has = |c: &str| ad.obs.column(c).is_some();
    if has("Drug1") && has("Drug2") && has("condition") {
        return Ok(Schema::ComboSciPlex);
    }
    if has("guide_merged") && !has("condition") {
        return Ok(Schema::FigshareNorman);
    }
    if let Some(values) = labels(ad, "condition") {
        let tokens: HashSet<&str> = values.iter().flatten().flat_map(|v| v.split('+')).collect();
        if tokens.contains("ctrl") {
            return Ok(Schema::Gears);
        }
        if tokens.contains(CONTROL) {
            return Ok(Schema::PerturBench);
        }
        return Err(DataError::Invalid {
            path: ad.path().to_path_buf(),
            problem: "obs['condition'] has no control label (`ctrl` or `control`)".into(),
            fix: "label the unperturbed cells `ctrl` (GEARS) or `control` (PerturBench), or pass \
                  the schema explicitly"
                .into(),
        });
    }
    Err(DataError::Invalid {
        path: ad.path().to_path_buf(),
        problem: "no condition column: obs has neither `condition` (GEARS, PerturBench, \
                  ComboSciPlex) nor `guide_merged` (figshare Norman)"
            .into(),
        fix: format!(
            "add obs['condition'] with labels like `A+B`, `A+ctrl`, `ctrl`; the obs columns \
             are: {}",
            ad.obs
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn gene_symbols(ad: &AnnData, schema: Schema) -> Result<Vec<String>, DataError> {
    let from_column = |c: &str| -> Option<Vec<String>> {
        ad.var.column(c).map(|col| {
            col.as_labels()
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect()
        })
    };
    let genes = match schema {
        Schema::FigshareNorman => from_column("gene_name").ok_or_else(|| DataError::Invalid {
            path: ad.path().to_path_buf(),
            problem: "var['gene_name'] is missing (the figshare Norman file has numeric var \
                      names and the symbols in `gene_name`)"
                .into(),
            fix: "add var['gene_name'] with gene symbols".into(),
        })?,
        Schema::Gears => from_column("gene_name")
            .or_else(|| from_column("feature_name"))
            .unwrap_or_else(|| ad.var.index.clone()),
        _ => ad.var.index.clone(),
    };
    let mut seen = HashMap::new();
    for (i, g) in genes.iter().enumerate() {
        if g.is_empty() {
            return Err(DataError::Invalid {
                path: ad.path().to_path_buf(),
                problem: format!("gene {i} has an empty symbol"),
                fix: "give every gene a symbol".into(),
            });
        }
        if let Some(first) = seen.insert(g.as_str(), i) {
            return Err(DataError::Invalid {
                path: ad.path().to_path_buf(),
                problem: format!("duplicate gene symbol `{g}` (genes {first} and {i})"),
                fix: "make the gene names unique (anndata: `adata.var_names_make_unique()`) or \
                      drop the duplicates"
                    .into(),
            });
        }
    }
    Ok(genes)
}

fn parse_dose(s: &str) -> Option<[f64; 2]> {
    let mut it = s.split('+').map(|t| t.trim().parse::<f64>().ok());
    let a = it.next()??;
    let b = match it.next() {
        Some(b) => b?,
        None => 0.0,
    };
    Some([a, b])
}

/// The rows of the cells whose `obs['dataset']` is `dataset` (all rows when `None`). With
/// `require_choice`, a file that mixes several datasets needs one chosen.
pub fn dataset_rows(
    ad: &AnnData,
    dataset: Option<&str>,
    require_choice: bool,
) -> Result<Vec<usize>, DataError> {
    let path = ad.path().to_path_buf();
    let col = labels(ad, "dataset");
    let names = |ds: &[Option<String>]| -> Vec<String> {
        let set: std::collections::BTreeSet<&str> =
            ds.iter().flatten().map(String::as_str).collect();
        set.into_iter().map(str::to_string).collect()
    };
    match (dataset, col) {
        (Some(want), Some(ds)) => {
            let rows: Vec<usize> = (0..ad.n_obs())
                .filter(|&r| ds[r].as_deref() == Some(want))
                .collect();
            if rows.is_empty() {
                return Err(DataError::Invalid {
                    path,
                    problem: format!("no cell has obs['dataset'] == `{want}`"),
                    fix: format!("choose one of: {}", names(&ds).join(", ")),
                });
            }
            Ok(rows)
        }
        (Some(want), None) => Err(DataError::Invalid {
            path,
            problem: format!("a dataset (`{want}`) was chosen but obs has no `dataset` column"),
            fix: "drop the dataset option".into(),
        }),
        (None, Some(ds)) if require_choice && names(&ds).len() > 1 => {
            let n = names(&ds);
            Err(DataError::Invalid {
                path,
                problem: format!(
                    "obs['dataset'] mixes {} datasets ({})",
                    n.len(),
                    n.join(", ")
                ),
                fix: "choose one with the dataset option (CLI: --dataset NAME; config: \
                      data.dataset)"
                    .into(),
            })
        }
        _ => Ok((0..ad.n_obs()).collect()),
    }
}

/// Read the perturbation layout of an open file (no expression values are read).
pub fn read_table(ad: &AnnData, opts: &SchemaOptions) -> Result<PerturbationTable, DataError> {
    let path = ad.path().to_path_buf();
    let schema = match opts.schema {
        Some(s) => s,
        None => detect(ad)?,
    };
    let cond_col = schema.condition_column();
    let conds = labels(ad, cond_col).ok_or_else(|| DataError::Invalid {
        path: path.clone(),
        problem: format!("obs['{cond_col}'] is missing, which the {schema} schema needs"),
        fix: "add the column, or choose another schema".into(),
    })?;
    let genes = gene_symbols(ad, schema)?;

    let rows = dataset_rows(ad, opts.dataset.as_deref(), true)?;
    let (conditions, cell_condition) = cell_conditions(ad, schema, &conds, &rows)?;
    let doses = read_doses(ad, schema, &rows);

    Ok(PerturbationTable {
        schema,
        kind: schema.kind(),
        genes,
        rows,
        conditions,
        cell_condition,
        doses,
    })
}

/// The conditions of the cells `rows` (control first, then by canonical name) and each cell's
/// position in that list; the control must be among them.
fn cell_conditions(
    ad: &AnnData,
    schema: Schema,
    conds: &[Option<String>],
    rows: &[usize],
) -> Result<(Vec<Condition>, Vec<usize>), DataError> {
    let path = ad.path();
    let cond_col = schema.condition_column();
    let mut index: BTreeMap<Condition, usize> = BTreeMap::new();
    let mut per_cell = Vec::with_capacity(rows.len());
    for &r in rows {
        let label = conds[r].as_deref().ok_or_else(|| DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "cell {} (row {r}) has no obs['{cond_col}'] value",
                ad.obs.index[r]
            ),
            fix: "give every cell a condition, or drop the unlabelled cells".into(),
        })?;
        let cond = parse_condition(path, schema, label, r)?;
        let n = index.len();
        index.entry(cond.clone()).or_insert(n);
        per_cell.push(cond);
    }
    if !index.contains_key(&Condition::control()) {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!("no control cells (no obs['{cond_col}'] value is the control label)"),
            fix: "the file must contain unperturbed control cells, labelled `ctrl` (GEARS, \
                  figshare), `control` (PerturBench) or `control+control` (ComboSciPlex)"
                .into(),
        });
    }
    // Control first, then by canonical name.
    let mut conditions: Vec<Condition> = index.into_keys().collect();
    conditions.sort_by_key(|c| (!c.is_control(), c.name()));
    let pos: HashMap<&Condition, usize> =
        conditions.iter().enumerate().map(|(i, c)| (c, i)).collect();
    let cell_condition = per_cell.iter().map(|c| pos[c]).collect();
    Ok((conditions, cell_condition))
}

/// The condition of label `label` (at row `r`): its perturbation tokens without control
/// tokens, at most two.
fn parse_condition(
    path: &Path,
    schema: Schema,
    label: &str,
    r: usize,
) -> Result<Condition, DataError> {
    let mut tokens = Vec::new();
    for t in label.split('+').map(str::trim) {
        if t.is_empty() {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                problem: format!("condition `{label}` (row {r}) has an empty token"),
                fix: "write conditions as `A`, `A+B` or the control label".into(),
            });
        }
        if !schema.is_control_token(t) && t != CONTROL {
            tokens.push(t.to_string());
        }
    }
    if tokens.len() > 2 {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            problem: format!("condition `{label}` has {} perturbations", tokens.len()),
            fix: "CCFM models singles and pairs; drop higher-order combinations".into(),
        });
    }
    Ok(Condition { tokens })
}

/// The dose pair of each cell of `rows`: from numeric `Dose1`/`Dose2`, else (ComboSciPlex)
/// parsed from `dose_val`; `None` when neither gives every cell one.
fn read_doses(ad: &AnnData, schema: Schema, rows: &[usize]) -> Option<Vec<[f64; 2]>> {
    match (ad.obs.column("Dose1"), ad.obs.column("Dose2")) {
        (Some(Column::Numeric(a)), Some(Column::Numeric(b))) => {
            Some(rows.iter().map(|&r| [a[r], b[r]]).collect())
        }
        _ => match labels(ad, "dose_val") {
            Some(d) if schema == Schema::ComboSciPlex => rows
                .iter()
                .map(|&r| d[r].as_deref().and_then(parse_dose))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        },
    }
}
