//! `dbl report RUN`: draws each branch's training loss (per logged step) and
//! dev rSum (per evaluated epoch) from `RUN/branch{k}/metrics.jsonl` into
//! `RUN/report/{loss,rsum}.{png,svg}` ([`crate::plot::lines`]: title, axis
//! labels with units, legend naming each branch by its role).

use std::path::{Path, PathBuf};

use crate::plot::lines::{LineChart, Series};
use crate::train::branch_label::branch_label;
use crate::train::config::{Regime, TrainConfig};
use crate::train::metrics_log::read_records;

/// One curve: branch index, its legend label and (x, y) points.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Branch index.
    pub branch: usize,
    /// Legend label (e.g. "anchor (branch 0)").
    pub label: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// What `report` wrote.
#[derive(Debug, Clone)]
pub struct Report {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Loss curves (x = training step of the branch's stage, y = loss).
    pub loss: Vec<Curve>,
    /// Dev rSum curves (x = epoch of the branch's stage, y = rSum).
    pub rsum: Vec<Curve>,
}

/// Regime and branch count of `run` (from `config.json`; `None` if unreadable).
fn run_shape(run: &Path) -> Option<(Regime, usize)> {
    let cfg = TrainConfig::load_json(&run.join("config.json"), &[]).ok()?;
    Some((cfg.regime, cfg.n_branches()))
}

/// Reads the loss and dev-rSum curves of every `branch{k}` of `run`.
pub fn read_curves(run: &Path) -> Result<(Vec<Curve>, Vec<Curve>), String> {
    let mut loss = Vec::new();
    let mut rsum = Vec::new();
    let shape = run_shape(run);
    for k in 0.. {
        let path = run.join(format!("branch{k}")).join("metrics.jsonl");
        if !path.is_file() {
            if k == 0 {
                return Err(format!(
                    "{}: no metrics (is this a run folder?)",
                    path.display()
                ));
            }
            break;
        }
        let label = match shape {
            Some((regime, n)) => branch_label(regime, k, n),
            None => format!("branch {k}"),
        };
        let mut l = Vec::new();
        let mut r = Vec::new();
        for rec in &read_records(&path)? {
            let step = rec["step"].as_f64();
            let epoch = rec["epoch"].as_f64();
            match rec["kind"].as_str() {
                Some("step") => {
                    if let (Some(x), Some(y)) = (step, rec["loss"].as_f64()) {
                        l.push((x, y));
                    }
                }
                Some("eval") => {
                    if let (Some(e), Some(y)) = (epoch, rec["dev"]["rsum"].as_f64()) {
                        r.push((e + 1.0, y));
                    }
                }
                _ => {}
            }
        }
        loss.push(Curve {
            branch: k,
            label: label.clone(),
            points: l,
        });
        rsum.push(Curve {
            branch: k,
            label,
            points: r,
        });
    }
    Ok((loss, rsum))
}

/// The curves that have points, as chart series named by their labels.
pub fn series(curves: &[Curve]) -> Vec<Series> {
    curves
        .iter()
        .filter(|c| !c.points.is_empty())
        .map(|c| Series {
            name: c.label.clone(),
            points: c.points.clone(),
        })
        .collect()
}

/// Writes `RUN/report/{loss,rsum}.{png,svg}`.
pub fn report(run: &Path) -> Result<Report, String> {
    let (loss, rsum) = read_curves(run)?;
    let dir = run.join("report");
    let name = run
        .file_name()
        .map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into());
    let charts = [
        (
            "loss",
            LineChart {
                title: format!("{name}: training loss per branch"),
                x_label: "training step (of the branch's stage)".into(),
                y_label: "training loss (per step, as optimised)".into(),
                series: series(&loss),
                x_integer: true,
            },
        ),
        (
            "rsum",
            LineChart {
                title: format!("{name}: dev rSum per branch"),
                x_label: "epoch (of the branch's stage)".into(),
                y_label: "dev rSum (R@1+5+10 both ways, of 600)".into(),
                series: series(&rsum),
                x_integer: true,
            },
        ),
    ];
    let mut files = Vec::new();
    for (stem, chart) in charts {
        files.extend(chart.write(&dir.join(stem)).map_err(|e| e.to_string())?);
    }
    Ok(Report { files, loss, rsum })
}
