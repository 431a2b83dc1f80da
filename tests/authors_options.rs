//! README "Coming from the authors' code": the table that maps every option
//! of the authors' `opts.py` (OSS, OAS, MSS), SGRAF's `opts.py` and VSE∞'s
//! `arguments.py` to dbl. Checks that the table lists every one of those
//! options, and that everything its dbl column names exists: a config key
//! (`loss.alpha`) is a key of the training configuration, a `key=value` (or
//! several, space-separated, given together) parses as `--set` overrides, a flag (`--data`) is a flag of `dbl train`, and
//! `dbl CMD --flag` is a flag of that command.

use std::process::Command;

use dbl::train::config::TrainConfig;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

/// The options each original parses (read from github.com/Paranioar/DBL
/// `{OSS,OAS,MSS}/opts.py`, Paranioar/SGRAF `opts.py`, woodfrog/vse_infty
/// `arguments.py`).
const AUTHORS: &[&str] = &[
    "data_path",
    "data_name",
    "vocab_path",
    "save_path",
    "gpuid",
    "batch_size",
    "num_epochs",
    "lr_update",
    "loss_name",
    "boost_name",
    "alpha",
    "beta",
    "num_branch",
    "if_boost_manner",
    "learning_rate",
    "workers",
    "log_step",
    "grad_clip",
    "margin",
    "max_violation",
    "img_dim",
    "word_dim",
    "embed_size",
    "sim_dim",
    "num_layers",
    "bi_gru",
    "no_imgnorm",
    "no_txtnorm",
    "no_simnorm",
    "resume",
    "if_boost",
    "val_step",
    "momentum_teacher",
];
const SGRAF: &[&str] = &["model_name", "logger_name", "module_name", "sgr_step"];
const VSE_INFTY: &[&str] = &[
    "optim",
    "precomp_enc_type",
    "backbone_path",
    "backbone_source",
    "vse_mean_warmup_epochs",
    "reset_start_epoch",
    "backbone_warmup_epochs",
    "embedding_warmup_epochs",
    "backbone_lr_factor",
    "input_scale_factor",
];

/// The table's rows: (option cell, dbl cell).
fn table() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Coming from the authors' code")
        .expect("README has the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let head = section
        .find("| option (code) | dbl | notes |")
        .expect("the option table");
    section[head..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_string(), cells[2].to_string())
        })
        .collect()
}

/// The `backticked` spans of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn help(cmd: &[&str]) -> String {
    let o = Command::new(BIN).args(cmd).arg("--help").output().unwrap();
    assert!(o.status.success(), "{cmd:?} --help");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether dotted `key` is a key of the training configuration (its default
/// serialised: every field, `null` for unset options).
fn is_key(defaults: &serde_json::Value, key: &str) -> bool {
    key.split('.')
        .try_fold(defaults, |v, part| v.get(part))
        .is_some()
}

#[test]
fn every_original_option_is_in_the_table() {
    let rows = table();
    assert!(rows.len() > 30, "{} rows", rows.len());
    let named: Vec<String> = rows.iter().flat_map(|(o, _)| code_spans(o)).collect();
    for opt in AUTHORS.iter().chain(SGRAF).chain(VSE_INFTY) {
        let flag = format!("--{opt}");
        assert!(
            named
                .iter()
                .any(|n| n == &flag || n.starts_with(&format!("{flag} "))),
            "README's table does not list {flag}"
        );
    }
}

#[test]
fn every_dbl_key_and_flag_the_table_names_exists() {
    let defaults = serde_json::to_value(TrainConfig::default()).unwrap();
    let train_help = help(&["train"]);
    let mut checked = 0;
    for (option, dbl) in table() {
        let spans = code_spans(&dbl);
        if dbl != "—" {
            assert!(!spans.is_empty(), "{option}: `{dbl}` names nothing");
        }
        for s in spans {
            if let Some(rest) = s.strip_prefix("dbl ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let (cmd, flags): (Vec<&str>, Vec<&str>) =
                    words.iter().partition(|w| !w.starts_with("--"));
                let h = help(&cmd);
                for f in flags {
                    assert!(
                        h.contains(f),
                        "{option}: `dbl {}` has no {f}",
                        cmd.join(" ")
                    );
                }
            } else if s.starts_with("--") {
                assert!(train_help.contains(&s), "{option}: `dbl train` has no {s}");
            } else if s.contains('=') {
                // One setting: its `key=value` overrides applied together.
                let o: Vec<String> = s.split_whitespace().map(String::from).collect();
                let cfg = TrainConfig::from_toml_str("", "README", &o);
                assert!(cfg.is_ok(), "{option}: `{s}`: {:?}", cfg.err());
            } else {
                assert!(is_key(&defaults, &s), "{option}: `{s}` is not a config key");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} names checked");
}

/// The checks can fail: a misspelt key, value or flag is caught.
#[test]
fn the_checks_catch_a_wrong_name() {
    let defaults = serde_json::to_value(TrainConfig::default()).unwrap();
    assert!(is_key(&defaults, "loss.peer.beta"));
    assert!(!is_key(&defaults, "loss.peer.betta"));
    assert!(!is_key(&defaults, "model.num_layers"));
    let peer = |form: &str| {
        let o = [
            "loss.peer.kind=boost".to_string(),
            format!("loss.peer.form={form}"),
        ];
        TrainConfig::from_toml_str("", "t", &o)
    };
    assert!(peer("absolute").is_ok());
    assert!(peer("absolut").is_err());
    assert!(TrainConfig::from_toml_str("", "t", &["lr_schedul=once".into()]).is_err());
    assert!(!help(&["train"]).contains("--gpuid"));
}
