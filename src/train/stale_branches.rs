//! A fresh run never adopts what a killed run left (issue 25 §4): before a
//! fresh start (no checkpoint committed), `branch{k}` folders with k at or
//! beyond the new run's branch count are removed, so a run with fewer
//! branches than the killed one does not show phantom branches to `score`
//! and `report`. Branches below the count are reset by the trainer itself
//! (metrics logs trimmed, state fresh).

use std::path::Path;

/// Removes `out/branch{k}` for every k ≥ `branches`; → the folders removed.
pub fn remove_stale_branches(out: &Path, branches: usize) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(removed);
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let k = name
            .strip_prefix("branch")
            .filter(|k| !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|k| k.parse::<usize>().ok());
        if k.is_some_and(|k| k >= branches) && e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_beyond_the_count_go_and_the_rest_stay() {
        let tmp = tempfile::tempdir().unwrap();
        for d in [
            "branch0", "branch1", "branch2", "branch3", "branchx", "report",
        ] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
        }
        let gone = remove_stale_branches(tmp.path(), 2).unwrap();
        assert_eq!(gone, ["branch2", "branch3"]);
        for d in ["branch0", "branch1", "branchx", "report"] {
            assert!(tmp.path().join(d).is_dir(), "{d}");
        }
    }
}
