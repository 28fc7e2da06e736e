//! `ccfm train`, `ccfm predict` and `ccfm demo`: argument handling around `ccfm-train`.

use crate::error::CliResult;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ccfm_data::Size;
use ccfm_train::demo::{run_demo, DemoOptions};
use ccfm_train::distributed::GradSync;
use ccfm_train::{
    predict_with_progress as predict_run, report_runs, train_new, train_resume, RunConfig,
    TrainEvent, TrainOptions,
};

use crate::args::{BenchArgs, DemoArgs, PredictArgs, ReportArgs, TrainArgs};
use crate::backend::{self, SelectedAutodiff};
use crate::progress;

fn say(line: String) {
    eprintln!("{line}");
}

pub fn train(a: TrainArgs, device: Option<usize>) -> CliResult {
    let sync = ccfm_train::distributed::from_environment()?;
    let (rank, world) = (sync.rank(), sync.world());
    match train_on(a, device, sync.clone()) {
        // A rank that fails ends every rank: the others would wait for it in a collective.
        Err(e) if world > 1 => {
            eprintln!("error (rank {rank} of {world}): {}", e.one_line());
            sync.abort(1)
        }
        Err(e) => Err(e),
        Ok(None) => Ok(()),
        Ok(Some(code)) => {
            // The last handle: MPI is finalised before the process ends with the signal's code.
            drop(sync);
            std::process::exit(code)
        }
    }
}

/// Train; `Some(exit code)` when the run was stopped by a signal.
fn train_on(a: TrainArgs, device: Option<usize>, sync: Rc<dyn GradSync>) -> CliResult<Option<i32>> {
    let TrainArgs {
        config,
        out,
        resume,
        set,
        stop_after,
    } = a;
    let device = backend::device(backend::rank_device(device, sync.world()))?;
    let writer = sync.is_writer();
    let mut bar = progress::TrainBar::new();
    // Rank 0 reports; the other ranks compute quietly.
    let mut observer = |e: &TrainEvent| {
        if writer {
            bar.observe(e)
        }
    };
    let (stop, signal) = stop_on_signals()?;
    let cache = ccfm::cache::default_dir();
    let opts = TrainOptions {
        observer: &mut observer,
        stop_after,
        stop: Some(&stop),
        cache_dir: Some(&cache),
        sync: Some(sync),
    };
    if writer {
        eprintln!("ccfm {}", backend::version());
    }
    let summary = match (config, out, resume) {
        (_, _, Some(run)) => train_resume::<SelectedAutodiff>(&run, &device, opts),
        (Some(config), Some(out), None) => {
            train_new::<SelectedAutodiff>(read_config(&config, &set, writer)?, &out, &device, opts)
        }
        _ => return Err("give --config and --out, or --resume RUN".into()),
    };
    bar.clear();
    let summary = summary?;
    if summary.interrupted {
        // A rank stopped because another one was signalled ends as if it had been too.
        let sig = match signal.load(Ordering::SeqCst) {
            0 => signal_hook::consts::SIGTERM as usize,
            s => s,
        };
        if writer {
            eprintln!(
                "stopped at step {} by {}; resume with `ccfm train --resume {}`",
                summary.steps,
                signal_name(signal.load(Ordering::SeqCst)),
                summary.run.display()
            );
        }
        // The shell's convention for a process ended by a signal.
        return Ok(Some(128 + sig as i32));
    }
    if writer {
        print_summary(&summary);
    }
    Ok(None)
}

/// The configuration of a new run: checked, with a note for each key of an earlier version
/// that was moved (when `notes`: rank 0 of a data-parallel run), and a data file that exists.
fn read_config(config: &std::path::Path, set: &[String], notes: bool) -> CliResult<RunConfig> {
    let (cfg, moved) = RunConfig::read_with_notes(config, set)?;
    for n in moved.iter().filter(|_| notes) {
        eprintln!("note: {}: {n}", config.display());
    }
    if !cfg.data.path.exists() {
        return Err(format!(
            "{}: data.path = {}: no such file; fix the path or pass --set data.path=FILE",
            config.display(),
            cfg.data.path.display()
        )
        .into());
    }
    Ok(cfg)
}

/// The end-of-run lines (stdout).
fn print_summary(summary: &ccfm_train::TrainSummary) {
    if summary.steps < summary.total_steps {
        println!(
            "stopped at step {} of {}; continue with: ccfm train --resume {}",
            summary.steps,
            summary.total_steps,
            summary.run.display()
        );
    }
    println!(
        "trained to step {}{} in {:.1} s ({:.2} steps/s); last loss {:.5}",
        summary.steps,
        summary
            .resumed_from
            .map(|s| format!(" (resumed at step {s})"))
            .unwrap_or_default(),
        summary.seconds,
        summary.steps_per_second,
        summary.last_loss
    );
    if let Some(v) = &summary.validation {
        println!(
            "validation: {} conditions, pearson_delta {}, mse {}",
            v.conditions,
            v.pearson_delta
                .map(|x| format!("{x:.4}"))
                .unwrap_or("-".into()),
            v.mse.map(|x| format!("{x:.5}")).unwrap_or("-".into())
        );
    }
    println!("checkpoint: {}", summary.checkpoint.display());
}

/// A flag raised by the first SIGINT or SIGTERM (training then checkpoints the step in progress
/// and returns) and the number of that signal; a second signal ends the process at once.
fn stop_on_signals() -> CliResult<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM] {
        let err = |e: std::io::Error| format!("cannot handle signal {sig}: {e}");
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop))
            .map_err(err)?;
        signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize).map_err(err)?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(err)?;
    }
    Ok((stop, which))
}

fn signal_name(sig: usize) -> &'static str {
    match sig as i32 {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        0 => "a signal to another rank",
        _ => "a signal",
    }
}

pub fn predict(a: &PredictArgs, device: Option<usize>) -> CliResult {
    let (run, out) = (a.run.as_path(), a.out.as_path());
    let opts = ccfm_train::PredictOptions {
        conditions: a.conditions.clone(),
        controls: a.controls.clone(),
        cells_per_condition: a.cells_per_condition,
        checkpoint: Some(a.checkpoint.clone()),
        use_ema: a.no_ema.then_some(false),
        seed: a.seed,
        cache_dir: Some(ccfm::cache::default_dir()),
    };
    let device = backend::device(device)?;
    let bar = progress::Shared::new("predicting", "conditions");
    let s = predict_run::<SelectedAutodiff>(
        run,
        out,
        &opts,
        &device,
        &mut |line| bar.say(line),
        &mut |d, n| bar.update(d, n),
    )?;
    bar.finish();
    println!(
        "predicted {} conditions x {} cells over {} genes in {:.1} s",
        s.conditions.len(),
        s.cells_per_condition,
        s.genes,
        s.seconds
    );
    println!("predicted cells: {}", s.predicted.display());
    if let Some(r) = &s.real {
        println!("real cells:      {}", r.display());
        println!(
            "evaluate with:   ccfm evaluate --real {} --pred {} --out EVAL_DIR",
            r.display(),
            s.predicted.display()
        );
    }
    Ok(())
}

pub fn demo(a: &DemoArgs, device: Option<usize>) -> CliResult {
    let device = backend::device(device)?;
    eprintln!("ccfm demo {} -> {}", backend::version(), a.out.display());
    let presets = a
        .preset
        .map_or(ccfm_train::demo::PRESETS.to_vec(), |p| vec![p]);
    let mut say = say;
    let s = run_demo::<SelectedAutodiff>(
        &DemoOptions {
            out: a.out.clone(),
            seed: a.seed,
            presets,
            size: Size::Default,
            overrides: a.set.clone(),
            cache_dir: Some(ccfm::cache::default_dir()),
            jobs: a.jobs.unwrap_or(0),
        },
        &device,
        &mut say,
    )?;
    for p in &s.presets {
        print!("{}", ccfm_train::demo::format_preset(p));
    }
    println!();
    println!("(pearson_delta and discrimination: higher is better; mse: lower is better.");
    println!(" The scGPT here has random weights, so CCFM's latent carries no pretrained biology;");
    println!(" training is minutes, not the reference 200k steps.)");
    println!("all figures: {}", s.json.display());
    println!("demo finished in {:.0} s", s.seconds);
    Ok(())
}

pub fn report(a: &ReportArgs, device: Option<usize>) -> CliResult {
    let (runs, out, seed) = (a.runs.as_slice(), a.out.as_path(), a.seed);
    let device = backend::device(device)?;
    let mut say = say;
    let cache = ccfm::cache::default_dir();
    let pipe = ccfm_train::Pipeline {
        out,
        seed,
        cache_dir: Some(&cache),
    };
    let s = report_runs::<SelectedAutodiff>(runs, &pipe, &device, &mut say)?;
    let rows = ccfm_train::demo::method_rows(&s.runs);
    println!(
        "{} runs on {} test conditions, mean over conditions:",
        s.runs.len(),
        s.runs[0].predict.conditions.len()
    );
    print!("{}", ccfm_train::demo::format_table(&rows));
    print!(
        "{}",
        ccfm_train::demo::format_guard_rails(&s.dependence, &s.shortfalls)
    );
    println!("report: {}", s.report.display());
    println!("means:  {}", s.json.display());
    Ok(())
}

pub fn bench(a: &BenchArgs, device: Option<usize>) -> CliResult {
    use ccfm_train::bench::{run_bench, Reps};
    let device = backend::device(device)?;
    let mut reps = Reps::default_for(a.config);
    if let Some(n) = a.reps {
        let n = n.max(1);
        (reps.train, reps.infer, reps.generate) = (n, n, n);
    }
    if !a.json {
        eprintln!(
            "ccfm {}: timing {} ({} + {} training steps, {} + {} evaluations)",
            backend::version(),
            a.config.name(),
            reps.warmup,
            reps.train,
            reps.warmup,
            reps.infer
        );
    }
    let r = run_bench::<SelectedAutodiff>(a.config, reps, &device)?;
    if a.json {
        println!("{}", r.to_json());
        return Ok(());
    }
    let f = |v: Option<f64>, unit: &str| v.map(|x| format!("{x:.4} {unit}")).unwrap_or("-".into());
    println!("config        {}", r.config);
    println!("train step    {}", f(Some(r.train_step_s), "s"));
    println!("forward       {}", f(Some(r.infer_fwd_s), "s"));
    println!("generate 48   {}", f(r.generate_s, "s"));
    println!("peak RSS      {}", f(r.peak_rss_mib, "MiB"));
    println!("threads       {}", r.threads);
    Ok(())
}
