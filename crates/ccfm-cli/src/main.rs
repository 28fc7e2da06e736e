//! `ccfm`: the command-line tool. Thin: it parses arguments, picks the backend
//! (see [`backend`]) and calls the library crates.

mod backend;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{Tensor, TensorData};
use ccfm_data::H5adSummary;
use ccfm_flow::{integrate, OdeMethod, TimeGrid};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccfm",
    version,
    about = "Cascaded Conditioned Flow Matching for single-cell perturbation prediction"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the version, the compiled backends, and check that the selected backend computes.
    Info,
    /// Show the layout of an .h5ad file: shape, X encoding, obs/var columns, layers.
    Inspect {
        /// The .h5ad file to read.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Inspect { file } => inspect(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> Result<(), String> {
    println!("ccfm {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled: {}", backend::compiled().join(", "));
    println!("backend selected:  {}", backend::NAME);
    // A check that the device computes: integrate dx/dt = -x from 1 over [0, 1] with RK4.
    let device = Default::default();
    let x0 = Tensor::<backend::Selected, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
    let grid = TimeGrid::uniform(10).map_err(|e| e.to_string())?;
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
        ));
    }
    println!("device self-check: ok (exp(-1) = {got:.6} by RK4 on {device:?})");
    Ok(())
}

fn inspect(file: &PathBuf) -> Result<(), String> {
    let s = H5adSummary::read(file).map_err(|e| e.to_string())?;
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
    Ok(())
}
