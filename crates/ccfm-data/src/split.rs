//! Train / validation / test splits over conditions.
//!
//! - `additive` (scDFM): the doubles, sorted by name, are shuffled with the fold's seeded RNG
//!   and the first `floor(test_fraction * n)` are the test set; every single and the other
//!   doubles train.
//! - `combinations` (scDFM's "holdout"): the first `holdout_doubles` of that shuffled test list,
//!   plus the singles of their genes, are the test set; everything else trains (as in the
//!   reference, the other shuffled doubles stay in training).
//! - `user`: a JSON file `{"train": [...], "val": [...], "test": [...]}` of condition names;
//!   without `train`, every condition not in `val` or `test` trains.
//!
//! The validation set is carved from the *training doubles* (never from the test set). The
//! control condition belongs to no list: control cells serve training and testing alike, as
//! in scDFM. Each test double is labelled seen0/seen1/seen2 by how many of its singles train.
//!
//! The RNG is the project's own (ChaCha8 seeded with `seed + fold`), so the folds differ from
//! scDFM's numpy draws but are stable across platforms and versions.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::schema::{Condition, PerturbationTable};
use crate::DataError;

/// How the test conditions are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitMethod {
    Additive,
    Combinations,
    User(PathBuf),
}

impl fmt::Display for SplitMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitMethod::Additive => f.write_str("additive"),
            SplitMethod::Combinations => f.write_str("combinations"),
            SplitMethod::User(p) => write!(f, "user:{}", p.display()),
        }
    }
}

/// Split settings (scDFM: additive, fold 0..4, seed 42, 30% of doubles).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    pub method: SplitMethod,
    pub fold: u64,
    pub seed: u64,
    pub test_fraction: f64,
    /// Doubles held out by `combinations`.
    pub holdout_doubles: usize,
    /// Fraction of the training doubles moved to validation.
    pub val_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            method: SplitMethod::Additive,
            fold: 0,
            seed: 42,
            test_fraction: 0.3,
            holdout_doubles: 15,
            val_fraction: 0.1,
        }
    }
}

/// A split: condition names in each role, and the seen-count of each test double.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub method: String,
    pub fold: u64,
    pub seed: u64,
    pub train: Vec<String>,
    pub val: Vec<String>,
    pub test: Vec<String>,
    /// Test double name -> number of its single conditions in `train` (0, 1 or 2).
    pub seen: BTreeMap<String, u8>,
}

fn invalid(path: &Path, problem: String, fix: &str) -> DataError {
    DataError::Invalid {
        path: path.to_path_buf(),
        problem,
        fix: fix.to_string(),
    }
}

impl Split {
    /// Build the split of `table` described by `cfg`. `data_path` names the data in errors.
    pub fn make(
        table: &PerturbationTable,
        cfg: &SplitConfig,
        data_path: &Path,
    ) -> Result<Self, DataError> {
        if let SplitMethod::User(file) = &cfg.method {
            let names: Vec<String> = table.conditions.iter().map(Condition::name).collect();
            let (train, val, test) = read_user(file, &names)?;
            return Ok(Self::with_lists(cfg, train, val, test));
        }
        let mut doubles: Vec<String> = table
            .conditions
            .iter()
            .filter(|c| c.tokens.len() == 2)
            .map(Condition::name)
            .collect();
        doubles.sort();
        let singles: Vec<String> = table
            .conditions
            .iter()
            .filter(|c| c.tokens.len() == 1)
            .map(Condition::name)
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(cfg.fold));
        let (mut train, mut test) = hold_out(cfg, &singles, &doubles, &mut rng, data_path)?;
        let val = carve_validation(&mut train, cfg.val_fraction, &mut rng);
        train.sort();
        test.sort();
        Ok(Self::with_lists(cfg, train, val, test))
    }

    /// The split of `cfg` with these lists, its test doubles labelled.
    fn with_lists(
        cfg: &SplitConfig,
        train: Vec<String>,
        val: Vec<String>,
        test: Vec<String>,
    ) -> Self {
        let mut split = Split {
            method: cfg.method.to_string(),
            fold: cfg.fold,
            seed: cfg.seed,
            train,
            val,
            test,
            seen: BTreeMap::new(),
        };
        split.label_seen();
        split
    }

    fn label_seen(&mut self) {
        let train: HashSet<&str> = self.train.iter().map(String::as_str).collect();
        self.seen = self
            .test
            .iter()
            .filter(|t| t.contains('+'))
            .map(|t| {
                let n = t.split('+').filter(|g| train.contains(g)).count() as u8;
                (t.clone(), n)
            })
            .collect();
    }

    /// `seen0`, `seen1`, `seen2` for a test double; `single` for a test single.
    pub fn group_of(&self, condition: &str) -> String {
        match self.seen.get(condition) {
            Some(n) => format!("seen{n}"),
            None => "single".to_string(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "fold": self.fold,
            "seed": self.seed,
            "train": self.train,
            "val": self.val,
            "test": self.test,
            "seen": self.seen,
        })
    }

    /// Write the split as JSON (atomically).
    pub fn write_json(&self, path: &Path) -> Result<(), DataError> {
        let text = serde_json::to_string_pretty(&self.to_json()).expect("plain JSON") + "\n";
        crate::fs::write_atomic(path, text.as_bytes())
    }
}

/// The (train, test) conditions of the `additive` and `combinations` splits, before validation
/// is carved out; `doubles` are sorted by name.
fn hold_out(
    cfg: &SplitConfig,
    singles: &[String],
    doubles: &[String],
    rng: &mut ChaCha8Rng,
    data_path: &Path,
) -> Result<(Vec<String>, Vec<String>), DataError> {
    if doubles.is_empty() {
        return Err(invalid(
            data_path,
            format!(
                "the {} split holds out doubles, and the data has none",
                cfg.method
            ),
            "use a user split (data.split = \"split.json\")",
        ));
    }
    let mut shuffled = doubles.to_vec();
    shuffled.shuffle(rng);
    let k = ((cfg.test_fraction * doubles.len() as f64).floor() as usize).clamp(1, doubles.len());
    let held: Vec<String> = shuffled[..k].to_vec();
    if cfg.method == SplitMethod::Additive {
        let train = singles
            .iter()
            .chain(&shuffled[k..])
            .cloned()
            .collect::<Vec<_>>();
        Ok((train, held))
    } else {
        let chosen: Vec<String> = held.into_iter().take(cfg.holdout_doubles.max(1)).collect();
        Ok(hold_out_combinations(chosen, singles, doubles))
    }
}

/// `combinations`: the chosen doubles and the singles of their genes test, everything else
/// trains.
fn hold_out_combinations(
    chosen: Vec<String>,
    singles: &[String],
    doubles: &[String],
) -> (Vec<String>, Vec<String>) {
    let genes: HashSet<&str> = chosen.iter().flat_map(|d| d.split('+')).collect();
    let mut test = chosen.clone();
    test.extend(
        singles
            .iter()
            .filter(|s| genes.contains(s.as_str()))
            .cloned(),
    );
    let tset: HashSet<&String> = test.iter().collect();
    let train = singles
        .iter()
        .chain(doubles)
        .filter(|c| !tset.contains(c))
        .cloned()
        .collect();
    (train, test)
}

/// Move a shuffled `val_fraction` of the training doubles (at least one, never all) out of
/// `train`; returns them sorted.
fn carve_validation(
    train: &mut Vec<String>,
    val_fraction: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<String> {
    let mut train_doubles: Vec<String> =
        train.iter().filter(|c| c.contains('+')).cloned().collect();
    train_doubles.shuffle(rng);
    let n_val = if val_fraction > 0.0 && train_doubles.len() >= 2 {
        ((val_fraction * train_doubles.len() as f64).round() as usize)
            .clamp(1, train_doubles.len() - 1)
    } else {
        0
    };
    let mut val: Vec<String> = train_doubles[..n_val].to_vec();
    val.sort();
    let vset: HashSet<&String> = val.iter().collect();
    train.retain(|c| !vset.contains(c));
    val
}

type Lists = (Vec<String>, Vec<String>, Vec<String>);

/// Read a user split file: its lists checked against the data's condition `names`.
fn read_user(file: &Path, names: &[String]) -> Result<Lists, DataError> {
    let text = std::fs::read_to_string(file).map_err(|e| DataError::Io {
        path: file.to_path_buf(),
        detail: format!("cannot read the split file: {e}"),
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        invalid(
            file,
            format!("not valid JSON: {e}"),
            "write {\"train\": [...], \"val\": [...], \"test\": [...]} with condition names",
        )
    })?;
    let known: HashSet<String> = names.iter().map(|n| Condition::parse(n).name()).collect();
    let mut lists: Vec<Vec<String>> = Vec::new();
    let mut seen_in: BTreeMap<String, &str> = BTreeMap::new();
    for key in ["train", "val", "test"] {
        let list = user_list(file, &v, key)?;
        check_user_list(file, key, &list, &known, &mut seen_in)?;
        lists.push(list);
    }
    if v.get("train").is_none() {
        // No `train` list: every other condition trains.
        let mut rest: Vec<String> = known
            .iter()
            .filter(|n| n.as_str() != crate::schema::CONTROL && !seen_in.contains_key(*n))
            .cloned()
            .collect();
        rest.sort();
        lists[0] = rest;
    }
    if lists[2].is_empty() || lists[0].is_empty() {
        return Err(invalid(
            file,
            "the `train` or `test` list is empty".into(),
            "name at least one condition in each",
        ));
    }
    let test = lists.pop().unwrap();
    let val = lists.pop().unwrap();
    let train = lists.pop().unwrap();
    Ok((train, val, test))
}

/// The condition names of list `key` of a split file (`train` and `val` may be absent; `test`
/// may not).
fn user_list(file: &Path, v: &Value, key: &str) -> Result<Vec<String>, DataError> {
    match v.get(key) {
        None if key != "test" => Ok(Vec::new()),
        None => Err(invalid(
            file,
            "no `test` list".into(),
            "a split file has a `test` list (and optionally `train` and `val`)",
        )),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(|s| Condition::parse(s).name())
                    .ok_or_else(|| {
                        invalid(
                            file,
                            format!("`{key}` holds a non-string {x}"),
                            "list names",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>(),
        Some(other) => Err(invalid(
            file,
            format!("`{key}` is {other}, not a list"),
            "make it a list of condition names",
        )),
    }
}

/// Refuse unknown names, the control, and names already given a role (`seen_in` records
/// each name's list).
fn check_user_list<'k>(
    file: &Path,
    key: &'k str,
    list: &[String],
    known: &HashSet<String>,
    seen_in: &mut BTreeMap<String, &'k str>,
) -> Result<(), DataError> {
    for name in list {
        if !known.contains(name) {
            return Err(invalid(
                file,
                format!("`{key}` names condition `{name}`, which the data does not have"),
                "use condition names as `ccfm inspect` lists them (`A`, `A+B`)",
            ));
        }
        if name == crate::schema::CONTROL {
            return Err(invalid(
                file,
                format!("`{key}` lists the control"),
                "leave the control out: its cells are shared by every role",
            ));
        }
        if let Some(prev) = seen_in.insert(name.clone(), key) {
            return Err(invalid(
                file,
                format!("condition `{name}` is in both `{prev}` and `{key}`"),
                "each condition may have one role",
            ));
        }
    }
    Ok(())
}
