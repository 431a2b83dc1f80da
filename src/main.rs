//! `dbl` command line: parses arguments and dispatches to [`dbl::cli`].

use clap::{Parser, Subcommand};
use dbl::cli;

/// Deep Boosting Learning for image-text matching.
#[derive(Debug, Parser)]
#[command(name = "dbl", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the deterministic synthetic dataset (SCAN precomp layout + vocabulary).
    Synth(cli::synth::Args),
    /// Build or inspect a vocabulary.
    Vocab(cli::vocab::Args),
    /// Tokenize captions from stdin (one per line) exactly as NLTK; prints JSON arrays.
    Tokenize(cli::tokenize::Args),
    /// Validate a dataset folder and print a summary.
    Inspect(cli::inspect::Args),
    /// Compute R@K / medr / meanr / rSum from similarity matrices.
    Eval(cli::eval::Args),
    /// Print a backbone's layers (state_dict names, shapes) and parameter count.
    Model(cli::model::Args),
    /// Convert a PyTorch checkpoint of a backbone to safetensors weights.
    ImportTorch(cli::import_torch::Args),
    /// Turn the original codebases' checkpoints (DBL, SGRAF, VSE∞) into a run folder.
    Import(cli::import::Args),
    /// Train a run (baseline, OAS, OSS cohort, MSS) from a config; --resume continues one.
    Train(cli::train::Args),
    /// Score a split with a trained run's checkpoint; writes the similarity matrix for `eval`.
    Score(cli::score::Args),
    /// Why did a caption match an image: attention, per-word contributions, picture.
    Explain(cli::explain::Args),
    /// Draw a run's loss and dev rSum curves per branch (PNG + SVG).
    Report(cli::report::Args),
    /// Train one config over several seeds; test each branch; mean ± sd, paired 95 % CI (and `sweep compare`).
    Sweep(cli::sweep::Args),
    /// Synthetic data + anchor/target training + test table, end to end.
    Demo(cli::demo::Args),
    /// Build an index folder of a gallery for `search` / `serve`.
    Index(cli::index::Args),
    /// Search an index: text → images, or image features → captions.
    Search(cli::search::Args),
    /// Serve indexes over HTTP (search, /healthz, /metrics).
    Serve(cli::serve::Args),
    /// Time one benchmark configuration against the PyTorch peer's contract (tools/bench).
    Bench(cli::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        restore_sigpipe();
    }
    let result = match cli.command {
        Command::Synth(a) => cli::synth::run(a),
        Command::Vocab(a) => cli::vocab::run(a),
        Command::Tokenize(a) => cli::tokenize::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Score(a) => cli::score::run(a),
        Command::Model(a) => cli::model::run(a),
        Command::ImportTorch(a) => cli::import_torch::run(a),
        Command::Import(a) => cli::import::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Explain(a) => cli::explain::run(a),
        Command::Report(a) => cli::report::run(a),
        Command::Sweep(a) => cli::sweep::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Index(a) => cli::index::run(a),
        Command::Search(a) => cli::search::run(a),
        Command::Serve(a) => cli::serve::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", dbl::os_error::describe(e.as_ref()));
        std::process::exit(1);
    }
}

/// `dbl vocab show … | head -1`: when the reader closes the pipe, end
/// quietly by SIGPIPE as other command-line tools do, instead of panicking in
/// `println!` (Rust ignores SIGPIPE by default). `serve` keeps ignoring it:
/// its sockets never raise it, and a closed stdout must not stop the service.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: resetting a signal's disposition to its default before any
    // thread is started; no handler is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
