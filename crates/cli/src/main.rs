//! The `tuneloop` command line. See `DESIGN.md` for the contract: JSON on
//! stdout, progress on stderr, exit 0 on success, 2 on bad input, 1 otherwise.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Learn LLM generation parameters from outcomes, safely.
#[derive(Debug, Parser)]
#[command(name = "tuneloop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Estimator-level off-policy evaluation of a JSON Lines file.
    Ope,
    /// Policy-level evaluation of a candidate on a decision log.
    Evaluate,
    /// Supervised-to-bandit or built-in scenario simulation.
    Simulate,
    /// Latency of the hot paths.
    Bench,
    /// A self-contained HTML report of a decision log.
    Report,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Ope => "ope",
        Command::Evaluate => "evaluate",
        Command::Simulate => "simulate",
        Command::Bench => "bench",
        Command::Report => "report",
    };
    eprintln!("tuneloop {name}: not implemented yet");
    ExitCode::FAILURE
}
