//! `dbl eval`: not implemented yet (issue #2).

/// Arguments of `dbl eval`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `dbl eval`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dbl eval` is not implemented yet")
}
