//! `report.html`: one self-contained page (inline SVG, no scripts, no downloads) with the
//! summary tables, metric bars per method, the per-perturbation score distributions, predicted
//! vs real effects per perturbation, and the training loss when a log was given.

use std::fmt::Write as _;

use crate::evaluate::Evaluation;
use crate::guard::{Dependence, Shortfall};

/// One logged training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPoint {
    pub step: f64,
    pub loss: f64,
}

/// What the page shows.
pub struct ReportInput<'a> {
    pub eval: &'a Evaluation,
    /// `None` (all perturbations) then each seen group.
    pub groups: Vec<Option<String>>,
}

/// Metrics shown as bars, with whether higher is better.
pub(crate) const KEY_METRICS: [(&str, bool); 9] = [
    ("pearson_delta", true),
    ("mse", false),
    ("mae", false),
    ("discrimination_score_l1", true),
    ("overlap_at_N", true),
    ("de_direction_match", true),
    ("r_squared", true),
    ("e_distance", false),
    ("mmd", false),
];

const PALETTE: [&str; 6] = [
    "#1f77b4", "#7f7f7f", "#bcbd22", "#ff7f0e", "#2ca02c", "#9467bd",
];

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x.is_nan() => "NaN".into(),
        Some(x) if x.abs() >= 1e3 || (x != 0.0 && x.abs() < 1e-3) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
    }
}

pub(crate) fn method_color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Horizontal bars of one metric's mean per method.
pub(crate) fn bar_chart(
    title: &str,
    higher_better: bool,
    values: &[(String, Option<f64>)],
) -> String {
    let (w, row, left) = (300.0, 22.0, 80.0);
    let h = 34.0 + row * values.len() as f64;
    let finite: Vec<f64> = values
        .iter()
        .filter_map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .collect();
    let lo = finite.iter().copied().fold(0.0f64, f64::min);
    let hi = finite.iter().copied().fold(0.0f64, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let x = |v: f64| left + (v - lo) / span * (w - left - 60.0);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{t}</title>\
         <text x=\"4\" y=\"14\" class=\"ct\">{t} ({dir})</text>",
        t = esc(title),
        dir = if higher_better { "higher is better" } else { "lower is better" }
    );
    let zero = x(0.0);
    let _ = write!(
        s,
        "<line x1=\"{zero}\" y1=\"22\" x2=\"{zero}\" y2=\"{}\" stroke=\"#999\"/>",
        h - 6.0
    );
    for (i, (name, v)) in values.iter().enumerate() {
        let y = 26.0 + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            left - 6.0,
            y + 12.0,
            esc(name)
        );
        if let Some(v) = v.filter(|v| v.is_finite()) {
            let (a, b) = (zero.min(x(v)), zero.max(x(v)));
            let _ = write!(
                s,
                "<rect x=\"{a:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" class=\"val\">{}</text>",
                (b - a).max(0.5),
                row - 6.0,
                method_color(i),
                b + 4.0,
                y + 12.0,
                fmt(Some(v))
            );
        } else {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" class=\"val\">n/a</text>",
                left + 4.0,
                y + 12.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Per-perturbation values of one metric, one row of dots per method, the median marked.
pub(crate) fn strip_chart(title: &str, rows: &[(String, Vec<f64>)]) -> String {
    let (w, row, left) = (620.0, 30.0, 80.0);
    let h = 44.0 + row * rows.len() as f64;
    let all: Vec<f64> = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let hi = all
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(lo + 1e-9);
    let x = |v: f64| left + (v - lo) / (hi - lo) * (w - left - 20.0);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{t}</title>\
         <text x=\"4\" y=\"14\" class=\"ct\">{t}: one dot per perturbation, bar = median</text>",
        t = esc(title)
    );
    for (i, (name, vals)) in rows.iter().enumerate() {
        let y = 34.0 + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            left - 6.0,
            y + 4.0,
            esc(name)
        );
        let mut finite: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
        for (k, v) in finite.iter().enumerate() {
            let jitter = ((k * 7919) % 11) as f64 - 5.0;
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\" fill-opacity=\"0.6\"/>",
                x(*v),
                y + jitter,
                method_color(i)
            );
        }
        if !finite.is_empty() {
            finite.sort_by(f64::total_cmp);
            let med = finite[finite.len() / 2];
            let _ = write!(s, "<line x1=\"{m:.1}\" y1=\"{}\" x2=\"{m:.1}\" y2=\"{}\" stroke=\"#000\" stroke-width=\"2\"/>", y - 10.0, y + 10.0, m = x(med));
        }
    }
    let axis_y = h - 6.0;
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{axis_y}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
            x(v),
            fmt(Some(v))
        );
    }
    s.push_str("</svg>");
    s
}

/// Predicted vs real effect of every gene for one perturbation.
pub(crate) fn scatter(title: &str, real: &[f32], pred: &[f32], r: Option<f64>) -> String {
    let (w, pad) = (200.0, 24.0);
    let step = (real.len() / 1500).max(1);
    let pts: Vec<(f64, f64)> = real
        .iter()
        .zip(pred)
        .step_by(step)
        .map(|(&a, &b)| (a as f64, b as f64))
        .collect();
    let m = pts
        .iter()
        .flat_map(|&(a, b)| [a.abs(), b.abs()])
        .fold(1e-6f64, f64::max);
    let sx = |v: f64| pad + (v + m) / (2.0 * m) * (w - 2.0 * pad);
    let sy = |v: f64| w - pad - (v + m) / (2.0 * m) * (w - 2.0 * pad);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{t}</title>\
         <text x=\"4\" y=\"12\" class=\"ct\">{t}</text><text x=\"4\" y=\"{}\" class=\"tick\">r = {}</text>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\"/>\
         <line x1=\"{}\" y1=\"{z}\" x2=\"{}\" y2=\"{z}\" stroke=\"#eee\"/><line x1=\"{zx}\" y1=\"{}\" x2=\"{zx}\" y2=\"{}\" stroke=\"#eee\"/>",
        w + 12.0,
        fmt(r),
        sx(-m),
        sy(-m),
        sx(m),
        sy(m),
        pad,
        w - pad,
        pad,
        w - pad,
        h = w + 16.0,
        t = esc(title),
        z = sy(0.0),
        zx = sx(0.0),
    );
    for (a, b) in pts {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" fill=\"#1f77b4\" fill-opacity=\"0.5\"/>",
            sx(a),
            sy(b)
        );
    }
    s.push_str("</svg>");
    s
}

/// Training loss by step, one line per series (a legend when there are several).
pub(crate) fn loss_chart(series: &[(String, &[LossPoint])]) -> String {
    let (w, h, pad) = (620.0, 220.0, 40.0);
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x0 = all().map(|p| p.step).fold(f64::INFINITY, f64::min);
    let x1 = all().map(|p| p.step).fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = if x0.is_finite() { (x0, x1) } else { (0.0, 1.0) };
    let lo = all().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    let hi = all()
        .map(|p| p.loss)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(lo + 1e-12);
    let sx = |v: f64| pad + (v - x0) / (x1 - x0).max(1e-12) * (w - 2.0 * pad);
    let sy = |v: f64| h - pad - (v - lo) / (hi - lo) * (h - 2.0 * pad);
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>training loss</title>\
         <text x=\"4\" y=\"14\" class=\"ct\">training loss by step</text>"
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.step), sy(p.loss)))
            .collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"/>",
            path.join(" "),
            c = method_color(i)
        );
        if series.len() > 1 {
            let y = 14.0 + 14.0 * i as f64;
            let _ = write!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\" class=\"lbl\">{}</text>",
                w - 150.0,
                y - 9.0,
                w - 135.0,
                y,
                esc(name),
                c = method_color(i)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"{pad}\" y=\"{}\" class=\"tick\">step {}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"tick\">step {}</text>\
         <text x=\"2\" y=\"{}\" class=\"tick\">{}</text><text x=\"2\" y=\"{}\" class=\"tick\">{}</text></svg>",
        h - 8.0,
        x0,
        w - pad,
        h - 8.0,
        x1,
        sy(hi) + 4.0,
        fmt(Some(hi)),
        sy(lo) + 4.0,
        fmt(Some(lo)),
    );
    s
}

/// The page's style sheet (shared by the evaluation and the comparison reports).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}\
table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;font-size:13px}\
th:first-child,td:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:10px}\
.chart{border:1px solid #eee;background:#fff}.ct{font-size:12px;font-weight:600}.lbl,.val,.tick{font-size:11px}\
code{background:#f4f4f4;padding:1px 4px}.best{font-weight:700;background:#e8f4e8}\
.warn{color:#a00;font-weight:600}pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}";

/// The whole page.
pub fn render_html(input: &ReportInput<'_>) -> String {
    let e = input.eval;
    let mut s = String::new();
    write_intro(&mut s, e);
    let metrics: Vec<&str> = KEY_METRICS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| e.model.column(m).is_some())
        .collect();
    for group in &input.groups {
        write_summary_table(&mut s, e, &metrics, group);
    }
    if !e.baselines.is_empty() {
        let value = |method: &str, metric: &str| {
            let rows = e.summary(metric, None);
            rows.into_iter()
                .find(|(n, _)| n == method)
                .and_then(|r| r.1)
        };
        s.push_str(&shortfall_html(&crate::guard::shortfalls(
            &["model".to_string()],
            &value,
        )));
    }
    s.push_str(&dependence_html(&[(
        "model".to_string(),
        crate::guard::dependence(&e.deltas),
    )]));
    write_metric_bars(&mut s, e);
    write_score_strips(&mut s, e);
    write_effect_scatters(&mut s, e);
    if !e.loss.is_empty() {
        s.push_str("<h2>Training</h2>");
        s.push_str(&loss_chart(&[("model".to_string(), &e.loss)]));
    }
    let _ = writeln!(
        s,
        "<p>Files: <code>results.csv</code> and <code>agg_results.csv</code> (cell-eval's layout), <code>summary.csv</code>{}.</p></body></html>",
        if e.baselines.is_empty() { "" } else { ", <code>&lt;baseline&gt;_results.csv</code>" }
    );
    s
}

/// One warning paragraph per metric on which a model does not beat `mean` or `control`.
pub(crate) fn shortfall_html(shortfalls: &[Shortfall]) -> String {
    let mut s = String::new();
    for f in shortfalls {
        let _ = write!(s, "<p class=\"warn\">{}.</p>", esc(&f.to_string()));
    }
    s
}

/// The guard-rail table: does each model's prediction depend on the perturbation?
pub(crate) fn dependence_html(rows: &[(String, Dependence)]) -> String {
    let mut s = String::from(
        "<h2>Does the prediction depend on the perturbation?</h2><p>From the mean effects \
         (pseudobulk minus control) of the conditions: <b>cross-condition correlation</b> of the \
         predicted effects of two different conditions (real cells in brackets; a prediction that \
         ignores the perturbation is near 1), <b>effect spread</b> (how much the predicted effects \
         differ between conditions, relative to the real ones: 0 = the same prediction for every \
         condition), <b>own nearest</b> (the fraction of conditions whose prediction is nearer \
         its own real effect than any other condition's).</p><table><tr><th>model</th>\
         <th>cross-condition correlation</th><th>effect spread</th><th>own nearest</th></tr>",
    );
    for (name, d) in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            fmt(d.cross_corr_pred),
            fmt(d.cross_corr_real),
            fmt(d.spread_ratio),
            fmt(d.own_nearest)
        );
    }
    s.push_str("</table>");
    s
}

/// The page's head, the files and sizes of the run, and what the baselines are.
fn write_intro(s: &mut String, e: &Evaluation) {
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CCFM evaluation</title><style>{STYLE}</style></head><body>\
         <h1>CCFM evaluation</h1><p>Real: <code>{}</code><br>Predicted: <code>{}</code><br>{} perturbations, {} genes; computed in {:.2} s. \
         Metrics follow cell-eval 0.8.2 (each side against its own control cells); <code>l2</code>, <code>r_squared</code>, \
         <code>e_distance</code> and <code>mmd</code> compare predicted and real cells of each perturbation directly.</p>",
        esc(&e.real_path.display().to_string()),
        esc(&e.pred_path.display().to_string()),
        e.model.perts.len(),
        e.n_genes,
        e.seconds
    );
    if e.baselines.is_empty() {
        s.push_str("<p><b>No baselines</b>: pass the training data (<code>--baselines TRAIN.h5ad</code>) to compare with the control, mean, additive and noise-ceiling baselines.</p>");
    } else {
        s.push_str("<p>Baselines from the training data: <b>control</b> (unchanged control cells), <b>mean</b> (control cells + the mean training effect), <b>additive</b> (control cells + Δ<sub>A</sub> + Δ<sub>B</sub>, doubles whose singles were trained on), <b>ceiling</b> (half of the real cells predicting the other half).</p>");
    }
}

/// One summary table: the mean of each of `metrics` per method over `group` (all when `None`).
fn write_summary_table(s: &mut String, e: &Evaluation, metrics: &[&str], group: &Option<String>) {
    let label = group.as_deref().unwrap_or("all perturbations");
    let n = e
        .model
        .perts
        .iter()
        .filter(|p| group.as_ref().is_none_or(|g| e.groups.get(*p) == Some(g)))
        .count();
    let _ = write!(
        s,
        "<h3>Mean over {} ({n})</h3><table><tr><th>method</th>",
        esc(label)
    );
    for m in metrics {
        let _ = write!(s, "<th>{}</th>", esc(m));
    }
    s.push_str("</tr>");
    let cols: Vec<Vec<(String, Option<f64>)>> = metrics
        .iter()
        .map(|m| e.summary(m, group.as_deref()))
        .collect();
    for (k, (method, _)) in cols[0].iter().enumerate() {
        let _ = write!(s, "<tr><td>{}</td>", esc(method));
        for c in &cols {
            let _ = write!(s, "<td>{}</td>", fmt(c[k].1));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
}

/// A bar chart per key metric of the mean per method.
fn write_metric_bars(s: &mut String, e: &Evaluation) {
    s.push_str("<h2>Metrics by method</h2><div class=\"charts\">");
    for (m, higher) in KEY_METRICS {
        if e.model.column(m).is_some() {
            s.push_str(&bar_chart(m, higher, &e.summary(m, None)));
        }
    }
    s.push_str("</div>");
}

/// Strip charts of the per-perturbation values of a few metrics, one row per method.
fn write_score_strips(s: &mut String, e: &Evaluation) {
    s.push_str("<h2>Per-perturbation scores</h2><div class=\"charts\">");
    for m in ["pearson_delta", "discrimination_score_l1", "mse"] {
        let rows: Vec<(String, Vec<f64>)> = std::iter::once(("model".to_string(), &e.model))
            .chain(e.baselines.iter().map(|(n, t)| (n.clone(), t)))
            .filter_map(|(n, t)| Some((n, t.column(m)?.iter().flatten().copied().collect())))
            .collect();
        if !rows.is_empty() {
            s.push_str(&strip_chart(m, &rows));
        }
    }
    s.push_str("</div>");
}

/// Predicted vs real effects of the model's first 24 perturbations.
fn write_effect_scatters(s: &mut String, e: &Evaluation) {
    s.push_str("<h2>Predicted vs real effect (model)</h2><p>Each dot is a gene: its mean change from the control cells in the real cells (x) and in the predicted cells (y).</p><div class=\"charts\">");
    let pd = e.model.column("pearson_delta");
    for (i, (p, real, pred)) in e.deltas.iter().take(24).enumerate() {
        s.push_str(&scatter(p, real, pred, pd.and_then(|c| c[i])));
    }
    if e.deltas.len() > 24 {
        let _ = write!(
            s,
            "<p>… and {} more perturbations (see results.csv).</p>",
            e.deltas.len() - 24
        );
    }
    s.push_str("</div>");
}
