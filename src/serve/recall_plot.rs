//! Pictures of the two-stage recall trade-off (`dbl index recall --plot`):
//! one line chart per direction, R@1/5/10 of two-stage search against the
//! shortlist size K, next to the exact full ranking's R@1/5/10 drawn as flat
//! lines over the same K range.

use std::path::{Path, PathBuf};

use super::recall::{Recall, RecallRow};
use crate::plot::PlotError;
use crate::plot::lines::{LineChart, Series};

/// The chart of one direction (`t2i` or `i2t`) of `rows`; `what` names the
/// index in the title (e.g. "scan-ave, own-encoder HNSW shortlist").
fn chart(rows: &[RecallRow], dir: &str, what: &str) -> LineChart {
    let pick = |r: &RecallRow| if dir == "t2i" { r.t2i } else { r.i2t };
    let get = |r: Recall, at: usize| match at {
        1 => r.r1,
        5 => r.r5,
        _ => r.r10,
    };
    let staged: Vec<&RecallRow> = rows.iter().filter(|r| r.k.is_some()).collect();
    let exact = rows.iter().find(|r| r.k.is_none());
    let ks: Vec<f64> = staged
        .iter()
        .filter_map(|r| r.k)
        .map(|k| k as f64)
        .collect();
    let (k0, k1) = (
        ks.iter().copied().fold(f64::INFINITY, f64::min),
        ks.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let mut series = Vec::new();
    for at in [1, 5, 10] {
        series.push(Series {
            name: format!("two-stage R@{at}"),
            points: staged
                .iter()
                .map(|r| (r.k.unwrap_or(0) as f64, get(pick(r), at)))
                .collect(),
        });
    }
    if let Some(e) = exact.filter(|_| k0.is_finite()) {
        for at in [1, 5, 10] {
            let y = get(pick(e), at);
            series.push(Series {
                name: format!("exact R@{at}"),
                points: vec![(k0, y), (k1, y)],
            });
        }
    }
    let direction = if dir == "t2i" {
        "text → image"
    } else {
        "image → text"
    };
    LineChart {
        title: format!("Two-stage search vs exact ranking, {direction} ({what})"),
        x_label: "shortlist size K (candidates re-ranked)".into(),
        y_label: "recall (%)".into(),
        series,
        x_integer: true,
    }
}

/// Writes `stem_t2i.{png,svg}` and `stem_i2t.{png,svg}`; returns the paths.
pub fn write_recall_charts(
    rows: &[RecallRow],
    what: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    for dir in ["t2i", "i2t"] {
        let name = format!(
            "{}_{dir}",
            stem.file_name()
                .map_or("recall".into(), |s| s.to_string_lossy())
        );
        out.extend(chart(rows, dir, what).write(&stem.with_file_name(name))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png_drawn, svg_text};

    fn row(k: Option<usize>, base: f64) -> RecallRow {
        let r = Recall {
            r1: base,
            r5: base + 20.0,
            r10: base + 30.0,
        };
        RecallRow { k, t2i: r, i2t: r }
    }

    #[test]
    fn both_directions_carry_title_axes_and_legend() {
        let rows = vec![
            row(None, 50.0),
            row(Some(20), 40.0),
            row(Some(50), 45.0),
            row(Some(100), 49.0),
        ];
        let dir = tempfile::tempdir().unwrap();
        let paths = write_recall_charts(&rows, "test index", &dir.path().join("rec")).unwrap();
        assert_eq!(paths.len(), 4);
        for (dir_name, words) in [("t2i", "text → image"), ("i2t", "image → text")] {
            let svg = dir.path().join(format!("rec_{dir_name}.svg"));
            let text = svg_text(&svg).join(" ");
            for needle in [
                words,
                "shortlist size K",
                "recall (%)",
                "two-stage R@1",
                "two-stage R@10",
                "exact R@5",
            ] {
                assert!(text.contains(needle), "{needle:?} missing from {text}");
            }
            assert_png_drawn(&dir.path().join(format!("rec_{dir_name}.png")));
        }
    }
}
