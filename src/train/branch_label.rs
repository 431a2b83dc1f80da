//! What each branch of a run is, in words, for legends and tables: the anchor
//! (branch 0), the DBL target (the last branch), intermediate OSS branches
//! (docs/method.md §4).

use crate::train::config::Regime;

/// Label of branch `k` of a run of `regime` with `n` branches.
pub fn branch_label(regime: Regime, k: usize, n: usize) -> String {
    match regime {
        Regime::Baseline => "baseline".into(),
        Regime::Oss if n == 1 => "baseline (branch 0)".into(),
        Regime::Oas if k == 0 => "anchor (stage 1)".into(),
        Regime::Oas => "target (stage 2)".into(),
        Regime::Mss if k == 0 => "EMA anchor (branch 0)".into(),
        _ if k == 0 => "anchor (branch 0)".into(),
        _ if k + 1 == n => format!("target (branch {k})"),
        _ => format!("branch {k}"),
    }
}

/// Short role of branch `k` (for table keys): `anchor`, `target` or `branch{k}`.
pub fn branch_role(regime: Regime, k: usize, n: usize) -> String {
    match regime {
        Regime::Baseline => "baseline".into(),
        Regime::Oss if n == 1 => "baseline".into(),
        _ if k == 0 => "anchor".into(),
        _ if k + 1 == n => "target".into(),
        _ => format!("branch{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_anchor_target_and_middle_branches() {
        assert_eq!(branch_label(Regime::Oss, 0, 3), "anchor (branch 0)");
        assert_eq!(branch_label(Regime::Oss, 1, 3), "branch 1");
        assert_eq!(branch_label(Regime::Oss, 2, 3), "target (branch 2)");
        assert_eq!(branch_label(Regime::Oas, 1, 2), "target (stage 2)");
        assert_eq!(branch_label(Regime::Mss, 0, 2), "EMA anchor (branch 0)");
        assert_eq!(branch_label(Regime::Baseline, 0, 1), "baseline");
        assert_eq!(branch_role(Regime::Oss, 1, 3), "branch1");
        assert_eq!(branch_role(Regime::Mss, 1, 2), "target");
    }
}
