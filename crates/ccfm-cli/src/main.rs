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
    let cli = parse();
    ignore_file_size_signal();
    end_quietly_on_closed_pipe();
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
        Command::Bench(a) => run::bench(&a, device),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}

/// The arguments, with `--version` naming the compiled backends (clap exits on a bad one).
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let version: &'static str = Box::leak(backend::version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Output into a pipe that closes (`ccfm hvg FILE --n-top 100 | head`) ends the process as it
/// ends other Unix tools, by SIGPIPE, instead of a panic in `println!` (Rust ignores SIGPIPE by
/// default, so the write fails and printing panics).
fn end_quietly_on_closed_pipe() {
    // SAFETY: restoring a signal's default disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A file-size limit (`ulimit -f`) makes writes fail with an error instead of killing the
/// process: the checkpoint writer then keeps the previous checkpoint and says so.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
