//! `OUT/curves.{png,svg}`: every finished seed's dev rSum per epoch and
//! branch, one panel per seed ([`crate::plot::grid`]), from the seeds'
//! `branch{k}/metrics.jsonl` ([`crate::train::report::read_curves`]). The
//! summary's intervals say where the seeds ended; these say how they got
//! there (a target lagging its anchor, a branch collapsing after the warm-up).

use std::path::{Path, PathBuf};

use super::SweepError;
use super::run::seed_dir;
use crate::plot::grid::Grid;
use crate::plot::lines::LineChart;
use crate::train::report::{read_curves, series};

/// Panels per row of the picture.
const COLS: usize = 3;

/// Pixel size of one panel: smaller than a lone chart, so that a grid of
/// several stays a readable picture.
const PANEL: (u32, u32) = (640, 420);

/// One panel per seed of `seeds` under the sweep folder `out` (named `name`).
pub fn grid(name: &str, out: &Path, seeds: &[u64]) -> Result<Grid<LineChart>, SweepError> {
    let mut panels = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let dir = seed_dir(out, seed);
        let (_, rsum) = read_curves(&dir).map_err(|message| SweepError::Record {
            path: dir.clone(),
            message,
        })?;
        panels.push(LineChart {
            title: format!("{name}, seed {seed}"),
            x_label: "epoch (of the branch's stage)".into(),
            y_label: "dev rSum (of 600)".into(),
            series: series(&rsum),
            x_integer: true,
        });
    }
    Ok(Grid {
        panels,
        cols: COLS,
        panel: PANEL,
    })
}

/// Writes `OUT/curves.{png,svg}`; returns the paths.
pub fn write(name: &str, out: &Path, seeds: &[u64]) -> Result<Vec<PathBuf>, SweepError> {
    Ok(grid(name, out, seeds)?.write(&out.join("curves"))?)
}
