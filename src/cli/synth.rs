//! `dbl synth`: not implemented yet (issue #2).

/// Arguments of `dbl synth`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `dbl synth`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dbl synth` is not implemented yet")
}
