//! `dbl report RUN_DIR`: loss and dev rSum curves per branch, drawn from
//! `RUN_DIR/branch{k}/metrics.jsonl` to PNG and SVG ([`crate::train::report`]).

use std::path::PathBuf;

use anyhow::anyhow;

use crate::train::report::report;

/// Arguments of `dbl report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder written by `dbl train` (holds branch0/, branch1/, …).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
}

/// Runs `dbl report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let r = report(&args.run).map_err(|m| anyhow!(m))?;
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    for (l, s) in r.loss.iter().zip(&r.rsum) {
        let last_loss = l.points.last().map_or(f64::NAN, |p| p.1);
        let best = s.points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
        println!(
            "branch{} ({}): {} loss points (last {last_loss:.4}), {} evals (best dev rSum {best:.2})",
            l.branch,
            l.label,
            l.points.len(),
            s.points.len()
        );
    }
    Ok(())
}
