//! The reference preprocessing on sparse rows: value checks, detection of the value scale
//! (raw counts or log1p), scanpy's `normalize_total` and `log1p`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::anndata::CsrRows;
use crate::DataError;

/// What the stored values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueScale {
    /// Raw counts (non-negative integers): normalised and log1p-transformed on load.
    Counts,
    /// Already `log1p(normalised counts)`: used as stored.
    Log1p,
}

impl fmt::Display for ValueScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueScale::Counts => "counts",
            ValueScale::Log1p => "log1p",
        })
    }
}

impl FromStr for ValueScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "counts" => Ok(ValueScale::Counts),
            "log1p" => Ok(ValueScale::Log1p),
            _ => Err(format!("unknown value scale `{s}`; choose counts or log1p")),
        }
    }
}

/// The normalisation target of `normalize_total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetSum {
    /// The median total of the cells with a non-zero total (scanpy's default).
    Median,
    /// A fixed total, e.g. 1e4.
    Fixed(f64),
}

/// A summary of the stored values of a matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueStats {
    pub min: f64,
    pub max: f64,
    pub all_integer: bool,
    pub stored: usize,
}

/// Scan the stored values: NaN or infinite values and negative values are errors naming the
/// file, the matrix and the first offending cell.
pub fn check_values(
    path: &Path,
    element: &str,
    m: &CsrRows,
    cell_names: &[String],
) -> Result<ValueStats, DataError> {
    let mut st = ValueStats {
        min: 0.0,
        max: 0.0,
        all_integer: true,
        stored: m.data.len(),
    };
    let cell_of = |p: usize| {
        let r = m.indptr.partition_point(|&q| q <= p) - 1;
        cell_names.get(r).cloned().unwrap_or_else(|| r.to_string())
    };
    for (p, &v) in m.data.iter().enumerate() {
        if !v.is_finite() {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                problem: format!(
                    "{element} holds a non-finite value ({v}) in cell {}",
                    cell_of(p)
                ),
                fix: "remove or repair the cells with NaN/Inf values before training".into(),
            });
        }
        if v < 0.0 {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                problem: format!(
                    "{element} holds a negative value ({v}) in cell {}: counts and log1p \
                     expression are never negative",
                    cell_of(p)
                ),
                fix: "pass counts or log1p-normalised values, not scaled/centred data (e.g. \
                      use `.raw` or `layers['counts']` instead of the output of sc.pp.scale)"
                    .into(),
            });
        }
        st.min = st.min.min(v);
        st.max = st.max.max(v);
        st.all_integer &= v.fract() == 0.0;
    }
    Ok(st)
}

/// Decide the value scale: `uns['log1p']` marks log data (as scanpy writes it); otherwise
/// integers are counts and non-integers below 30 (= log1p of ~1e13) are log1p. Anything else
/// is an error asking for the scale to be stated.
pub fn detect_scale(
    path: &Path,
    element: &str,
    st: &ValueStats,
    has_log1p_uns: bool,
) -> Result<ValueScale, DataError> {
    if has_log1p_uns {
        return Ok(ValueScale::Log1p);
    }
    if st.all_integer && st.stored > 0 {
        return Ok(ValueScale::Counts);
    }
    if st.max <= 30.0 {
        return Ok(ValueScale::Log1p);
    }
    Err(DataError::Invalid {
        path: path.to_path_buf(),
        problem: format!(
            "{element} is neither counts (it has non-integer values) nor log1p (its maximum is \
             {:.1})",
            st.max
        ),
        fix: "state the scale explicitly (config: data.scale = \"counts\" | \"log1p\"), or pass \
              log1p(normalize_total(counts))"
            .into(),
    })
}

/// scanpy's `normalize_total`: each cell is scaled so its values sum to the target; cells
/// whose total is zero are left at zero. Returns the target used.
pub fn normalize_total(m: &mut CsrRows, target: TargetSum) -> f64 {
    let totals = row_totals(m);
    let target = target_total(&totals, target);
    for (r, f) in scale_factors(&totals, target).into_iter().enumerate() {
        for v in &mut m.data[m.indptr[r]..m.indptr[r + 1]] {
            *v *= f;
        }
    }
    target
}

/// Each row's sum of its stored values.
pub fn row_totals(m: &CsrRows) -> Vec<f64> {
    (0..m.indptr.len() - 1)
        .map(|r| m.data[m.indptr[r]..m.indptr[r + 1]].iter().sum())
        .collect()
}

/// Each cell's `normalize_total` factor: `target / total`, 1 for a zero total (whose stored
/// values are all zero, so it stays at zero).
pub fn scale_factors(totals: &[f64], target: f64) -> Vec<f64> {
    totals
        .iter()
        .map(|&t| if t > 0.0 { target / t } else { 1.0 })
        .collect()
}

/// Rows brought to log1p as [`normalize_total`] then [`log1p`] bring them: each row scaled by its
/// factor (`factors[r]`) and log1p'd; with no factors (log1p data) the values stay as stored.
pub fn to_log1p(m: &mut CsrRows, factors: Option<&[f64]>) {
    let Some(factors) = factors else {
        return;
    };
    for (r, &f) in factors.iter().enumerate() {
        for v in &mut m.data[m.indptr[r]..m.indptr[r + 1]] {
            *v = (*v * f).ln_1p();
        }
    }
}

/// The total each cell is scaled to: the fixed target, or the median of the non-zero
/// `totals` (1 when every total is zero).
pub fn target_total(totals: &[f64], target: TargetSum) -> f64 {
    match target {
        TargetSum::Fixed(t) => t,
        TargetSum::Median => {
            let mut pos: Vec<f64> = totals.iter().copied().filter(|&t| t > 0.0).collect();
            pos.sort_by(f64::total_cmp);
            match pos.len() {
                0 => 1.0,
                k if k % 2 == 1 => pos[k / 2],
                k => 0.5 * (pos[k / 2 - 1] + pos[k / 2]),
            }
        }
    }
}

impl ValueStats {
    /// The summary of two parts of a matrix.
    pub fn merge(self, other: ValueStats) -> ValueStats {
        ValueStats {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            all_integer: self.all_integer && other.all_integer,
            stored: self.stored + other.stored,
        }
    }
}

/// `log1p` in place on the stored values (zeros stay zero).
pub fn log1p(m: &mut CsrRows) {
    for v in &mut m.data {
        *v = v.ln_1p();
    }
}
