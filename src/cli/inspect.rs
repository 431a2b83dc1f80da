//! `dbl inspect`: not implemented yet (issue #2).

/// Arguments of `dbl inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `dbl inspect`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dbl inspect` is not implemented yet")
}
