//! `dbl tokenize`: not implemented yet (issue #2).

/// Arguments of `dbl tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `dbl tokenize`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dbl tokenize` is not implemented yet")
}
