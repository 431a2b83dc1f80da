//! `dbl import CKPT... --out RUN`: the original codebases' checkpoints become
//! a complete run folder (`config.json` + checksummed checkpoint store), one
//! checkpoint per branch in branch order, usable by `dbl score`, `dbl index
//! build`, `dbl search`, `dbl serve` and as the OAS anchor of `dbl train`.
//!
//! Layouts (see `tools/import_torch.py`, which reads the pickles with
//! python3 + torch, `weights_only=True`): the DBL authors' OSS/MSS/OAS
//! checkpoints (one file per branch), SGRAF's `train.py` checkpoints (sgr,
//! saf) and VSE∞'s precomp checkpoints with the linear region encoder (the
//! GRU `rnn.` is renamed `cap_rnn.`). A `.safetensors` file already converted
//! by that script is taken as is (its options from `--options`), so no
//! Python is needed then.
//!
//! The backbone and sizes come from the tensors' names and shapes; the
//! checkpoint's own options (`opt`) must agree with them, and give the
//! dataset and vocabulary paths when those exist here; what cannot be read
//! is asked for by a flag (`--data`, `--vocab`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use crate::data::vocab::Vocab;
use crate::engine::param::Module;
use crate::infer::LoadedMatcher;
use crate::model::{Backbone, Model, ModelConfig, weights};
use crate::train::config::{BackboneName, ModelSection, Regime, TrainConfig};

/// Arguments of `dbl import`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Layouts: the DBL authors' {'model': state_dict, 'opt': ...} (OSS/MSS/OAS, one file \
                  per branch), SGRAF's and VSE∞'s {'model': [img_enc, txt_enc(, sim_enc)], 'opt': \
                  ...}. BatchNorm running statistics are kept as they are (used in eval mode; \
                  training from the run uses batch statistics, as the originals do). Reading \
                  .pth files needs python3 with torch >= 2.4 and safetensors; the file is read \
                  with torch.load(weights_only=True), never running code stored in it."
)]
pub struct Args {
    /// Checkpoints (`.pth` / `.pth.tar`, or `.safetensors` converted by
    /// tools/import_torch.py), one per branch, in branch order.
    #[arg(required = true, value_name = "CKPT")]
    pub checkpoints: Vec<PathBuf>,
    /// The run folder to write (must not exist or be empty).
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
    /// Dataset folder (SCAN precomp layout). Default: the checkpoint's
    /// `data_path`/`data_name` when that folder exists here.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Vocabulary JSON. Default: the checkpoint's
    /// `vocab_path`/`{data_name}_vocab.json` when it exists here, else DIR/vocab.json.
    #[arg(long, value_name = "FILE")]
    pub vocab: Option<PathBuf>,
    /// What a pre-converted `.safetensors` checkpoint says about itself (the
    /// JSON tools/import_torch.py writes as its third argument).
    #[arg(long, value_name = "JSON")]
    pub options: Option<PathBuf>,
    /// Python interpreter with `torch` and `safetensors` (for `.pth` files).
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// One converted checkpoint.
struct Converted {
    /// The file given.
    path: PathBuf,
    /// Its safetensors bytes (dbl names, BatchNorm running statistics kept).
    bytes: Vec<u8>,
    /// Its `opt` options (empty when it has none).
    opt: Map<String, Value>,
    /// Epochs it was trained for (0 when unknown).
    epoch: usize,
}

fn read_options(path: &Path) -> anyhow::Result<(Map<String, Value>, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let opt = match v.get("opt") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => bail!("{}: `opt` must be an object", path.display()),
    };
    let epoch = v.get("epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
    Ok((opt, epoch))
}

fn convert(args: &Args, path: &Path) -> anyhow::Result<Converted> {
    let is_st = path.extension().is_some_and(|e| e == "safetensors");
    let (bytes, (opt, epoch)) = if is_st {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let about = match &args.options {
            Some(o) => read_options(o)?,
            None => (Map::new(), 0),
        };
        (bytes, about)
    } else {
        let dir = crate::cli::import_torch::tempfile_dir()?;
        let (st, js) = (dir.join("w.safetensors"), dir.join("about.json"));
        let done =
            crate::cli::import_torch::convert_with_python(&args.python, path, &st, Some(&js))
                .and_then(|()| Ok((std::fs::read(&st)?, read_options(&js)?)));
        let _ = std::fs::remove_dir_all(&dir);
        done?
    };
    Ok(Converted {
        path: path.to_path_buf(),
        bytes,
        opt,
        epoch,
    })
}

/// The option `key` as an unsigned integer, if present.
fn opt_usize(opt: &Map<String, Value>, key: &str) -> Option<usize> {
    opt.get(key).and_then(Value::as_u64).map(|v| v as usize)
}

/// The backbone and sizes of `c`: from its tensors, checked against its options.
fn config_of(c: &Converted) -> anyhow::Result<ModelConfig> {
    let p = c.path.display();
    let st = safetensors::SafeTensors::deserialize(&c.bytes)
        .with_context(|| format!("{p}: not a valid converted checkpoint"))?;
    // VSE∞'s image encoder choice: 'basic' (the region MLP: vse-infty) is
    // the one for region features.
    if let Some(t) = c.opt.get("precomp_enc_type") {
        let mlp = st.names().iter().any(|n| n.starts_with("img_enc.mlp."));
        match t.as_str() {
            Some("basic") if mlp => {}
            Some("basic") => bail!(
                "{p}: its options say precomp_enc_type = basic, but it has no region MLP \
                 (img_enc.mlp.*)"
            ),
            _ => bail!(
                "{p}: precomp_enc_type = {t} is not importable: dbl reads VSE∞'s precomp \
                 checkpoints with precomp_enc_type \"basic\" (backbone vse-infty); \"backbone\" \
                 encodes raw images with a ResNet, and dbl reads region features"
            ),
        }
    }
    let cfg = crate::cli::import_torch::infer_config(&c.bytes, &c.path)?;
    let mut checks = vec![
        ("vocab_size", cfg.vocab_size),
        ("embed_size", cfg.embed),
        ("word_dim", cfg.word_dim),
        ("img_dim", cfg.img_dim),
    ];
    // `sim_dim` sizes a similarity head (`sim_enc.*`); embedding models have none.
    if st.names().iter().any(|n| n.starts_with("sim_enc.")) {
        checks.push(("sim_dim", cfg.sim_dim));
    }
    for (key, ours) in checks {
        if let Some(said) = opt_usize(&c.opt, key)
            && said != ours
        {
            bail!("{p}: its options say {key} = {said}, but its tensors imply {ours}");
        }
    }
    if let Some(m) = c.opt.get("module_name").and_then(Value::as_str) {
        let want = match cfg.backbone {
            Backbone::Sgr => "SGR",
            Backbone::Saf => "SAF",
            _ => m,
        };
        if m != want {
            bail!(
                "{p}: its options say module_name = {m}, but its tensors are a {} head",
                cfg.backbone.name()
            );
        }
    }
    Ok(cfg)
}

/// `opt[dir_key]/opt[file]` when that exists here.
fn from_options(opt: &Map<String, Value>, dir_key: &str, file: &str) -> Option<PathBuf> {
    let dir = opt.get(dir_key)?.as_str()?;
    let p = Path::new(dir).join(file);
    p.exists().then_some(p)
}

/// Builds the model `cfg` describes and loads `c`'s weights into it (errors
/// name the missing, extra or misshapen tensor).
fn load(cfg: &ModelConfig, c: &Converted) -> anyhow::Result<Model> {
    let mut model = Model::new(cfg, 0).context("model sizes")?;
    weights::load_bytes(&mut model, &c.bytes, &c.path)?;
    Ok(model)
}

/// Runs `dbl import`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::out_path::dir("--out", &args.out)?;
    for p in &args.checkpoints {
        crate::os_error::check_file(p).map_err(|w| anyhow::anyhow!("{}: {w}", p.display()))?;
    }
    let converted = args
        .checkpoints
        .iter()
        .map(|p| convert(&args, p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = config_of(&converted[0])?;
    let mut branches = Vec::with_capacity(converted.len());
    for c in &converted {
        let other = config_of(c)?;
        if other != cfg {
            bail!(
                "{} and {} are different networks ({other:?} vs {cfg:?}); a run's branches share one",
                c.path.display(),
                converted[0].path.display()
            );
        }
        branches.push((load(&cfg, c)?, c.epoch));
    }
    let opt = &converted[0].opt;
    let data_name = opt.get("data_name").and_then(Value::as_str).unwrap_or("");
    let data = match &args.data {
        Some(d) => d.clone(),
        None => from_options(opt, "data_path", data_name).with_context(|| {
            format!(
                "{}: pass --data DIR (the dataset folder; the checkpoint's options name {:?}, \
                 which is not a folder here)",
                converted[0].path.display(),
                Path::new(opt.get("data_path").and_then(Value::as_str).unwrap_or(""))
                    .join(data_name)
            )
        })?,
    };
    let vocab = args
        .vocab
        .clone()
        .or_else(|| from_options(opt, "vocab_path", &format!("{data_name}_vocab.json")));
    let run = TrainConfig {
        data,
        vocab,
        out: args.out.clone(),
        // The data's sizes stay unrecorded, as `dbl train` records them:
        // inference reads them from the weights.
        model: ModelSection {
            vocab_size: 0,
            img_dim: 0,
            regions: 0,
            ..cfg.clone().with_backbone(BackboneName::Net(cfg.backbone))
        },
        regime: if branches.len() == 1 {
            Regime::Baseline
        } else {
            Regime::Oss
        },
        branches: branches.len(),
        ..TrainConfig::default()
    };
    run.validate()
        .with_context(|| format!("the run config for {}", args.out.display()))?;
    let words = Vocab::load(run.vocab_path())?.len();
    if words != cfg.vocab_size {
        bail!(
            "the vocabulary {} has {words} words but the checkpoint's word embedding has {} rows; \
             pass --vocab with the vocabulary it was trained with",
            run.vocab_path().display(),
            cfg.vocab_size
        );
    }
    crate::train::run_store::write_imported_run(&run, &branches)?;
    // The run must load as every command reads it.
    let m = LoadedMatcher::from_run(&args.out, None, "best")
        .with_context(|| format!("reading back {}", args.out.display()))?;
    println!(
        "imported {} branch(es) into {}: {} (V = {}, d = {}, word dim {}, img dim {}), {} parameters each",
        branches.len(),
        args.out.display(),
        cfg.backbone.name(),
        m.config().vocab_size,
        cfg.embed,
        cfg.word_dim,
        cfg.img_dim,
        crate::cli::model::thousands(branches[0].0.num_params())
    );
    Ok(())
}
