//! The typed training configuration (`dbl train --config run.toml`), with the
//! authors' defaults (docs/method.md §7) and one [`TrainConfig::validate`] that runs
//! before any work. Every key can be overridden by a dotted-path
//! `key=value` ([`apply_override`]) applied to the TOML table before it is
//! deserialised, so flags and files share one schema.
//!
//! ```toml
//! data = "data/f30k_precomp"
//! out = "runs/oss"
//! regime = "oss"          # baseline | oas | oss | mss
//! branches = 2
//! epochs = 40
//! [model]
//! backbone = "scan-ave"   # scan-ave (default) | vse | tiny
//! [loss]                  # crate::loss::LossConfig
//! margin = 0.2
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loss::LossConfig;
use crate::model::config::{Backbone, ModelConfig, VsePool};
use crate::store::paths::resolve;
use crate::train::schedule::LrSchedule;

/// Everything wrong with a configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {what}: {message}")]
    Parse { what: String, message: String },
    #[error("override `{spec}`: {message} (expected key=value, e.g. loss.margin=0.2)")]
    Override { spec: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The training regime (docs/method.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// One model, base loss only.
    Baseline,
    /// Offline asynchronous: stage 1 baseline, stage 2 target boosted by the frozen best stage-1 model.
    Oas,
    /// Online synchronous: K branches trained together, branch k boosted by branches < k.
    Oss,
    /// Momentum synchronous: the anchor is an EMA of the target.
    Mss,
}

impl Regime {
    /// Lower-case name, as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Regime::Baseline => "baseline",
            Regime::Oas => "oas",
            Regime::Oss => "oss",
            Regime::Mss => "mss",
        }
    }
}

/// Which backbone to build (see `crate::train::backbone_select`): a
/// registered [`Backbone`] (the table in `crate::model::registry`), or the
/// trainer's test-only `tiny`. Spelled as the backbone's name in configs and
/// on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BackboneName {
    /// A registered backbone.
    Net(Backbone),
    /// A tiny mean-pooling model for tests and smoke runs (not a paper backbone).
    Tiny,
}

impl BackboneName {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            BackboneName::Net(b) => b.name(),
            BackboneName::Tiny => "tiny",
        }
    }

    /// Every choice: the registered backbones in table order, then `tiny`.
    pub fn all() -> &'static [BackboneName] {
        static ALL: std::sync::OnceLock<Vec<BackboneName>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            Backbone::ALL
                .iter()
                .map(|&b| BackboneName::Net(b))
                .chain([BackboneName::Tiny])
                .collect()
        })
    }
}

impl TryFrom<String> for BackboneName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::all()
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::all().iter().map(|b| b.name()).collect();
                format!(
                    "unknown backbone `{s}`, expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl From<BackboneName> for String {
    fn from(b: BackboneName) -> String {
        b.name().to_owned()
    }
}

impl clap::ValueEnum for BackboneName {
    fn value_variants<'a>() -> &'a [Self] {
        Self::all()
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl Default for BackboneName {
    fn default() -> Self {
        BackboneName::Net(Backbone::default())
    }
}

/// The `[model]` section: the model layer's [`ModelConfig`] with the
/// trainer's backbone choice (a registered backbone or `tiny`). The sizes
/// the data decides (`vocab_size`, `img_dim`, `regions`) are normally left
/// out: the trainer reads them from the data ([`ModelConfig::with_data`]).
pub type ModelSection = ModelConfig<BackboneName>;

/// MSS options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MssConfig {
    /// Initial EMA momentum m0 of the cosine schedule (0.99995, the scripts' value).
    pub m0: f64,
}

impl Default for MssConfig {
    fn default() -> Self {
        MssConfig { m0: 0.99995 }
    }
}

/// OAS stage-2 options (stage 1 uses the top-level `epochs` / `lr_update`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OasConfig {
    /// Stage-2 epochs (30, the F30K script).
    pub epochs: usize,
    /// Stage-2 decay epoch; 0 = never decay (the F30K script's `--lr_update 0`,
    /// which crashes the authors' code; constant lr is its literal reading, docs/method.md §4.1).
    pub lr_update: usize,
    /// Caption augmentation (`<mask>` appended to the vocabulary; words masked,
    /// replaced or dropped) on the training batches of both OAS stages
    /// (true, as the authors' OAS code; docs/method.md §6.4).
    pub augment: bool,
    /// A frozen anchor given instead of trained: `RUN` or `RUN:BRANCH` (a
    /// run folder, e.g. written by `dbl import`; default branch: its last),
    /// its `best` checkpoint. Stage 1 is then skipped: branch 0 of the run
    /// holds these weights, and stage 2 warm-starts the target from them
    /// (none: stage 1 trains the anchor; docs/method.md §4.1).
    pub anchor: Option<String>,
}

impl Default for OasConfig {
    fn default() -> Self {
        OasConfig {
            epochs: 30,
            lr_update: 0,
            augment: true,
            anchor: None,
        }
    }
}

/// A training run's configuration. Defaults are the authors' F30K values (docs/method.md §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Dataset folder in the SCAN precomp layout (required).
    pub data: PathBuf,
    /// Vocabulary JSON (default `DATA/vocab.json`).
    pub vocab: Option<PathBuf>,
    /// Run folder: checkpoints, metrics, config (required).
    pub out: PathBuf,
    /// Backbone and its options.
    pub model: ModelSection,
    /// Training regime (oss).
    pub regime: Regime,
    /// K, number of OSS branches (2); ignored by the other regimes.
    pub branches: usize,
    /// Losses (crate::loss::LossConfig defaults).
    pub loss: LossConfig,
    /// Epochs (40; stage 1 for OAS).
    pub epochs: usize,
    /// Initial learning rate (2e-4).
    pub lr: f64,
    /// lr ×`lr_decay` every `lr_update` epochs (30); 0 = never.
    pub lr_update: usize,
    /// Step-decay factor (0.1).
    pub lr_decay: f64,
    /// When the rate decays: `"once"` at epoch `lr_update` or `"every"`
    /// multiple of it (both OAS stages included). Unset: the authors' choice
    /// for the regime, `once` for OSS, `every` otherwise ([`LrSchedule::authors`],
    /// docs/method.md §7).
    pub lr_schedule: Option<LrSchedule>,
    /// Training batch size (128).
    pub batch_size: usize,
    /// Maximum total gradient L2 norm per branch (2.0); 0 = no clipping.
    pub grad_clip: f64,
    /// MSS options.
    pub mss: MssConfig,
    /// OAS stage-2 options.
    pub oas: OasConfig,
    /// Sum over negatives (instead of the hardest) in the base triplet loss for
    /// the first N epochs of each stage, then the configured reduction (0 = off;
    /// VSE∞'s cure for the hardest-negative plateau). The boosting
    /// loss keeps its configured reduction throughout.
    pub warmup_sum_epochs: usize,
    /// Seed of initialisation, shuffling and dropout (0).
    pub seed: u64,
    /// Worker threads (0 = all cores). Results are reproducible for a fixed count.
    pub threads: usize,
    /// Cap on optimisation steps per epoch (none: the whole split).
    pub max_steps_per_epoch: Option<usize>,
    /// Evaluate on dev every N epochs (1); the last epoch is always evaluated.
    pub eval_every: usize,
    /// Write a step record to metrics.jsonl every N steps (10).
    pub log_every: usize,
    /// Early stopping: end a stage once no checkpointed branch has improved its
    /// best dev rSum for this many epochs (none: train every epoch).
    pub patience: Option<usize>,
    /// Stop (as if interrupted) after this many epochs of this invocation,
    /// leaving a resumable run; the schedules still use `epochs`.
    pub stop_after: Option<usize>,
    /// Score every branch on the `test` split at the end of each epoch after
    /// the first N of a stage (the burn-in), as `test` records in
    /// `branch{k}/metrics.jsonl` (none: never). Write-only: selection and
    /// patience read dev alone (docs/method.md §8, the selection-robust estimate).
    pub test_after_epoch: Option<usize>,
    /// Start every branch from these weights instead of a random
    /// initialisation: `RUN` or `RUN:BRANCH` (a run folder, e.g. written by
    /// `dbl import`; default branch: its last), its `best` checkpoint. The
    /// optimisers start fresh (`dbl train --init`).
    pub init: Option<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            vocab: None,
            out: PathBuf::new(),
            model: ModelSection::default(),
            regime: Regime::Oss,
            branches: 2,
            loss: LossConfig::default(),
            epochs: 40,
            lr: 2e-4,
            lr_update: 30,
            lr_decay: 0.1,
            lr_schedule: None,
            batch_size: 128,
            grad_clip: 2.0,
            mss: MssConfig::default(),
            oas: OasConfig::default(),
            warmup_sum_epochs: 0,
            seed: 0,
            threads: 0,
            max_steps_per_epoch: None,
            eval_every: 1,
            log_every: 10,
            patience: None,
            stop_after: None,
            test_after_epoch: None,
            init: None,
        }
    }
}

/// Sets `key` (dotted path, e.g. `loss.peer.form`) in `table` to `value`,
/// parsed as a TOML value (`0.2`, `true`, `"x"`, `[1, 2]`), or as a bare string
/// when it does not parse (`regime=oss`).
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), ConfigError> {
    let bad = |message: &str| ConfigError::Override {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = spec.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
        return Err(bad("empty key"));
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").ok_or_else(|| bad("no value"))?,
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| bad(&format!("`{p}` is not a table")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// `RUN` or `RUN:BRANCH` (`init`, `oas.anchor`) split into the run folder
/// and the branch (`None`: the run's last): a trailing `:K` with K all
/// digits names the branch.
pub fn run_source(s: &str) -> (PathBuf, Option<usize>) {
    match s.rsplit_once(':') {
        Some((run, k)) if !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()) => {
            (PathBuf::from(run), k.parse().ok())
        }
        _ => (PathBuf::from(s), None),
    }
}

/// vse-infty always pools with GPO (VSE∞'s own model): `model.vse_pool`
/// left out becomes "gpo", so that the run records what it runs; any other
/// value is refused.
fn infty_pool(table: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(model)) = table.get_mut("model") else {
        return Ok(());
    };
    if model.get("backbone").and_then(toml::Value::as_str) != Some(Backbone::VseInfty.name()) {
        return Ok(());
    }
    match model.get("vse_pool") {
        None => {
            model.insert("vse_pool".into(), toml::Value::String("gpo".into()));
            Ok(())
        }
        Some(toml::Value::String(p)) if p == "gpo" => Ok(()),
        Some(v) => Err(ConfigError::Invalid {
            key: "model.vse_pool",
            message: format!(
                "{v}: vse-infty always pools regions and words with GPO (VSE∞'s model); leave \
                 vse_pool out or set it to \"gpo\" (backbone \"vse\" takes \"mean\" and \"max\")"
            ),
        }),
    }
}

impl TrainConfig {
    /// The learning-rate schedule in force: `lr_schedule`, else the authors'
    /// for the regime.
    pub fn schedule(&self) -> LrSchedule {
        self.lr_schedule
            .unwrap_or_else(|| LrSchedule::authors(self.regime))
    }

    /// Parses TOML text (`what` names it in errors), applies `overrides` in
    /// order, deserialises (unknown keys are errors naming the key). Does not validate.
    pub fn from_toml_str(
        text: &str,
        what: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        infty_pool(&mut table)?;
        table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                what: what.to_string(),
                message: e.to_string().trim().to_string(),
            })
    }

    /// Reads a TOML file, applies overrides, deserialises. Does not validate.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string(), overrides)
    }

    /// Reads a run's `config.json` (for `--resume`), resolves its paths
    /// against the run folder ([`crate::store::paths::resolve`]), applies overrides.
    pub fn load_json(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |message: String| ConfigError::Parse {
            what: path.display().to_string(),
            message,
        };
        let mut cfg: TrainConfig = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
        if cfg.model.backbone == BackboneName::Net(Backbone::VseInfty) {
            // Recorded before vse-infty runs said "gpo" (they recorded the
            // unread default "mean"; every vse-infty run pooled with GPO).
            cfg.model.vse_pool = VsePool::Gpo;
        }
        // Paths are recorded relative to the run folder (train::run_config);
        // overrides (`--data` given again) stay relative to the working directory.
        let dir = path.parent().unwrap_or(Path::new("."));
        cfg.data = resolve(dir, &cfg.data);
        cfg.vocab = cfg.vocab.map(|v| resolve(dir, &v));
        cfg.out = resolve(dir, &cfg.out);
        let toml_text = toml::to_string(&cfg).map_err(|e| parse(e.to_string()))?;
        Self::from_toml_str(&toml_text, &path.display().to_string(), overrides)
    }

    /// The vocabulary path: `vocab`, or `DATA/vocab.json`.
    pub fn vocab_path(&self) -> PathBuf {
        self.vocab
            .clone()
            .unwrap_or_else(|| self.data.join("vocab.json"))
    }

    /// [`Self::init`] split into the run folder and the branch ([`run_source`]).
    pub fn init_source(&self) -> Option<(PathBuf, Option<usize>)> {
        self.init.as_deref().map(run_source)
    }

    /// The OAS caption augmentation, when this run uses it (`vocab_len` = V).
    pub fn caption_augment(
        &self,
        vocab_len: usize,
    ) -> Option<crate::data::augment::CaptionAugment> {
        (self.regime == Regime::Oas && self.oas.augment)
            .then(|| crate::data::augment::CaptionAugment::new(vocab_len))
    }

    /// Number of branches this regime trains and checkpoints: 1 (baseline),
    /// K (OSS), 2 (OAS: 0 = stage-1 anchor, 1 = target; MSS: 0 = EMA anchor, 1 = student).
    pub fn n_branches(&self) -> usize {
        match self.regime {
            Regime::Baseline => 1,
            Regime::Oss => self.branches,
            Regime::Oas | Regime::Mss => 2,
        }
    }

    /// Checks every key once, before any work; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv = |key, message: String| Err(ConfigError::Invalid { key, message });
        if self.data.as_os_str().is_empty() {
            return inv("data", "required: the dataset folder (--data DIR)".into());
        }
        if let Err(why) = crate::os_error::check_dir(&self.data) {
            return inv(
                "data",
                format!(
                    "{}: {why} (expected a folder in the SCAN precomp layout)",
                    self.data.display()
                ),
            );
        }
        let vocab = self.vocab_path();
        if let Err(why) = crate::os_error::check_file(&vocab) {
            return inv("vocab", format!("{}: {why}", vocab.display()));
        }
        if self.out.as_os_str().is_empty() {
            return inv("out", "required: the run folder (--out DIR)".into());
        }
        if let Err(e) = self.loss.validate() {
            return inv("loss", e.to_string());
        }
        if self.branches < 1 {
            return inv(
                "branches",
                format!("{} < 1: K needs at least one branch", self.branches),
            );
        }
        if self.epochs < 1 {
            return inv("epochs", "must be at least 1".into());
        }
        let max_threads = crate::train::resources::max_threads();
        if self.threads > max_threads {
            return inv(
                "threads",
                format!(
                    "{}: at most {max_threads} (4 x the cores here); more threads only stall \
                     the machine (0 = every core)",
                    self.threads
                ),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return inv("lr", format!("{}: expected a finite number > 0", self.lr));
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return inv(
                "lr_decay",
                format!("{}: expected a number in (0, 1]", self.lr_decay),
            );
        }
        if self.batch_size < 2 {
            return inv(
                "batch_size",
                format!(
                    "{}: a batch needs at least 2 pairs (negatives come from the batch)",
                    self.batch_size
                ),
            );
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return inv(
                "grad_clip",
                format!("{}: expected a finite number >= 0", self.grad_clip),
            );
        }
        if !(0.0..=1.0).contains(&self.mss.m0) {
            return inv(
                "mss.m0",
                format!("{}: expected a momentum in [0, 1]", self.mss.m0),
            );
        }
        if self.oas.anchor.is_some() && self.regime != Regime::Oas {
            return inv(
                "oas.anchor",
                format!(
                    "a given frozen anchor is an OAS run's (regime = \"oas\"), not {}'s",
                    self.regime.name()
                ),
            );
        }
        if self.oas.anchor.is_some() && self.init.is_some() {
            return inv(
                "oas.anchor",
                "give `init` or `oas.anchor`, not both: the OAS target starts from its anchor"
                    .into(),
            );
        }
        if self.regime == Regime::Oas && self.oas.epochs < 1 {
            return inv("oas.epochs", "must be at least 1".into());
        }
        if self.max_steps_per_epoch == Some(0) {
            return inv("max_steps_per_epoch", "must be at least 1 when set".into());
        }
        if self.eval_every < 1 {
            return inv("eval_every", "must be at least 1".into());
        }
        if self.log_every < 1 {
            return inv("log_every", "must be at least 1".into());
        }
        if self.patience == Some(0) {
            return inv("patience", "must be at least 1 when set".into());
        }
        if self.stop_after == Some(0) {
            return inv("stop_after", "must be at least 1 when set".into());
        }
        if let Err(e) = self.model.validate_choices() {
            return inv("model", e.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, String) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("vocab.json"), "{}").unwrap();
        let base = format!(
            "data = {}\nout = {}\n",
            toml::Value::String(tmp.path().display().to_string()),
            toml::Value::String(tmp.path().join("run").display().to_string())
        );
        (tmp, base)
    }

    fn err(text: &str, overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        match TrainConfig::from_toml_str(text, "test.toml", &o) {
            Err(e) => e.to_string(),
            Ok(c) => c.validate().expect_err("expected an error").to_string(),
        }
    }

    /// vse-infty records the pooling it runs (GPO), from a config that
    /// leaves `vse_pool` out and from a run recorded with the old default.
    #[test]
    fn vse_infty_records_gpo() {
        let (t, base) = setup();
        let o = ["model.backbone=\"vse-infty\"".to_string()];
        let c = TrainConfig::from_toml_str(&base, "t", &o).unwrap();
        c.validate().unwrap();
        assert_eq!(c.model.vse_pool, VsePool::Gpo);
        let vse = TrainConfig::from_toml_str(&base, "t", &["model.backbone=\"vse\"".into()]);
        assert_eq!(vse.unwrap().model.vse_pool, VsePool::Mean);
        let mut old = serde_json::to_value(&c).unwrap();
        old["model"]["vse_pool"] = "mean".into();
        let path = t.path().join("config.json");
        std::fs::write(&path, old.to_string()).unwrap();
        let back = TrainConfig::load_json(&path, &[]).unwrap();
        assert_eq!(back.model.vse_pool, VsePool::Gpo);
    }

    #[test]
    fn defaults_are_the_authors_and_valid() {
        let (_t, base) = setup();
        let c = TrainConfig::from_toml_str(&base, "t", &[]).unwrap();
        c.validate().unwrap();
        assert_eq!(
            (c.epochs, c.lr, c.lr_update, c.batch_size),
            (40, 2e-4, 30, 128)
        );
        assert_eq!((c.grad_clip, c.mss.m0, c.branches), (2.0, 0.99995, 2));
        assert_eq!(c.loss, LossConfig::default());
    }

    #[test]
    fn each_error_names_its_key() {
        let (_t, base) = setup();
        let cases: &[(&str, &[&str], &str)] = &[
            ("", &["epoch=3"], "epoch"),
            ("", &["loss.margin=-0.2"], "margin"),
            ("", &["branches=0"], "branches"),
            (
                "",
                &["loss.peer.kind=\"boost\"", "loss.peer.split=1.5"],
                "peer.split",
            ),
            ("", &["lr=0"], "`lr`"),
            ("", &["batch_size=1"], "batch_size"),
            ("", &["mss.m0=2"], "mss.m0"),
            ("", &["model.dropout=1"], "model.dropout"),
            ("", &["grad_clip=-1"], "grad_clip"),
            ("", &["patience=0"], "patience"),
            ("", &["data=\"/nonexistent/dbl\""], "`data`"),
            ("", &["vocab=\"/nonexistent/v.json\""], "`vocab`"),
            ("", &["regime=\"boost\""], "boost"),
            ("[model]\nbackbon = \"vse\"\n", &[], "backbon"),
            ("", &["model.smooth=0"], "model.smooth"),
            ("", &["model.embed=0"], "model.embed"),
            ("", &["model.backbone=\"nope\""], "unknown backbone `nope`"),
            ("", &["oas.anchor=\"runs/a\""], "oas.anchor"),
            (
                "",
                &["model.backbone=\"vse-infty\"", "model.vse_pool=\"mean\""],
                "model.vse_pool",
            ),
            (
                "",
                &["regime=oas", "oas.anchor=\"runs/a\"", "init=\"runs/b\""],
                "oas.anchor",
            ),
        ];
        for (extra, o, key) in cases {
            let e = err(&format!("{base}{extra}"), o);
            assert!(e.contains(key), "{o:?}: `{e}` does not name {key}");
        }
        let e = err("out = \"x\"\n", &[]);
        assert!(e.contains("`data`"), "{e}");
    }

    #[test]
    fn overrides_set_nested_keys() {
        let (_t, base) = setup();
        let c = TrainConfig::from_toml_str(
            &base,
            "t",
            &[
                "loss.peer.kind=boost".into(),
                "loss.peer.form=relative".into(),
                "regime=mss".into(),
                "max_steps_per_epoch=3".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.regime, Regime::Mss);
        assert_eq!(c.max_steps_per_epoch, Some(3));
        assert!(
            matches!(c.loss.peer, crate::loss::PeerLoss::Boost(b) if b.form == crate::loss::BoostForm::Relative)
        );
        let e = TrainConfig::from_toml_str(&base, "t", &["nokey".into()]).unwrap_err();
        assert!(e.to_string().contains("nokey"));
    }
}
