//! The subcommands that need no training backend beyond a check: `info`, `inspect`, `hvg`,
//! `evaluate`, `embed`, `synth`, `completions` (training and prediction are in [`crate::run`]).

use crate::error::CliResult;
use burn::tensor::{Tensor, TensorData};
use ccfm_data::synth::{additive_check, generate};
use ccfm_data::{prepare, H5adSummary, PrepareOptions, SynthConfig};
use ccfm_flow::{integrate, OdeMethod, TimeGrid};

use crate::args::{Cli, CompletionsArgs, EmbedArgs, EvaluateArgs, HvgArgs, InspectArgs, SynthArgs};
use crate::{backend, progress};

pub fn info() -> CliResult {
    println!("ccfm {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled: {}", backend::compiled().join(", "));
    println!("backend selected:  {}", backend::NAME);
    // A check that the device computes: integrate dx/dt = -x from 1 over [0, 1] with RK4.
    let device = Default::default();
    let x0 = Tensor::<backend::Selected, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
    let grid = TimeGrid::uniform(10)?;
    let sol = integrate(|x, _| x.neg(), x0, &grid, OdeMethod::Rk4, false);
    let got: f32 = sol
        .final_state
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| format!("reading the result back from the device: {e:?}"))?[0];
    let want = (-1.0f64).exp() as f32;
    if (got - want).abs() > 1e-5 {
        return Err(format!(
            "device self-check failed: exp(-1) computed as {got}, expected {want}"
        )
        .into());
    }
    println!("device self-check: ok (exp(-1) = {got:.6} by RK4 on {device:?})");
    Ok(())
}

pub fn inspect(a: &InspectArgs) -> CliResult {
    let file = &a.file;
    let s = H5adSummary::read(file)?;
    // The same validation and preparation a training run does.
    let prepared = prepare(file, &a.data.options());
    if a.json {
        let data = prepared?;
        let v = inspect_json(file, &s, &data);
        println!("{}", serde_json::to_string_pretty(&v).expect("plain JSON"));
        return Ok(());
    }
    print_file_summary(file, &s);
    print_prepared(&prepared?);
    Ok(())
}

/// `ccfm inspect --json`: the file's layout and what a training run would use.
fn inspect_json(
    file: &std::path::Path,
    s: &H5adSummary,
    data: &ccfm_data::PreparedData,
) -> serde_json::Value {
    let t = &data.table;
    let (singles, doubles) = t.singles_doubles();
    serde_json::json!({
        "file": file.display().to_string(),
        "n_obs": s.n_obs,
        "n_vars": s.n_vars,
        "x": {"encoding": s.x_encoding, "dtype": s.x_dtype, "stored": s.x_stored,
              "density": s.density()},
        "layers": s.layers,
        "obs_columns": s.obs_columns,
        "var_columns": s.var_columns,
        "schema": t.schema.name(),
        "perturbation_kind": format!("{:?}", t.kind).to_lowercase(),
        "matrix": data.report.element,
        "scale": data.report.scale.to_string(),
        "cells": t.n_cells(),
        "control_cells": t.cells_by_condition()[0].len(),
        "conditions": t.conditions.len(),
        "singles": singles,
        "doubles": doubles,
        "condition_cells": t.conditions.iter().zip(t.cells_by_condition())
            .map(|(c, cells)| (c.name(), cells.len()))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "unmeasured_perturbed_genes": data.report.unmeasured_genes,
        "has_doses": t.doses.is_some(),
        "storage": data.report.storage.to_string(),
        "load_seconds": data.report.seconds,
    })
}

/// The file's own layout (printed even when preparing it fails).
fn print_file_summary(file: &std::path::Path, s: &H5adSummary) {
    println!("{}", file.display());
    println!("  cells x genes: {} x {}", s.n_obs, s.n_vars);
    println!(
        "  X: {} {} ({} stored values, density {:.3})",
        s.x_encoding,
        s.x_dtype,
        s.x_stored,
        s.density()
    );
    println!("  obs columns: {}", s.obs_columns.join(", "));
    println!("  var columns: {}", s.var_columns.join(", "));
    let layers = if s.layers.is_empty() {
        "(none)".to_string()
    } else {
        s.layers.join(", ")
    };
    println!("  layers: {layers}");
}

/// What a training run would use: schema, values, cells and conditions.
fn print_prepared(data: &ccfm_data::PreparedData) {
    let t = &data.table;
    let (singles, doubles) = t.singles_doubles();
    let by = t.cells_by_condition();
    println!(
        "  schema: {} ({} perturbations), values from {} ({})",
        t.schema,
        format!("{:?}", t.kind).to_lowercase(),
        data.report.element,
        data.report.scale
    );
    println!(
        "  cells used: {} ({} control); conditions: {} singles, {} doubles",
        t.n_cells(),
        by[0].len(),
        singles,
        doubles
    );
    let sizes: Vec<usize> = by[1..].iter().map(Vec::len).collect();
    if let (Some(lo), Some(hi)) = (sizes.iter().min(), sizes.iter().max()) {
        println!("  cells per perturbation: {lo} to {hi}");
    }
    if !data.report.unmeasured_genes.is_empty() {
        println!(
            "  perturbed genes not measured (vocabulary-only): {}",
            data.report.unmeasured_genes.len()
        );
    }
    if t.doses.is_some() {
        println!("  doses: per cell (Dose1/Dose2 or dose_val)");
    }
    println!("  expression: {}", data.report.storage);
    println!("  validation: ok (loaded in {:.3} s)", data.report.seconds);
}

pub fn evaluate(a: &EvaluateArgs) -> CliResult {
    let (real, pred, out) = (&a.real, &a.pred, &a.out);
    let opts = &ccfm_eval::EvaluateOptions {
        control: a.control.clone(),
        pert_col: a.pert_col.clone(),
        profile: a.profile,
        train: a.baselines.clone(),
        loss_log: a.log.clone(),
        seed: a.seed,
    };
    let mut bar = progress::Bar::new("evaluating", "metric tables");
    let e = ccfm_eval::evaluate_with_progress(real, pred, opts, &mut |d, n| bar.update(d, n))?;
    bar.finish();
    let report = e.write(out)?;
    println!(
        "evaluated {} perturbations x {} genes in {:.2} s",
        e.model.perts.len(),
        e.n_genes,
        e.seconds
    );
    let metrics = [
        "pearson_delta",
        "mse",
        "discrimination_score_l1",
        "overlap_at_N",
        "mmd",
    ];
    print!("{:<10}", "method");
    for m in metrics {
        print!(" {m:>24}");
    }
    println!();
    let cols: Vec<Vec<(String, Option<f64>)>> =
        metrics.iter().map(|m| e.summary(m, None)).collect();
    for (k, (method, _)) in cols[0].iter().enumerate() {
        print!("{method:<10}");
        for c in &cols {
            match c[k].1 {
                Some(v) if v != 0.0 && v.abs() < 1e-3 => print!(" {v:>24.3e}"),
                Some(v) => print!(" {v:>24.4}"),
                None => print!(" {:>24}", "-"),
            }
        }
        println!();
    }
    println!("report: {}", report.display());
    Ok(())
}

pub fn embed(args: &EmbedArgs) -> CliResult {
    let (scgpt, input, out) = (&args.scgpt, &args.input, &args.out);
    let element = match args.genes_layer.as_str() {
        "X" => "X".to_string(),
        name => format!("layers/{name}"),
    };
    let gene_col = args.gene_col.as_deref();
    let device = Default::default();
    let model = ccfm_scgpt::ScgptModel::<backend::Selected>::from_dir(scgpt, &device)?;
    let ad = ccfm_data::AnnData::open(input)?;
    let genes: Vec<String> = match gene_col {
        None => ad.var.index.clone(),
        Some(c) => ad
            .var
            .column(c)
            .ok_or_else(|| {
                format!(
                    "{}: var has no column `{c}` (var columns: {})",
                    input.display(),
                    ad.var
                        .columns
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
            .as_labels()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
    };
    let rows: Vec<usize> = (0..ad.n_obs()).collect();
    let x = ad.read_matrix(&element, &rows, None)?;
    let opts = ccfm_scgpt::EmbedOptions {
        tie_break: args.binning.into(),
        seed: args.seed,
        batch_size: args.batch_size,
    };
    let mut bar = progress::Bar::new("embedding", "cells");
    let e = ccfm_scgpt::embed_cells(&model, &genes, &x, &opts, &device, &mut |d, n| {
        bar.update(d, n)
    })
    .map_err(|e| format!("{}: {e}", input.display()))?;
    bar.finish();
    e.write_safetensors(out, genes.len())?;
    println!(
        "embedded {} cells with {} ({} of {} genes in its vocabulary of {}; unused checkpoint keys: {}); wrote {}",
        ad.n_obs(),
        scgpt.display(),
        e.genes_in_vocab,
        genes.len(),
        model.vocab.len(),
        model.report.unused.len(),
        out.display()
    );
    Ok(())
}

pub fn synth(a: &SynthArgs) -> CliResult {
    let (preset, seed, out) = (a.preset, a.seed, &a.out);
    let size = a.size()?;
    let cfg = SynthConfig { preset, size, seed };
    let (n_obs, n_vars, gi_type) = match size {
        ccfm_data::Size::Cells { .. } => {
            let w = ccfm_data::synth::write_large(&cfg, out)?;
            (w.n_obs, w.n_vars, w.gi_type)
        }
        _ => {
            let data = generate(&cfg);
            data.write(out)?;
            (data.n_obs(), data.n_vars(), data.gi_type)
        }
    };
    println!(
        "wrote {}: synthetic {preset} ({size}, seed {seed}), {n_obs} cells x {n_vars} genes; raw \
         counts in layers['counts'], X = log1p(normalize_total 1e4); truth in uns (true_mean, \
         true_delta, gi_type)",
        out.display(),
    );
    // The additive baseline on the written data, by interaction type (a large file is read in
    // blocks through a small cache: each condition's cells are read once, in order).
    let opts = PrepareOptions {
        max_memory: ccfm_data::MemoryBudget::Bytes(256 << 20),
        ..Default::default()
    };
    let prepared = prepare(out, &opts)?;
    let mut by: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (name, r, _) in additive_check(&prepared)? {
        let t = gi_type
            .iter()
            .find(|(k, _)| ccfm_data::Condition::parse(k).name() == name)
            .map_or("unknown".to_string(), |(_, t)| t.clone());
        by.entry(t).or_default().push(r);
    }
    if !by.is_empty() {
        println!("additive baseline (control + dA + dB), mean pearson_delta per interaction type:");
        for (t, v) in by {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            println!("  {t:<12} {:>3} doubles  {mean:.3}", v.len());
        }
    }
    Ok(())
}

pub fn hvg(a: &HvgArgs) -> CliResult {
    let genes = ccfm_data::dataset::highly_variable_genes(
        &a.file,
        &a.layer,
        a.dataset.as_deref(),
        a.n_top,
        a.max_memory,
    )?;
    for g in genes {
        println!("{g}");
    }
    Ok(())
}

pub fn completions(a: &CompletionsArgs) -> CliResult {
    use clap::CommandFactory;
    clap_complete::generate(a.shell, &mut Cli::command(), "ccfm", &mut std::io::stdout());
    Ok(())
}
