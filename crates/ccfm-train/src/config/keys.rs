//! The TOML tree of a configuration before it becomes a [`RunConfig`]: old key names
//! migrated, `--set` overrides applied, unknown keys and wrong types refused with the closest
//! valid key, and deserialisation errors traced back to the key that caused them.

use toml::{Table, Value};

use super::RunConfig;
use crate::error::TrainError;

/// Keys renamed when the objective became its own section: `(old, new)`.
pub const RENAMED: [(&str, &str); 6] = [
    ("latent.choose_latent_p", "objective.times.choose_latent_p"),
    (
        "latent.latent_noise_min",
        "objective.times.latent_noise_min",
    ),
    ("latent.latent_weight", "objective.latent_weight"),
    ("train.gamma", "objective.gamma"),
    ("model.prediction", "objective.prediction"),
    ("model.min_sigma", "objective.min_sigma"),
];

/// The flat time-sampler keys of earlier configs (`<section>.time_sampler`, `.time_mean`,
/// `.time_std`): section, the sampler they became (`objective.times.<name>`) and the
/// logit-normal mean and std those configs defaulted to.
const OLD_SAMPLERS: [(&str, &str, f64, f64); 2] = [
    ("train", "expr", -0.4, 0.8),
    ("latent", "latent", -1.2, 1.0),
];

fn config_error(source: &str, key: &str, detail: String) -> TrainError {
    TrainError::Config {
        source_name: source.to_string(),
        key: key.to_string(),
        detail,
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The valid key closest to `key`.
pub fn closest<'a>(key: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    valid
        .into_iter()
        .map(|v| (distance(key, v), v))
        .min()
        .map(|(_, v)| v)
}

/// The default configuration as a tree.
pub(crate) fn default_tree() -> Table {
    match Value::try_from(RunConfig::default()) {
        Ok(Value::Table(t)) => t,
        _ => unreachable!("the default config serialises to a table"),
    }
}

/// A table that is one value (a tagged enum such as a time sampler), not a section.
fn is_value_table(t: &Table) -> bool {
    t.contains_key("kind")
}

/// Every key of the configuration, `section.key` (nested sections: `a.b.key`).
pub fn known_keys() -> Vec<String> {
    let mut out = Vec::new();
    collect_keys(&default_tree(), "", &mut out);
    out
}

fn collect_keys(t: &Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let path = format!("{prefix}{k}");
        match v {
            Value::Table(sub) if !is_value_table(sub) => {
                collect_keys(sub, &format!("{path}."), out)
            }
            _ if prefix.is_empty() => {}
            _ => out.push(path),
        }
    }
}

/// The value at a dotted path.
fn get_path<'a>(t: &'a Table, path: &str) -> Option<&'a Value> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match (t.get(head)?, rest) {
        (v, None) => Some(v),
        (Value::Table(sub), Some(r)) => get_path(sub, r),
        _ => None,
    }
}

/// Set the value at a dotted path, making the tables on the way; `Err` names a part of the
/// path that is a value, not a table.
fn set_path(t: &mut Table, path: &str, value: Value) -> Result<(), String> {
    match path.split_once('.') {
        None => {
            t.insert(path.to_string(), value);
            Ok(())
        }
        Some((head, rest)) => {
            let entry = t
                .entry(head.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            match entry {
                Value::Table(sub) => set_path(sub, rest, value),
                _ => Err(head.to_string()),
            }
        }
    }
}

/// Remove the value at a dotted path.
fn take_path(t: &mut Table, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => t.remove(path),
        Some((head, rest)) => match t.get_mut(head)? {
            Value::Table(sub) => take_path(sub, rest),
            _ => None,
        },
    }
}

/// A key of an earlier version moved to its current place.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub old: String,
    pub new: String,
    /// What to write instead, for the note.
    pub example: Option<String>,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is now `{}`", self.old, self.new)?;
        match &self.example {
            Some(e) => write!(f, " (e.g. {e})"),
            None => Ok(()),
        }
    }
}

/// Move the keys of earlier configs to their current place (see [`RENAMED`]). Old keys win
/// over new ones given in the same tree, so that an old-style `--set` still overrides a
/// current file.
pub(crate) fn migrate(tree: &mut Table) -> Vec<Moved> {
    let mut moved = Vec::new();
    for (old, new) in RENAMED {
        if let Some(v) = take_path(tree, old) {
            // The new path's parents are sections, so this cannot fail.
            let _ = set_path(tree, new, v);
            moved.push(Moved {
                old: old.into(),
                new: new.into(),
                example: None,
            });
        }
    }
    for (section, stream, mean, std) in OLD_SAMPLERS {
        moved.extend(migrate_sampler(tree, section, stream, (mean, std)));
    }
    moved
}

/// A configuration error about a key that was moved names the key as the user wrote it.
pub(crate) fn name_old_key(e: TrainError, moved: &[Moved]) -> TrainError {
    match e {
        TrainError::Config {
            source_name,
            key,
            detail,
        } => match moved.iter().find(|m| key.starts_with(&m.new)) {
            Some(m) => TrainError::Config {
                source_name,
                detail: format!("{detail} (given as `{}`, the earlier name)", m.old),
                key,
            },
            None => TrainError::Config {
                source_name,
                key,
                detail,
            },
        },
        other => other,
    }
}

/// Fold `<section>.time_sampler/time_mean/time_std` into `objective.times.<stream>`.
fn migrate_sampler(
    tree: &mut Table,
    section: &str,
    stream: &str,
    defaults: (f64, f64),
) -> Option<Moved> {
    let kind = take_path(tree, &format!("{section}.time_sampler"));
    let mean = take_path(tree, &format!("{section}.time_mean"));
    let std = take_path(tree, &format!("{section}.time_std"));
    if kind.is_none() && mean.is_none() && std.is_none() {
        return None;
    }
    let new = format!("objective.times.{stream}");
    let mut table = match get_path(tree, &new) {
        Some(Value::Table(t)) => t.clone(),
        _ => Table::new(),
    };
    if let Some(k) = kind {
        table.insert("kind".into(), k);
    }
    match table.get("kind").cloned() {
        // Earlier configs ignored the mean and std of a uniform sampler.
        None => table = Table::from_iter([("kind".to_string(), Value::from("uniform"))]),
        Some(Value::String(k)) if k == "uniform" => {
            table = Table::from_iter([("kind".to_string(), Value::from("uniform"))])
        }
        // A logit-normal (or a value serde will refuse, with its key): the numbers given, else
        // the defaults earlier configs had.
        Some(_) => {
            let m = mean.or_else(|| table.get("mean").cloned());
            let s = std.or_else(|| table.get("std").cloned());
            table.insert("mean".into(), m.unwrap_or(Value::Float(defaults.0)));
            table.insert("std".into(), s.unwrap_or(Value::Float(defaults.1)));
        }
    }
    let _ = set_path(tree, &new, Value::Table(table));
    Some(Moved {
        old: format!("{section}.time_sampler"),
        new: new.clone(),
        example: Some(format!(
            "{new} = {{ kind = \"logit_normal\", mean = {}, std = {} }}; `.time_mean` and \
             `.time_std` moved with it",
            defaults.0, defaults.1
        )),
    })
}

/// Check that every section and key of `tree` exists and has the default's type; the error
/// names the closest valid key.
pub(crate) fn check_keys(tree: &Table, source: &str) -> Result<(), TrainError> {
    check_table(tree, &default_tree(), "", source)
}

fn check_table(given: &Table, known: &Table, prefix: &str, source: &str) -> Result<(), TrainError> {
    for (key, v) in given {
        let path = format!("{prefix}{key}");
        let Some(default) = known.get(key) else {
            return Err(unknown_key(&path, key, known, prefix, source));
        };
        match (default, v) {
            (Value::Table(d), Value::Table(g)) if !is_value_table(d) => {
                check_table(g, d, &format!("{path}."), source)?
            }
            (Value::Table(d), _) if !is_value_table(d) => {
                return Err(config_error(
                    source,
                    &path,
                    format!("`{path}` must be a section ([{path}]), not a value"),
                ))
            }
            _ => check_type(default, v, &path, source)?,
        }
    }
    Ok(())
}

fn unknown_key(path: &str, key: &str, known: &Table, prefix: &str, source: &str) -> TrainError {
    let hint = closest(key, known.keys().map(String::as_str)).unwrap_or_default();
    if prefix.is_empty() {
        return config_error(
            source,
            key,
            format!("unknown section [{key}]; did you mean [{hint}]?"),
        );
    }
    config_error(
        source,
        path,
        format!("unknown key; did you mean `{prefix}{hint}`?"),
    )
}

fn check_type(default: &Value, v: &Value, path: &str, source: &str) -> Result<(), TrainError> {
    if v.type_str() == default.type_str() {
        return Ok(());
    }
    let expected = match default {
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::String(_) => "a quoted string",
        Value::Table(_) => "a table such as { kind = \"uniform\" }",
        _ => default.type_str(),
    };
    Err(config_error(
        source,
        path,
        format!("{v} is {}, expected {expected}", v.type_str()),
    ))
}

/// Integers given for float fields are accepted (lr = 1 means 1.0).
pub(crate) fn coerce_floats(tree: &mut Table, defaults: &Table) {
    for (k, val) in tree.iter_mut() {
        match (defaults.get(k), val) {
            (Some(Value::Float(_)), v @ Value::Integer(_)) => to_float(v),
            (Some(Value::Table(d)), Value::Table(t)) if is_value_table(d) => {
                // A sampler's numbers are floats whatever the default's kind is.
                for (_, v) in t.iter_mut() {
                    to_float(v);
                }
            }
            (Some(Value::Table(d)), Value::Table(t)) => coerce_floats(t, d),
            _ => {}
        }
    }
}

fn to_float(v: &mut Value) {
    if let Value::Integer(i) = *v {
        *v = Value::Float(i as f64);
    }
}

/// Parse a `--set` value as a TOML value, or take it as a string.
fn parse_value(text: &str) -> Value {
    let doc = format!("v = {text}");
    match doc.parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(Value::String(text.to_string())),
        Err(_) => Value::String(text.to_string()),
    }
}

/// Apply `path=value` overrides (`train.steps=500`, `objective.times.choose_latent_p=0.2`).
pub(crate) fn apply_overrides(tree: &mut Table, overrides: &[String]) -> Result<(), TrainError> {
    let defaults = default_tree();
    for o in overrides {
        let bad = |detail: String| config_error("--set", o, detail);
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value, e.g. train.steps=500".into()))?;
        let key = key.trim();
        if !key.contains('.') {
            return Err(bad("the key needs its section, e.g. train.steps=500".into()));
        }
        let mut v = parse_value(value.trim());
        // A string field given something that parsed as another type stays a string.
        if let (Some(Value::String(_)), false) = (get_path(&defaults, key), v.is_str()) {
            v = Value::String(value.trim().to_string());
        }
        set_path(tree, key, v).map_err(|part| bad(format!("`{part}` is not a section")))?;
    }
    Ok(())
}

/// Deserialise a checked tree; an error names the key whose value was refused.
pub(crate) fn deserialize(tree: Table, source: &str) -> Result<RunConfig, TrainError> {
    let mut leaves = Vec::new();
    collect_leaves(&tree, &default_tree(), "", &mut leaves);
    match Value::Table(tree).try_into::<RunConfig>() {
        Ok(cfg) => {
            check_value_tables(&cfg, &leaves, source)?;
            Ok(cfg)
        }
        Err(e) => {
            let (key, message) = locate(leaves).unwrap_or(("(value)".into(), e.message().into()));
            Err(config_error(source, &key, describe(&message)))
        }
    }
}

/// A field given in a value table (a time sampler) that its kind does not have: serde ignores
/// those of a unit variant (`{ kind = "uniform", std = 2 }`), so they are found by writing the
/// value back.
fn check_value_tables(
    cfg: &RunConfig,
    leaves: &[(String, Value)],
    source: &str,
) -> Result<(), TrainError> {
    let Ok(Value::Table(back)) = Value::try_from(cfg) else {
        return Ok(());
    };
    for (path, value) in leaves {
        let (Value::Table(given), Some(Value::Table(kept))) = (value, get_path(&back, path)) else {
            continue;
        };
        if let Some(k) = given.keys().find(|k| !kept.contains_key(*k)) {
            let fields: Vec<&str> = kept.keys().map(String::as_str).collect();
            return Err(config_error(
                source,
                &format!("{path}.{k}"),
                format!("not a field of this kind; it has {}", fields.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The first key that fails to deserialise on its own, with serde's message.
fn locate(leaves: Vec<(String, Value)>) -> Option<(String, String)> {
    leaves.into_iter().find_map(|(path, value)| {
        let mut alone = Table::new();
        set_path(&mut alone, &path, value).ok()?;
        match Value::Table(alone).try_into::<RunConfig>() {
            Ok(_) => None,
            Err(e) => Some((path, e.message().to_string())),
        }
    })
}

/// The values of `t`, by path; sections are walked as the defaults have them.
fn collect_leaves(t: &Table, defaults: &Table, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (k, v) in t {
        let path = format!("{prefix}{k}");
        match (v, defaults.get(k)) {
            (Value::Table(sub), Some(Value::Table(d))) if !is_value_table(d) => {
                collect_leaves(sub, d, &format!("{path}."), out)
            }
            _ => out.push((path, v.clone())),
        }
    }
}

/// serde's "unknown variant `x`, expected `a` or `b`" as "`x` is not one of a, b; did you
/// mean `a`?"; other messages unchanged.
fn describe(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown variant `") else {
        return message.to_string();
    };
    let Some((given, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    // What follows the names, e.g. "(or a split JSON file)".
    let tail = expected
        .rsplit('`')
        .next()
        .map(str::trim)
        .filter(|t| t.starts_with('('))
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    match closest(given, names.iter().copied()) {
        Some(hint) => format!(
            "`{given}` is not one of {}{tail}; did you mean `{hint}`?",
            names.join(", ")
        ),
        None => message.to_string(),
    }
}
