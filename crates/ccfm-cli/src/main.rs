//! `ccfm`: the command-line tool. Thin: it parses the arguments ([`args`]), picks the backend
//! ([`backend`]) and hands each subcommand to its function ([`commands`], [`run`]).

mod args;
mod backend;
mod commands;
mod error;
mod progress;
mod run;

use std::process::ExitCode;

use args::{Cli, Command};

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let version: &'static str = Box::leak(backend::version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // A file-size limit (`ulimit -f`) makes writes fail with an error, not kill the process:
    // the checkpoint writer then keeps the previous checkpoint and says so.
    // SAFETY: setting a signal's disposition to "ignore" before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let device = cli.device;
    let result = match cli.command {
        Command::Info => commands::info(),
        Command::Demo(a) => run::demo(&a, device),
        Command::Train(a) => run::train(a, device),
        Command::Predict(a) => run::predict(&a, device),
        Command::Report(a) => run::report(&a, device),
        Command::Inspect(a) => commands::inspect(&a),
        Command::Hvg(a) => commands::hvg(&a),
        Command::Evaluate(a) => commands::evaluate(&a),
        Command::Embed(a) => commands::embed(&a),
        Command::Synth(a) => commands::synth(&a),
        Command::Completions(a) => commands::completions(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: errors of the libraries below (TOML, weights) can span several.
            let message = e.to_string();
            let line: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("error: {}", line.join("; "));
            ExitCode::FAILURE
        }
    }
}
