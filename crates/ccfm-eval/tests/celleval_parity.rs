//! cell-eval 0.8.2 parity (tools/gen_celleval_fixture.py -> tests/fixtures/celleval): every
//! metric of the `full` profile except clustering_agreement, per perturbation, on a hand-made
//! pair and on the additive baseline for the real PerturBench Norman seen-2 doubles.

use std::collections::HashMap;

use ccfm_data::AnnData;
use ccfm_eval::{compute, differential_expression, CellSet, EvalPair, MetricTable, Profile};
use ccfm_testkit::{available, shared_dir, workspace_root};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = workspace_root().join("tests/fixtures/celleval").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        _ => v.as_f64().unwrap(),
    }
}

fn compare(table: &MetricTable, expected: &Value, skip: &[&str]) {
    let perts: Vec<&str> = expected["perturbation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(table.perts, perts);
    for (name, values) in expected.as_object().unwrap() {
        if name == "perturbation" || skip.contains(&name.as_str()) {
            continue;
        }
        let got = table
            .column(name)
            .unwrap_or_else(|| panic!("metric {name} not computed"));
        for (i, v) in values.as_array().unwrap().iter().enumerate() {
            let want = num(v);
            // cell-eval's frame turns missing values into NaN.
            let got = got[i].unwrap_or(f64::NAN);
            let ok = (want.is_nan() && got.is_nan()) || (got - want).abs() <= 1e-6;
            assert!(ok, "{name}[{}]: got {got}, cell-eval {want}", perts[i]);
        }
    }
}

/// The aggregate table (polars `describe()`), missing and NaN treated alike as cell-eval's
/// pandas export does.
fn compare_agg(table: &MetricTable, expected: &Value) {
    let rows: Vec<&str> = expected["statistic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(rows, ccfm_eval::output::AGG_ROWS);
    for (name, values) in table.columns.iter() {
        let got = ccfm_eval::output::describe(values);
        let want = &expected[name.as_str()];
        if want.is_null() {
            continue; // a metric cell-eval does not compute (our extras)
        }
        for (r, w) in want.as_array().unwrap().iter().enumerate() {
            let w = if w.is_null() { f64::NAN } else { num(w) };
            let g = got[r].unwrap_or(f64::NAN);
            let ok = (w.is_nan() && g.is_nan()) || (g - w).abs() <= 1e-6;
            assert!(ok, "agg {name} {}: got {g}, cell-eval {w}", rows[r]);
        }
    }
}

fn read(path: &std::path::Path, col: &str) -> (Vec<String>, CellSet) {
    let ad = AnnData::open(path).unwrap();
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    let x = ad.read_matrix("X", &rows, None).unwrap();
    let labels = ad
        .obs
        .column(col)
        .unwrap()
        .as_labels()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    (ad.var.index.clone(), CellSet { x, labels })
}

#[test]
fn tiny_pair_matches_cell_eval_including_the_de_tables() {
    let fx = fixture("tiny.json");
    let dir = workspace_root().join("tests/fixtures/celleval");
    let (genes, real) = read(&dir.join("tiny_real.h5ad"), "perturbation");
    let (pgenes, pred) = read(&dir.join("tiny_pred.h5ad"), "perturbation");
    let pair = EvalPair::new(genes.clone(), &genes, &pgenes, real, pred, "control").unwrap();
    // DE tables: p-values and FDR within one float32 ulp of cell-eval (which stores them as
    // float32), log2 fold changes to 1e-6.
    for (side, key) in [("real", "de_real"), ("pred", "de_pred")] {
        let t = &fx[key];
        let set = if side == "real" {
            &pair.real
        } else {
            &pair.pred
        };
        let groups = if side == "real" {
            &pair.real_groups
        } else {
            &pair.pred_groups
        };
        let mut by: HashMap<String, ccfm_eval::DeResult> = HashMap::new();
        for p in &pair.perts {
            by.insert(
                p.clone(),
                differential_expression(&set.x, genes.len(), &groups.by_pert[p], &groups.control),
            );
        }
        for r in 0..t["target"].as_array().unwrap().len() {
            let target = t["target"][r].as_str().unwrap();
            let j = genes
                .iter()
                .position(|g| g == t["feature"][r].as_str().unwrap())
                .unwrap();
            let d = &by[target];
            let (p, q, l) = (
                num(&t["p_value"][r]),
                num(&t["fdr"][r]),
                num(&t["log2_fold_change"][r]),
            );
            assert!(
                ((d.p_value[j] as f64 - p) / p).abs() <= 2e-7,
                "{side} {target} p: {} vs {p}",
                d.p_value[j]
            );
            assert!(
                ((d.fdr[j] as f64 - q) / q).abs() <= 2e-7,
                "{side} {target} fdr: {} vs {q}",
                d.fdr[j]
            );
            let lfc = d.lfc[j] as f64;
            assert!(
                lfc == l || (lfc - l).abs() <= 1e-6,
                "{side} {target} lfc: {lfc} vs {l}"
            );
        }
    }
    let table = compute(&pair, Profile::Full);
    compare(&table, &fx["results"], &["clustering_agreement"]);
    compare_agg(&table, &fx["agg"]);
}

#[test]
fn additive_baseline_on_real_norman_doubles_matches_cell_eval() {
    let path = shared_dir().join("data/perturbench_devel.h5ad");
    if !available(
        &path,
        "additive_baseline_on_real_norman_doubles_matches_cell_eval",
    ) {
        return;
    }
    let fx = fixture("norman_additive.json");
    let ad = AnnData::open(&path).unwrap();
    let ds = ad.obs.column("dataset").unwrap().as_labels();
    let cond = ad.obs.column("condition").unwrap().as_labels();
    let rows: Vec<usize> = (0..ad.n_obs())
        .filter(|&r| ds[r].as_deref() == Some("norman19"))
        .collect();
    let x = ad.read_matrix("X", &rows, None).unwrap();
    let g = ad.n_vars();
    let label: Vec<String> = rows.iter().map(|&r| cond[r].clone().unwrap()).collect();
    let cells = |c: &str| -> Vec<usize> { (0..rows.len()).filter(|&i| label[i] == c).collect() };
    let mean = |idx: &[usize]| -> Vec<f64> {
        let mut m = vec![0f64; g];
        for &i in idx {
            for j in 0..g {
                m[j] += x[i * g + j] as f64;
            }
        }
        m.iter().map(|v| v / idx.len() as f64).collect()
    };
    let ctrl = cells("control");
    let mu_c = mean(&ctrl);
    let (mut real_x, mut pred_x, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for d in fx["doubles"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        let idx = cells(d);
        let (ga, gb) = d.split_once('+').unwrap();
        let (ma, mb) = (mean(&cells(ga)), mean(&cells(gb)));
        for (k, &i) in idx.iter().enumerate() {
            real_x.extend_from_slice(&x[i * g..(i + 1) * g]);
            let c = ctrl[k % ctrl.len()];
            for j in 0..g {
                let delta = (ma[j] - mu_c[j]) + (mb[j] - mu_c[j]);
                pred_x.push(((x[c * g + j] as f64 + delta) as f32).max(0.0));
            }
            labels.push(d.to_string());
        }
    }
    for &c in &ctrl {
        real_x.extend_from_slice(&x[c * g..(c + 1) * g]);
        pred_x.extend_from_slice(&x[c * g..(c + 1) * g]);
        labels.push("control".to_string());
    }
    let genes = ad.var.index.clone();
    let pair = EvalPair::new(
        genes.clone(),
        &genes,
        &genes,
        CellSet {
            x: real_x,
            labels: labels.clone(),
        },
        CellSet { x: pred_x, labels },
        "control",
    )
    .unwrap();
    let table = compute(&pair, Profile::Full);
    compare(&table, &fx["results"], &["clustering_agreement"]);
    compare_agg(&table, &fx["agg"]);
}
