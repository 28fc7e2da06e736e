//! `results.csv` and `agg_results.csv` in cell-eval's layout (a polars frame written with
//! `write_csv`, and its `describe()`).

use std::fmt::Write as _;

use crate::metrics::MetricTable;

/// The statistics of polars' `describe()`, in its row order.
pub const AGG_ROWS: [&str; 9] = [
    "count",
    "null_count",
    "mean",
    "std",
    "min",
    "25%",
    "50%",
    "75%",
    "max",
];

/// polars `describe()` of one column: `None` where polars gives null.
pub fn describe(values: &[Option<f64>]) -> [Option<f64>; 9] {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let n = present.len();
    let nulls = values.len() - n;
    if n == 0 {
        return [
            Some(0.0),
            Some(nulls as f64),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ];
    }
    let mean = present.iter().sum::<f64>() / n as f64;
    let std = (n > 1)
        .then(|| (present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    let finite: Vec<f64> = present.iter().copied().filter(|v| !v.is_nan()).collect();
    let min = finite.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
    let max = finite.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
    // Quantiles by the "nearest" rule over the values sorted with NaN last.
    let mut sorted = present.clone();
    sorted.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.total_cmp(b),
    });
    let q = |p: f64| sorted[((n - 1) as f64 * p).round() as usize];
    [
        Some(n as f64),
        Some(nulls as f64),
        Some(mean),
        std,
        Some(min),
        Some(q(0.25)),
        Some(q(0.5)),
        Some(q(0.75)),
        Some(max),
    ]
}

/// A value as polars writes it to CSV: shortest round-trip digits, `NaN`, `inf`, empty for
/// null.
pub fn csv_number(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x.is_nan() => "NaN".into(),
        Some(x) if x.is_infinite() => if x > 0.0 { "inf" } else { "-inf" }.into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e16 => format!("{x:.1}"),
        Some(x) => format!("{x}"),
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: `perturbation` then one column per metric.
pub fn results_csv(t: &MetricTable) -> String {
    let mut s = String::from("perturbation");
    for (name, _) in &t.columns {
        s.push(',');
        s.push_str(&quote(name));
    }
    s.push('\n');
    for (i, p) in t.perts.iter().enumerate() {
        s.push_str(&quote(p));
        for (_, v) in &t.columns {
            s.push(',');
            s.push_str(&csv_number(v[i]));
        }
        s.push('\n');
    }
    s
}

/// `agg_results.csv`: `statistic` then one column per metric, the rows of [`AGG_ROWS`].
pub fn agg_csv(t: &MetricTable) -> String {
    let stats: Vec<[Option<f64>; 9]> = t.columns.iter().map(|(_, v)| describe(v)).collect();
    let mut s = String::from("statistic");
    for (name, _) in &t.columns {
        let _ = write!(s, ",{}", quote(name));
    }
    s.push('\n');
    for (r, row) in AGG_ROWS.iter().enumerate() {
        s.push_str(row);
        for st in &stats {
            s.push(',');
            s.push_str(&csv_number(st[r]));
        }
        s.push('\n');
    }
    s
}
