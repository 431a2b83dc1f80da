//! The run's checkpoint store: generation-numbered folders and one manifest,
//! so that a whole cohort's checkpoint (every branch's weights, Adam state,
//! RNG and epoch) is committed as one atomic unit.
//!
//! ```text
//! RUN/checkpoints/MANIFEST.json            the only pointer (replaced by one rename)
//! RUN/checkpoints/g000007/branch{k}/       model.safetensors, optim.safetensors (absent
//!                                          for the MSS EMA anchor), state.json
//! ```
//!
//! The manifest names, per branch, the folder of its `last` and `best`
//! checkpoints (a `best` is the `last` of the generation where it improved,
//! so it is never written twice), the SHA-256 and size of every file those
//! folders hold (verified on every load: a flipped byte is an error naming
//! the file, never silently different weights), and the length of each
//! branch's `metrics.jsonl` at that instant (a resume trims the log back to
//! it, so a crash mid-epoch leaves no duplicate records).
//!
//! Commit protocol ([`Store::commit`]), one *filesystem step* per line:
//! 1. remove a stale `g{N+1}` left by an earlier crashed commit (unreferenced);
//! 2. for each branch: create `g{N+1}/branch{k}`; write each file (first half,
//!    then the rest + fsync: two steps, so a crash can tear a file); fsync the folder;
//! 3. fsync `g{N+1}`; write `MANIFEST.json.tmp` (two steps as above);
//! 4. rename it over `MANIFEST.json` — the commit point — and fsync `checkpoints/`;
//! 5. remove every folder the new manifest does not reference.
//!
//! Nothing the current manifest references is touched before step 4, and
//! after it the new manifest references only complete, synced folders, so
//! after a crash at any step — and after any sequence of such crashes — one
//! complete, consistent checkpoint exists (or none, before the first commit).
//! Leftovers are unreferenced and removed by the next commit.
//!
//! [`paths`]: how a run or index folder records the paths it depends on
//! (relative to itself, so that it can move).
//!
//! Test hooks: `DBL_TEST_CRASH_AT=N` aborts the process just before the N-th
//! filesystem step of this process's commits (counted from 1 across commits);
//! [`Store::fail_at`] makes the N-th step return [`CheckpointError::Injected`]
//! instead, for in-process tests.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod files;
pub mod paths;

pub use files::{CheckpointError, write_atomic};
pub(crate) use files::{format_err, io, sync_dir};

use crate::engine::param::Module;
use crate::model::weights;

/// Format version written into the manifest.
const FORMAT: u32 = 1;
/// The manifest's file name inside `RUN/checkpoints`.
pub const MANIFEST: &str = "MANIFEST.json";
/// Test hook: abort before this filesystem step (see the module doc).
pub const CRASH_ENV: &str = "DBL_TEST_CRASH_AT";

/// Which of a branch's two checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// The end of the latest completed epoch (what `--resume` continues).
    Last,
    /// The epoch with the best dev rSum.
    Best,
}

impl Tag {
    /// `"last"` / `"best"`.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Last => "last",
            Tag::Best => "best",
        }
    }

    /// Parses `"last"` / `"best"`.
    pub fn parse(s: &str) -> Result<Tag, CheckpointError> {
        match s {
            "last" => Ok(Tag::Last),
            "best" => Ok(Tag::Best),
            other => Err(format_err(
                Path::new(other),
                "checkpoint tag must be `best` or `last`",
            )),
        }
    }
}

/// Where one branch's checkpoints live (paths relative to `RUN/checkpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchEntry {
    /// Folder of the `last` checkpoint.
    pub last: Option<String>,
    /// Folder of the `best` checkpoint.
    pub best: Option<String>,
}

/// Size and SHA-256 of one checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// `RUN/checkpoints/MANIFEST.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Generation of the latest commit (its folder is `g{generation:06}`).
    pub generation: u64,
    /// Per branch index.
    pub branches: BTreeMap<usize, BranchEntry>,
    /// Every referenced file (`g000007/branch0/model.safetensors`) → its sum.
    pub files: BTreeMap<String, FileSum>,
    /// Length of `RUN/branch{k}/metrics.jsonl` at the commit.
    pub metrics_len: BTreeMap<usize, u64>,
}

/// One branch's files for a commit.
#[derive(Debug, Clone)]
pub struct BranchSave {
    /// Branch index.
    pub k: usize,
    /// (file name, contents).
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// Whether this checkpoint also becomes the branch's `best`.
    pub best: bool,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// SHA-256 of everything `r` yields, read in 1 MiB blocks: (bytes, lower-case hex).
pub fn sha256_reader(mut r: impl std::io::Read) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            return Ok((n, to_hex(&h.finalize())));
        }
        h.update(&buf[..got]);
        n += got as u64;
    }
}

fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for `g` + 6+ digits (a generation folder name).
fn is_generation(name: &str) -> bool {
    name.len() >= 7 && name.starts_with('g') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// True for a manifest folder reference `gNNNNNN/branchK` (no other form is trusted).
fn valid_ref(r: &str) -> bool {
    let mut it = r.split('/');
    match (it.next(), it.next(), it.next()) {
        (Some(g), Some(b), None) => {
            is_generation(g)
                && b.strip_prefix("branch")
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()))
        }
        _ => false,
    }
}

fn generation_dir(n: u64) -> String {
    format!("g{n:06}")
}

/// The checkpoint store of one run folder.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    manifest: Manifest,
    steps: usize,
    abort_at: Option<usize>,
    /// Test hook: the N-th filesystem step fails with [`CheckpointError::Injected`].
    pub fail_at: Option<usize>,
}

impl Store {
    /// Opens `run`'s store: reads and checks the manifest if there is one.
    /// A run folder in the layout of dbl before the manifest is refused
    /// with a message saying so.
    pub fn open(run: &Path) -> Result<Store, CheckpointError> {
        let root = run.join("checkpoints");
        let mpath = root.join(MANIFEST);
        let manifest = match fs::read(&mpath) {
            Ok(bytes) => parse_manifest(&mpath, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = run.join("branch0/last");
                let mut old = legacy.as_os_str().to_owned();
                old.push(".old");
                if legacy.exists() || Path::new(&old).exists() {
                    return Err(CheckpointError::Legacy {
                        path: run.to_path_buf(),
                    });
                }
                Manifest {
                    format: FORMAT,
                    ..Manifest::default()
                }
            }
            Err(e) => return Err(io(&mpath)(e)),
        };
        let abort_at = std::env::var(CRASH_ENV).ok().and_then(|v| v.parse().ok());
        Ok(Store {
            root,
            manifest,
            steps: 0,
            abort_at,
            fail_at: None,
        })
    }

    /// The committed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// True once a checkpoint has been committed.
    pub fn has_checkpoint(&self) -> bool {
        !self.manifest.branches.is_empty()
    }

    /// Folder of branch `k`'s `tag` checkpoint, if committed.
    pub fn dir(&self, k: usize, tag: Tag) -> Option<PathBuf> {
        let e = self.manifest.branches.get(&k)?;
        let r = match tag {
            Tag::Last => e.last.as_ref(),
            Tag::Best => e.best.as_ref(),
        }?;
        Some(self.root.join(r))
    }

    /// True when branch `k` has a `tag` checkpoint.
    pub fn has(&self, k: usize, tag: Tag) -> bool {
        self.dir(k, tag).is_some()
    }

    /// Whether branch `k`'s `tag` checkpoint includes `file`.
    pub fn has_file(&self, k: usize, tag: Tag, file: &str) -> bool {
        self.rel(k, tag, file)
            .is_some_and(|r| self.manifest.files.contains_key(&r))
    }

    fn rel(&self, k: usize, tag: Tag, file: &str) -> Option<String> {
        let e = self.manifest.branches.get(&k)?;
        let r = match tag {
            Tag::Last => e.last.as_ref(),
            Tag::Best => e.best.as_ref(),
        }?;
        Some(format!("{r}/{file}"))
    }

    /// Reads `file` of branch `k`'s `tag` checkpoint and checks its size and
    /// SHA-256 against the manifest: → (path, bytes).
    pub fn read(
        &self,
        k: usize,
        tag: Tag,
        file: &str,
    ) -> Result<(PathBuf, Vec<u8>), CheckpointError> {
        let rel = self
            .rel(k, tag, file)
            .ok_or_else(|| CheckpointError::Missing {
                path: self.root.join(MANIFEST),
                what: format!("branch {k} has no `{}` checkpoint", tag.name()),
            })?;
        let path = self.root.join(&rel);
        let sum = self
            .manifest
            .files
            .get(&rel)
            .ok_or_else(|| CheckpointError::Missing {
                path: self.root.join(MANIFEST),
                what: format!("no checksum recorded for {rel}"),
            })?;
        let bytes = fs::read(&path).map_err(io(&path))?;
        let found = sha256_hex(&bytes);
        if bytes.len() as u64 != sum.bytes || found != sum.sha256 {
            return Err(CheckpointError::Corrupt {
                path,
                expected: format!("{} bytes, sha256 {}", sum.bytes, sum.sha256),
                found: format!("{} bytes, sha256 {found}", bytes.len()),
            });
        }
        Ok((path, bytes))
    }

    fn step(&mut self, what: &str) -> Result<(), CheckpointError> {
        self.steps += 1;
        if self.abort_at == Some(self.steps) {
            eprintln!("{CRASH_ENV}={}: aborting before: {what}", self.steps);
            std::process::abort();
        }
        if self.fail_at == Some(self.steps) {
            return Err(CheckpointError::Injected {
                step: self.steps,
                what: what.to_string(),
            });
        }
        Ok(())
    }

    /// Writes `bytes` to `path` in two steps (half, then the rest + fsync).
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
        let half = bytes.len() / 2;
        self.step(&format!("write first half of {}", path.display()))?;
        let mut f = File::create(path).map_err(io(path))?;
        f.write_all(&bytes[..half]).map_err(io(path))?;
        self.step(&format!("write rest of {} and fsync", path.display()))?;
        f.write_all(&bytes[half..]).map_err(io(path))?;
        f.sync_all().map_err(io(path))
    }

    fn remove_dir(&mut self, path: &Path) -> Result<(), CheckpointError> {
        self.step(&format!("remove {}", path.display()))?;
        fs::remove_dir_all(path).map_err(io(path))
    }

    /// Commits one generation: every branch in `saves` gets a new `last`
    /// (and `best` where flagged); other branches keep theirs. `metrics_len`
    /// records each listed branch's log length. Atomic (see the module doc).
    pub fn commit(
        &mut self,
        saves: &[BranchSave],
        metrics_len: &[(usize, u64)],
    ) -> Result<(), CheckpointError> {
        let gen_n = self.manifest.generation + 1;
        let gname = generation_dir(gen_n);
        let gdir = self.root.join(&gname);
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        if fs::symlink_metadata(&gdir).is_ok() {
            self.remove_dir(&gdir)?;
        }
        let mut next = self.manifest.clone();
        next.format = FORMAT;
        next.generation = gen_n;
        for s in saves {
            let rel_dir = format!("{gname}/branch{}", s.k);
            let dir = self.root.join(&rel_dir);
            self.step(&format!("create {}", dir.display()))?;
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (name, bytes) in &s.files {
                self.write_file(&dir.join(name), bytes)?;
                next.files.insert(
                    format!("{rel_dir}/{name}"),
                    FileSum {
                        bytes: bytes.len() as u64,
                        sha256: sha256_hex(bytes),
                    },
                );
            }
            self.step(&format!("fsync {}", dir.display()))?;
            sync_dir(&dir)?;
            let e = next.branches.entry(s.k).or_default();
            e.last = Some(rel_dir.clone());
            if s.best {
                e.best = Some(rel_dir);
            }
        }
        for &(k, len) in metrics_len {
            next.metrics_len.insert(k, len);
        }
        let referenced: Vec<&String> = next
            .branches
            .values()
            .flat_map(|e| e.last.iter().chain(e.best.iter()))
            .collect();
        next.files
            .retain(|f, _| referenced.iter().any(|r| f.starts_with(&format!("{r}/"))));
        self.step(&format!("fsync {}", gdir.display()))?;
        sync_dir(&gdir)?;
        let mpath = self.root.join(MANIFEST);
        let tmp = self.root.join(format!("{MANIFEST}.tmp"));
        let json =
            serde_json::to_vec_pretty(&next).map_err(|e| format_err(&mpath, e.to_string()))?;
        self.write_file(&tmp, &json)?;
        self.step(&format!("rename {} to {}", tmp.display(), mpath.display()))?;
        fs::rename(&tmp, &mpath).map_err(io(&mpath))?;
        self.manifest = next;
        self.step(&format!("fsync {}", self.root.display()))?;
        sync_dir(&self.root)?;
        self.collect_garbage()
    }

    /// Removes everything under `RUN/checkpoints` the manifest does not reference.
    fn collect_garbage(&mut self) -> Result<(), CheckpointError> {
        let keep: Vec<String> = self
            .manifest
            .branches
            .values()
            .flat_map(|e| e.last.iter().chain(e.best.iter()))
            .filter_map(|r| r.split('/').next().map(str::to_string))
            .collect();
        let entries = fs::read_dir(&self.root).map_err(io(&self.root))?;
        let mut stale = Vec::new();
        for e in entries {
            let e = e.map_err(io(&self.root))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_generation(&name) && !keep.contains(&name) {
                stale.push(e.path());
            }
        }
        stale.sort();
        for p in stale {
            self.remove_dir(&p)?;
        }
        Ok(())
    }

    /// Trims each `RUN/branch{k}/metrics.jsonl` back to its length at the
    /// committed checkpoint (to nothing before the first commit), so records
    /// written after the checkpoint a resume continues from are not repeated.
    pub fn trim_metrics(&self, run: &Path) -> Result<(), CheckpointError> {
        let Ok(entries) = fs::read_dir(run) else {
            return Ok(());
        };
        for e in entries {
            let e = e.map_err(io(run))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(k) = name
                .strip_prefix("branch")
                .and_then(|k| k.parse::<usize>().ok())
            else {
                continue;
            };
            let log = e.path().join("metrics.jsonl");
            let Ok(meta) = fs::metadata(&log) else {
                continue;
            };
            let keep = self.manifest.metrics_len.get(&k).copied().unwrap_or(0);
            if meta.len() > keep {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .map_err(io(&log))?;
                f.set_len(keep).map_err(io(&log))?;
                f.sync_all().map_err(io(&log))?;
            }
        }
        Ok(())
    }
}

/// Parses and checks a manifest: known format, only `gNNNNNN/branchK`
/// references, a checksum for every referenced file's folder.
fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, CheckpointError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format_err(path, e.to_string()))?;
    if m.format != FORMAT {
        return Err(format_err(
            path,
            format!("format {} (this dbl reads format {FORMAT})", m.format),
        ));
    }
    for (k, e) in &m.branches {
        for r in e.last.iter().chain(e.best.iter()) {
            if !valid_ref(r) {
                return Err(format_err(
                    path,
                    format!("branch {k}: folder {r:?} is not of the form gNNNNNN/branchK"),
                ));
            }
            if !m.files.keys().any(|f| f.starts_with(&format!("{r}/"))) {
                return Err(format_err(
                    path,
                    format!("branch {k}: no file of {r} has a checksum"),
                ));
            }
        }
    }
    Ok(m)
}

/// Loads only the weights of branch `k`'s `tag` checkpoint into `model`.
pub fn load_weights<M: Module>(
    store: &Store,
    k: usize,
    tag: Tag,
    model: &mut M,
) -> Result<(), CheckpointError> {
    let (mpath, mbytes) = store.read(k, tag, "model.safetensors")?;
    Ok(weights::load_bytes(model, &mbytes, &mpath)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(k: usize, tag: &str, best: bool) -> BranchSave {
        BranchSave {
            k,
            files: vec![
                ("model.safetensors", format!("model {k} {tag}").into_bytes()),
                (
                    "state.json",
                    format!("{{\"k\":{k},\"tag\":\"{tag}\"}}").into_bytes(),
                ),
            ],
            best,
        }
    }

    /// What a reader sees: for each branch, its last and best model bytes,
    /// all verified. Any error (torn or missing files) fails the caller.
    /// Per branch: (last model bytes, best model bytes).
    type Snapshot = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn snapshot(run: &Path) -> Result<Snapshot, CheckpointError> {
        let s = Store::open(run)?;
        let mut out = Vec::new();
        for &k in s.manifest().branches.keys() {
            let last = s.read(k, Tag::Last, "model.safetensors")?.1;
            s.read(k, Tag::Last, "state.json")?;
            let best = if s.has(k, Tag::Best) {
                Some(s.read(k, Tag::Best, "model.safetensors")?.1)
            } else {
                None
            };
            out.push((last, best));
        }
        Ok(out)
    }

    fn commit(run: &Path, epoch: usize, fail_at: Option<usize>) -> Result<usize, CheckpointError> {
        let mut s = Store::open(run)?;
        s.fail_at = fail_at;
        let e = format!("e{epoch}");
        s.commit(
            &[save(0, &e, epoch % 2 == 1), save(1, &e, epoch == 1)],
            &[(0, 10 * epoch as u64), (1, 0)],
        )?;
        Ok(s.steps)
    }

    /// Every pair of crash points (first commit crashes at step i, the retry
    /// at step j), then a clean commit: after each crash the store reads as
    /// exactly the previous complete cohort (both branches of one epoch),
    /// every file verifies, and the clean commit lands.
    #[test]
    fn any_sequence_of_crashes_keeps_one_complete_cohort() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        commit(&base, 1, None).unwrap();
        let before = snapshot(&base).unwrap();
        let probe = tmp.path().join("probe");
        copy_dir(&base, &probe);
        let steps = commit(&probe, 2, None).unwrap();
        assert!(steps >= 12, "{steps} steps");
        let after = snapshot(&probe).unwrap();
        assert_ne!(before, after);
        for i in 1..=steps {
            // The second crash: at the first steps, the same step, the next, the last ones
            // (every pair takes minutes of fsyncs; these cover each kind of leftover).
            let mut second = vec![1, 2, i, i + 1, steps - 1, steps];
            second.dedup();
            for j in second {
                let run = tmp.path().join(format!("r{i}_{j}"));
                copy_dir(&base, &run);
                let e = commit(&run, 2, Some(i)).unwrap_err();
                assert!(matches!(e, CheckpointError::Injected { .. }), "{e}");
                let seen = snapshot(&run).unwrap();
                assert!(seen == before || seen == after, "crash at {i}");
                let second = commit(&run, 2, Some(j));
                let seen = snapshot(&run).unwrap();
                assert!(seen == before || seen == after, "crash at {i} then {j}");
                if second.is_ok() {
                    assert_eq!(seen, after);
                }
                commit(&run, 2, None).unwrap();
                assert_eq!(snapshot(&run).unwrap(), after, "{i} then {j} then clean");
                // Nothing unreferenced is left behind by the clean commit.
                let names: Vec<String> = fs::read_dir(run.join("checkpoints"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert!(
                    names.iter().all(|n| n == MANIFEST || n.starts_with('g')),
                    "{names:?}"
                );
                let s = Store::open(&run).unwrap();
                assert!(names.len() <= 3, "{names:?}");
                assert_eq!(s.manifest().metrics_len[&0], 20);
                fs::remove_dir_all(&run).unwrap();
            }
        }
    }

    /// One flipped byte in a referenced file is refused, naming the file.
    #[test]
    fn corruption_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        commit(tmp.path(), 1, None).unwrap();
        let s = Store::open(tmp.path()).unwrap();
        let p = s.dir(1, Tag::Last).unwrap().join("model.safetensors");
        let mut b = fs::read(&p).unwrap();
        b[3] ^= 0x10;
        fs::write(&p, &b).unwrap();
        let e = s.read(1, Tag::Last, "model.safetensors").unwrap_err();
        assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e}");
        assert!(
            e.to_string().contains("g000001/branch1/model.safetensors"),
            "{e}"
        );
        // A manifest that points outside its folder is refused.
        let m = tmp.path().join("checkpoints").join(MANIFEST);
        let text = fs::read_to_string(&m)
            .unwrap()
            .replace("g000001/branch0", "../../etc");
        fs::write(&m, text).unwrap();
        let e = Store::open(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("gNNNNNN/branchK"), "{e}");
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &t);
            } else {
                fs::copy(e.path(), t).unwrap();
            }
        }
    }
}
