//! One page that compares several models on the same perturbations: every model (CCFM, scDFM,
//! ...) and the baselines in the same tables and plots, overall, per seen group and per
//! interaction type when the data records them, with each model's training curve and run
//! settings. `ccfm demo` writes it as `OUT/report.html`; `ccfm report --runs A,B` for any runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::evaluate::Evaluation;
use crate::guard::{dependence, shortfalls, Dependence, Shortfall};
use crate::metrics::MetricTable;
use crate::pair::EvalError;
use crate::report::{
    bar_chart, dependence_html, esc, fmt, loss_chart, shortfall_html, strip_chart, LossPoint,
    KEY_METRICS, STYLE,
};

/// One model of a comparison.
pub struct ComparedModel<'a> {
    /// The name shown in the tables (`ccfm`, `scdfm`, a run directory's name).
    pub name: String,
    pub eval: &'a Evaluation,
    /// Settings shown side by side (e.g. `train.steps` -> `400`).
    pub settings: Vec<(String, String)>,
    /// The run's whole configuration, shown folded.
    pub config_text: String,
}

/// A subset of the perturbations that the tables average over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    All,
    /// Doubles by how many of their singles were trained on (`seen0`, `seen1`, `seen2`).
    Seen(String),
    /// Doubles of one interaction type (`additive`, `synergy`, ...).
    Interaction(String),
}

impl Subset {
    fn label(&self) -> String {
        match self {
            Subset::All => "all perturbations".into(),
            Subset::Seen(g) => g.clone(),
            Subset::Interaction(t) => format!("interaction: {t}"),
        }
    }
}

/// Several models evaluated on the same perturbations, with the baselines of the first.
pub struct Comparison<'a> {
    pub title: String,
    pub models: Vec<ComparedModel<'a>>,
    /// Perturbation -> interaction type, when the data records it.
    pub interactions: BTreeMap<String, String>,
}

/// The baselines that are predictions (the noise ceiling uses the real cells, so it is shown
/// but never called the winner).
fn is_reference(method: &str) -> bool {
    method == "ceiling"
}

impl<'a> Comparison<'a> {
    /// Check that the models were evaluated on the same perturbations.
    pub fn new(
        title: impl Into<String>,
        models: Vec<ComparedModel<'a>>,
        interactions: BTreeMap<String, String>,
    ) -> Result<Self, EvalError> {
        let Some(first) = models.first() else {
            return Err(EvalError::Comparison("no model given".into()));
        };
        for (i, m) in models.iter().enumerate() {
            let taken = models[..i].iter().any(|o| o.name == m.name)
                || first.eval.baselines.iter().any(|(n, _)| *n == m.name);
            if taken {
                return Err(EvalError::Comparison(format!(
                    "two methods would be called `{}` (a model named as another model or a \
                     baseline); give the runs distinct names that are not a baseline's",
                    m.name
                )));
            }
        }
        for m in &models[1..] {
            if m.eval.model.perts != first.eval.model.perts {
                return Err(EvalError::Comparison(format!(
                    "`{}` and `{}` were evaluated on different perturbations ({} vs {}); a \
                     comparison needs the same test conditions",
                    first.name,
                    m.name,
                    first.eval.model.perts.len(),
                    m.eval.model.perts.len()
                )));
            }
        }
        Ok(Self {
            title: title.into(),
            models,
            interactions,
        })
    }

    /// Every method: the models first, then the first model's baselines.
    pub fn methods(&self) -> Vec<(String, &MetricTable)> {
        let first = self.models[0].eval;
        self.models
            .iter()
            .map(|m| (m.name.clone(), &m.eval.model))
            .chain(first.baselines.iter().map(|(n, t)| (n.clone(), t)))
            .collect()
    }

    /// The subsets with at least one perturbation: all, each seen group, each interaction type.
    pub fn subsets(&self) -> Vec<Subset> {
        let groups = &self.models[0].eval.groups;
        let mut seen: Vec<&String> = groups.values().collect();
        seen.sort();
        seen.dedup();
        let mut types: Vec<&String> = self.interactions.values().collect();
        types.sort();
        types.dedup();
        let perts = &self.models[0].eval.model.perts;
        std::iter::once(Subset::All)
            .chain(seen.into_iter().map(|g| Subset::Seen(g.clone())))
            .chain(types.into_iter().map(|t| Subset::Interaction(t.clone())))
            .filter(|s| perts.iter().any(|p| self.contains(s, p)))
            .collect()
    }

    fn contains(&self, subset: &Subset, pert: &str) -> bool {
        match subset {
            Subset::All => true,
            Subset::Seen(g) => self.models[0].eval.groups.get(pert) == Some(g),
            Subset::Interaction(t) => self.interactions.get(pert) == Some(t),
        }
    }

    /// Number of perturbations in `subset`.
    pub fn count(&self, subset: &Subset) -> usize {
        let perts = &self.models[0].eval.model.perts;
        perts.iter().filter(|p| self.contains(subset, p)).count()
    }

    /// Mean of `metric` per method over `subset`.
    pub fn summary(&self, metric: &str, subset: &Subset) -> Vec<(String, Option<f64>)> {
        let keep = |p: &str| self.contains(subset, p);
        self.methods()
            .into_iter()
            .map(|(name, t)| (name, t.mean_where(metric, &keep)))
            .collect()
    }

    /// The best method on `metric` over `subset` (the noise ceiling excluded).
    pub fn best(&self, metric: &str, subset: &Subset) -> Option<(String, f64)> {
        let higher = KEY_METRICS
            .iter()
            .find(|(m, _)| *m == metric)
            .is_none_or(|(_, h)| *h);
        self.summary(metric, subset)
            .into_iter()
            .filter(|(n, _)| !is_reference(n))
            .filter_map(|(n, v)| Some((n, v.filter(|v| v.is_finite())?)))
            .reduce(|a, b| {
                let better = if higher { b.1 > a.1 } else { b.1 < a.1 };
                if better {
                    b
                } else {
                    a
                }
            })
    }

    /// Means per method and subset as JSON: `{"all": {"ccfm": {"pearson_delta": ..}}, ..}`.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for subset in self.subsets() {
            let mut methods = serde_json::Map::new();
            for (metric, _) in KEY_METRICS {
                for (name, v) in self.summary(metric, &subset) {
                    let entry = methods.entry(name).or_insert_with(|| serde_json::json!({}));
                    entry[metric] = v.map_or(serde_json::Value::Null, serde_json::Value::from);
                }
            }
            let key = match &subset {
                Subset::All => "all".to_string(),
                Subset::Seen(g) => g.clone(),
                Subset::Interaction(t) => format!("interaction:{t}"),
            };
            out.insert(key, serde_json::Value::Object(methods));
        }
        serde_json::Value::Object(out)
    }

    /// Per model: does its prediction depend on the perturbation? ([`dependence`])
    pub fn dependence(&self) -> Vec<(String, Dependence)> {
        self.models
            .iter()
            .map(|m| (m.name.clone(), dependence(&m.eval.deltas)))
            .collect()
    }

    /// Every metric on which a model does not beat `mean` or `control` over all perturbations.
    pub fn shortfalls(&self) -> Vec<Shortfall> {
        let names: Vec<String> = self.models.iter().map(|m| m.name.clone()).collect();
        let value = |method: &str, metric: &str| {
            let rows = self.summary(metric, &Subset::All);
            rows.into_iter()
                .find(|(n, _)| n == method)
                .and_then(|r| r.1)
        };
        shortfalls(&names, &value)
    }

    /// Write the page to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::Io {
                path: dir.to_path_buf(),
                detail: format!("creating the directory: {e}"),
            })?;
        }
        ccfm_data::fs::write_atomic(path, self.render_html().as_bytes())?;
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, bool)> {
        KEY_METRICS
            .iter()
            .copied()
            .filter(|(m, _)| self.models[0].eval.model.column(m).is_some())
            .collect()
    }

    /// The whole page: verdict, tables, charts, training curves and settings.
    pub fn render_html(&self) -> String {
        let mut s = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
            t = esc(&self.title)
        );
        let e = self.models[0].eval;
        let _ = write!(
            s,
            "<p>{} models on the same {} perturbations and {} genes (real cells: <code>{}</code>). \
             Metrics follow cell-eval 0.8.2. Baselines from the training data: <b>control</b> (unchanged control cells), \
             <b>mean</b> (control + the mean training effect), <b>additive</b> (control + Δ<sub>A</sub> + Δ<sub>B</sub>), \
             <b>ceiling</b> (half of the real cells predicting the other half: a reference, not a method).</p>",
            self.models.len(),
            e.model.perts.len(),
            e.n_genes,
            esc(&e.real_path.display().to_string())
        );
        self.verdict(&mut s);
        for subset in self.subsets() {
            self.table(&mut s, &subset);
        }
        self.charts(&mut s);
        self.training(&mut s);
        self.settings(&mut s);
        s.push_str("<p>Per-model evaluations (every metric, per perturbation): <code>eval/NAME/report.html</code> and <code>results.csv</code>.</p></body></html>\n");
        s
    }

    fn verdict(&self, s: &mut String) {
        s.push_str("<h2>Which method wins</h2><ul>");
        for (metric, higher) in [
            ("pearson_delta", true),
            ("mse", false),
            ("discrimination_score_l1", true),
        ] {
            if let Some((name, v)) = self.best(metric, &Subset::All) {
                let _ = write!(
                    s,
                    "<li>{} ({}): <b>{}</b> ({})</li>",
                    esc(metric),
                    if higher {
                        "higher is better"
                    } else {
                        "lower is better"
                    },
                    esc(&name),
                    fmt(Some(v))
                );
            }
        }
        let pd = self.summary("pearson_delta", &Subset::All);
        if self.models.len() > 1 {
            let best_model = pd
                .iter()
                .filter(|(n, _)| self.models.iter().any(|m| &m.name == n))
                .filter_map(|(n, v)| Some((n, v.filter(|v| v.is_finite())?)))
                .reduce(|a, b| if b.1 > a.1 { b } else { a });
            if let Some((name, v)) = best_model {
                let _ = write!(
                    s,
                    "<li>best model on pearson_delta: <b>{}</b> ({})</li>",
                    esc(name),
                    fmt(Some(v))
                );
            }
        }
        s.push_str("</ul>");
        s.push_str(&shortfall_html(&self.shortfalls()));
        s.push_str(&dependence_html(&self.dependence()));
    }

    fn table(&self, s: &mut String, subset: &Subset) {
        let metrics = self.metrics();
        let _ = write!(
            s,
            "<h3>Mean over {} ({})</h3><table><tr><th>method</th>",
            esc(&subset.label()),
            self.count(subset)
        );
        for (m, _) in &metrics {
            let _ = write!(s, "<th>{}</th>", esc(m));
        }
        s.push_str("</tr>");
        let cols: Vec<Vec<(String, Option<f64>)>> = metrics
            .iter()
            .map(|(m, _)| self.summary(m, subset))
            .collect();
        let best: Vec<Option<String>> = metrics
            .iter()
            .map(|(m, _)| self.best(m, subset).map(|b| b.0))
            .collect();
        // One row per method; every column lists the methods in this order.
        for (k, (method, _)) in self.methods().iter().enumerate() {
            let _ = write!(s, "<tr><td>{}</td>", esc(method));
            for (c, b) in cols.iter().zip(&best) {
                let class = if b.as_deref() == Some(method.as_str()) {
                    " class=\"best\""
                } else {
                    ""
                };
                let _ = write!(s, "<td{class}>{}</td>", fmt(c[k].1));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }

    fn charts(&self, s: &mut String) {
        s.push_str("<h2>Metrics by method</h2><div class=\"charts\">");
        for (m, higher) in self.metrics() {
            s.push_str(&bar_chart(m, higher, &self.summary(m, &Subset::All)));
        }
        s.push_str("</div><h2>Per-perturbation scores</h2><div class=\"charts\">");
        for m in ["pearson_delta", "discrimination_score_l1", "mse"] {
            let rows: Vec<(String, Vec<f64>)> = self
                .methods()
                .into_iter()
                .filter_map(|(n, t)| Some((n, t.column(m)?.iter().flatten().copied().collect())))
                .collect();
            if !rows.is_empty() {
                s.push_str(&strip_chart(m, &rows));
            }
        }
        s.push_str("</div>");
    }

    fn training(&self, s: &mut String) {
        let series: Vec<(String, &[LossPoint])> = self
            .models
            .iter()
            .filter(|m| !m.eval.loss.is_empty())
            .map(|m| (m.name.clone(), m.eval.loss.as_slice()))
            .collect();
        if !series.is_empty() {
            s.push_str("<h2>Training</h2>");
            s.push_str(&loss_chart(&series));
        }
    }

    fn settings(&self, s: &mut String) {
        s.push_str("<h2>Run settings</h2><table><tr><th>setting</th>");
        for m in &self.models {
            let _ = write!(s, "<th>{}</th>", esc(&m.name));
        }
        s.push_str("</tr>");
        let mut keys: Vec<&str> = Vec::new();
        for m in &self.models {
            for (k, _) in &m.settings {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        for k in keys {
            let _ = write!(s, "<tr><td>{}</td>", esc(k));
            for m in &self.models {
                let v = m.settings.iter().find(|(mk, _)| mk == k).map(|(_, v)| v);
                let _ = write!(s, "<td>{}</td>", esc(v.map_or("–", String::as_str)));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
        for m in &self.models {
            if !m.config_text.is_empty() {
                let _ = write!(
                    s,
                    "<details><summary>{}: the whole configuration</summary><pre>{}</pre></details>",
                    esc(&m.name),
                    esc(&m.config_text)
                );
            }
        }
    }
}
