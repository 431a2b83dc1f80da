//! `dbl import-torch IN.pth OUT.safetensors`: converts a PyTorch checkpoint of
//! a backbone (the authors' `{'model': state_dict, …}` `.pth.tar`, possibly
//! with nn.DataParallel's `module.` prefix) to dbl's safetensors weights by
//! running `tools/import_torch.py` (embedded in the binary) with `python3`,
//! then validates the result by loading it into the Rust model whose sizes
//! the tensors imply.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use safetensors::SafeTensors;

use crate::engine::param::Module;
use crate::model::weights::TensorShapes;
use crate::model::{Model, ModelConfig, weights};

/// The conversion script, shipped inside the binary.
const SCRIPT: &str = include_str!("../../tools/import_torch.py");

/// Arguments of `dbl import-torch`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Safety: the checkpoint is read with torch.load(weights_only=True), which loads \
                  tensors and plain containers only and never runs code stored in the file; the \
                  one extra class allowed is argparse.Namespace (the authors' checkpoints keep \
                  their options as `opt`). A file that needs anything else is refused. Needs \
                  torch >= 2.4 (torch.serialization.add_safe_globals)."
)]
pub struct Args {
    /// PyTorch checkpoint (`.pth` / `.pth.tar`) holding a scan-ave, vse, sgr or saf state_dict.
    pub input: PathBuf,
    /// Where to write the safetensors weights (written atomically).
    pub output: PathBuf,
    /// Python interpreter with `torch` and `safetensors` installed.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// Infers the backbone and sizes from a weights file's tensor names and
/// shapes (the backbone table's `detect`).
pub fn infer_config(bytes: &[u8], path: &Path) -> anyhow::Result<ModelConfig> {
    let st = SafeTensors::deserialize(bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    crate::model::registry::detect(&TensorShapes::of(&st))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Loads a converted weights file into the model its shapes imply.
pub fn load_imported(path: &Path) -> anyhow::Result<Model> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = infer_config(&bytes, path)?;
    let mut model = Model::new(&cfg, 0).context("implied model sizes")?;
    weights::load_bytes(&mut model, &bytes, path)?;
    Ok(model)
}

/// Runs `tools/import_torch.py` (embedded) with `python`: converts the
/// PyTorch checkpoint `input` to safetensors `output` and, with `options`,
/// writes what the checkpoint says about itself (layout, `opt`) there.
pub fn convert_with_python(
    python: &str,
    input: &Path,
    output: &Path,
    options: Option<&Path>,
) -> anyhow::Result<()> {
    // The input is named before Python is looked for (a missing torch must
    // not hide a mistyped path).
    crate::os_error::check_file(input).map_err(|w| anyhow::anyhow!("{}: {w}", input.display()))?;
    let probe = Command::new(python)
        .args(["-c", "import torch, safetensors"])
        .output();
    match probe {
        Err(e) => bail!(
            "cannot run `{python}` ({e}); reading a PyTorch checkpoint needs Python 3 with torch \
             and safetensors (pip install torch safetensors), or pass --python"
        ),
        Ok(o) if !o.status.success() => bail!(
            "`{python}` cannot import torch/safetensors: {}; install them (pip install torch safetensors)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
    let dir = tempfile_dir()?;
    let script = dir.join("import_torch.py");
    std::fs::write(&script, SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(input).arg(output);
    if let Some(o) = options {
        cmd.arg(o);
    }
    let status = cmd.status();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.with_context(|| format!("running {python}"))?;
    if !status.success() {
        bail!(
            "converting {} failed ({status}); see the messages above",
            input.display()
        );
    }
    Ok(())
}

/// Runs `dbl import-torch`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::out_path::file("OUTPUT", &args.output)?;
    convert_with_python(&args.python, &args.input, &args.output, None)?;
    let model = load_imported(&args.output)
        .with_context(|| format!("validating {}", args.output.display()))?;
    let cfg = model.config();
    println!(
        "imported {}: {} (V = {}, d = {}, word dim {}, img dim {}), {} parameters",
        args.output.display(),
        cfg.backbone.name(),
        cfg.vocab_size,
        cfg.embed,
        cfg.word_dim,
        cfg.img_dim,
        crate::cli::model::thousands(model.num_params())
    );
    Ok(())
}

pub(crate) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("dbl-import-torch-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded script loads with weights_only=True and the Namespace
    /// allow-list only, and `--help` says so.
    #[test]
    fn script_never_unpickles_code_and_help_says_so() {
        assert!(SCRIPT.contains("weights_only=True"));
        assert!(!SCRIPT.contains("weights_only=False"));
        assert!(SCRIPT.contains("ALLOWED_GLOBALS = [argparse.Namespace]"));
        let mut cmd = <Args as clap::Args>::augment_args(clap::Command::new("import-torch"));
        let help = cmd.render_long_help().to_string();
        assert!(
            help.contains("weights_only=True") && help.contains("argparse.Namespace"),
            "{help}"
        );
    }
}
