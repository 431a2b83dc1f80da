//! `dbl vocab`: not implemented yet (issue #2).

/// Arguments of `dbl vocab`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `dbl vocab`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dbl vocab` is not implemented yet")
}
