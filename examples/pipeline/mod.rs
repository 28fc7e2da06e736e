//! The argument handling shared by the dataset examples (norman, combosciplex).

use std::path::PathBuf;

use ccfm::backend::{SelectedAutodiff, NAME};
use ccfm::train::demo::{format_table, summary_rows, train_predict_evaluate};
use ccfm::train::RunConfig;

pub struct Dataset {
    pub name: &'static str,
    pub config: &'static str,
    pub config_path: &'static str,
    pub help: &'static str,
}

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

pub fn run(ds: Dataset) {
    let mut data: Option<String> = None;
    let mut scgpt: Option<String> = None;
    let mut out = PathBuf::from(format!("ccfm-{}", ds.name));
    let mut sets: Vec<String> = Vec::new();
    let mut scdfm = false;
    let mut random_scgpt = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .unwrap_or_else(|| fail(format!("{a} needs {what}")))
        };
        match a.as_str() {
            "--data" => data = Some(value("a .h5ad path")),
            "--scgpt" => scgpt = Some(value("a scGPT model directory")),
            "--out" => out = PathBuf::from(value("a directory")),
            "--schema" => sets.push(format!("data.schema={}", value("a schema name"))),
            "--dataset" => sets.push(format!("data.dataset={}", value("an obs['dataset'] value"))),
            "--steps" => sets.push(format!("train.steps={}", value("a number of steps"))),
            "--set" => sets.push(value("section.key=value")),
            "--scdfm" => scdfm = true,
            "--random-scgpt" => random_scgpt = true,
            "-h" | "--help" => {
                println!("{}", ds.help);
                return;
            }
            other => fail(format!("unknown argument `{other}` (see --help)")),
        }
    }
    let Some(data) = data else {
        eprintln!("{}", ds.help);
        std::process::exit(2);
    };
    let mut overrides = vec![format!("data.path={data}")];
    if scdfm {
        overrides.push("latent.enabled=false".into());
    } else if random_scgpt {
        // Filled in below, once the data's genes are known.
        overrides.push(format!(
            "latent.scgpt_dir={}",
            out.join("scgpt_random").display()
        ));
    } else {
        match scgpt {
            Some(dir) => overrides.push(format!("latent.scgpt_dir={dir}")),
            None => fail(
                "--scgpt DIR is needed for CCFM (or --scdfm for the baseline, or \
                 --random-scgpt for a pipeline check with an untrained scGPT)"
                    .to_string(),
            ),
        }
    }
    // A file with unmeasured perturbed genes (PerturBench's 500 genes) needs vocabulary tokens.
    if sets.iter().any(|s| s == "data.schema=perturbench") {
        overrides.push("data.unmeasured_perturbations=vocabulary".into());
    }
    overrides.extend(sets);
    let cfg = RunConfig::parse(ds.config, ds.config_path, &overrides)
        .unwrap_or_else(|e| fail(e.to_string()));
    if out.exists() {
        fail(format!(
            "{} exists; choose another --out (runs are never overwritten)",
            out.display()
        ));
    }
    let model = if scdfm { "scdfm" } else { "ccfm" };
    let device = Default::default();
    if random_scgpt && !scdfm {
        // A random-weight scGPT over the data's genes: checks the pipeline, carries no biology.
        let opts = ccfm::train::experiment::prepare_options(&cfg);
        let prepared =
            ccfm::data::prepare(&cfg.data.path, &opts).unwrap_or_else(|e| fail(e.to_string()));
        ccfm::scgpt::checkpoint::write_random_dir::<ccfm::backend::Selected>(
            &cfg.latent.scgpt_dir,
            &prepared.genes,
            &ccfm::train::demo::demo_scgpt_args(),
            0,
            &device,
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        println!(
            "scGPT: RANDOM weights over the data's {} genes -> {} (a pipeline check, no biology)",
            prepared.genes.len(),
            cfg.latent.scgpt_dir.display()
        );
    }
    println!(
        "{}: {model} on {data}, backend {NAME}, {} steps -> {}",
        ds.name,
        cfg.train.steps,
        out.display()
    );
    let mut say = |s: String| eprintln!("{s}");
    let cache = ccfm::cache::default_dir();
    let pipe = ccfm::train::Pipeline {
        out: &out,
        seed: 0,
        cache_dir: Some(&cache),
    };
    let r = train_predict_evaluate::<SelectedAutodiff>(&cfg, model, &pipe, &device, &mut say)
        .unwrap_or_else(|e| fail(e.to_string()))
        .evaluated;
    println!();
    println!(
        "{} test conditions, mean over conditions:",
        r.predict.conditions.len()
    );
    print!("{}", format_table(&summary_rows(&r.evaluation, model)));
    println!("report: {}", r.report.display());
}
