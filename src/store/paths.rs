//! Paths a run folder or an index folder records (README "Moving runs and
//! indexes"): a path the user gave relative to the working directory is
//! recorded relative to the folder that records it, so the folder works from
//! any working directory and keeps working when it is moved together with
//! what it points to; a path the user gave as absolute stays absolute (a fixed
//! place, e.g. a shared data disk). Reading resolves a relative path against
//! the recording folder, falling back to the working directory for folders
//! written before paths were recorded this way.

use std::path::{Component, Path, PathBuf};

/// How `folder` records `target` (both as the user gave them, relative to the
/// working directory or absolute): `target` unchanged when it is absolute,
/// else the path from `folder` to `target` (e.g. `../data`), computed on the
/// canonical forms of both, which must exist. Falls back to the absolute form
/// of `target` when either cannot be canonicalised.
pub fn record(folder: &Path, target: &Path) -> PathBuf {
    if target.is_absolute() {
        return target.to_path_buf();
    }
    let absolute = || std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    let (Ok(from), Ok(to)) = (folder.canonicalize(), target.canonicalize()) else {
        return absolute();
    };
    relative(&from, &to).unwrap_or_else(absolute)
}

/// The path from directory `from` to `to`, both canonical; `None` when they
/// share no root (another drive).
fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return None;
    }
    let mut p: PathBuf = f[common..].iter().map(|_| Component::ParentDir).collect();
    p.extend(&t[common..]);
    if p.as_os_str().is_empty() {
        p.push(".");
    }
    Some(p)
}

/// Where a path `recorded` in `folder` points now: absolute as is; relative,
/// `folder/recorded` when that exists, else `recorded` itself when it exists
/// from the working directory (folders written before this rule recorded
/// paths as the user gave them), else `folder/recorded` (so an error names
/// the place the folder expects).
pub fn resolve(folder: &Path, recorded: &Path) -> PathBuf {
    if recorded.is_absolute() {
        return recorded.to_path_buf();
    }
    if recorded == Path::new(".") || recorded.as_os_str().is_empty() {
        return folder.to_path_buf();
    }
    let inside = folder.join(recorded);
    if !inside.exists() && recorded.exists() {
        return recorded.to_path_buf();
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_folders() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).unwrap();
        assert_eq!(
            r("/w/runs/oss", "/w/data/f30k"),
            Path::new("../../data/f30k")
        );
        assert_eq!(
            r("/w/runs", "/w/runs/oss/vocab.json"),
            Path::new("oss/vocab.json")
        );
        assert_eq!(r("/w/runs", "/w/runs"), Path::new("."));
        assert_eq!(r("/", "/data"), Path::new("data"));
    }

    /// A folder and the data it points to, moved together to another place,
    /// still resolve; an absolute path stays as given.
    #[test]
    fn recorded_paths_survive_a_move() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir_all(a.join("runs/oss")).unwrap();
        std::fs::create_dir_all(a.join("data/f30k")).unwrap();
        let rec = record(&a.join("runs/oss"), &a.join("data/f30k"));
        assert!(rec.is_absolute(), "absolute in, absolute out: {rec:?}");
        // Relative input (as from the command line): made relative to a's
        // canonical form through a relative path from the working directory.
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        let from_cwd = relative(&cwd, &a.canonicalize().unwrap()).unwrap();
        let rec = record(&a.join("runs/oss"), &from_cwd.join("data/f30k"));
        assert_eq!(rec, Path::new("../../data/f30k"));
        let b = tmp.path().join("b");
        std::fs::rename(&a, &b).unwrap();
        let now = resolve(&b.join("runs/oss"), &rec);
        assert!(now.is_dir(), "{now:?}");
        assert_eq!(
            now.canonicalize().unwrap(),
            b.join("data/f30k").canonicalize().unwrap()
        );
        assert_eq!(resolve(&b, Path::new(".")), b);
        assert_eq!(resolve(&b, Path::new("/x/y")), Path::new("/x/y"));
        // Missing both ways: the folder's own expectation is named.
        assert_eq!(resolve(&b, Path::new("nope/x")), b.join("nope/x"));
    }
}
