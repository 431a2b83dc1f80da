//! Resource limits checked before a run starts (issue 13 item 6): a cap on
//! worker threads, and a lower-bound memory estimate compared with what the
//! machine has available, so an impossible run is refused in a second
//! instead of aborting on allocation with a half-made run folder.

use std::path::Path;

/// The most worker threads a config may ask for: 4 × the cores here (at
/// least 8). More only stalls the machine; results depend on the count, so
/// an explicit count above the cores is allowed up to this cap.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).max(8)
}

/// Bytes of memory this process may still use: the least of the kernel's
/// `MemAvailable` (`/proc/meminfo`), the address-space limit (`ulimit -v`)
/// and the cgroup v2 limit left (`memory.max` − `memory.current` of this
/// process's cgroup); `None` where none is readable.
pub fn mem_available() -> Option<u64> {
    [
        meminfo_available(),
        soft_limit(Limit::AddressSpace),
        cgroup_left(),
    ]
    .into_iter()
    .flatten()
    .min()
}

fn meminfo_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A process resource limit ([`soft_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `RLIMIT_AS` (`ulimit -v`), bytes.
    AddressSpace,
    /// `RLIMIT_NOFILE` (`ulimit -n`), descriptors.
    OpenFiles,
}

/// The soft value of `limit` for this process; None when unlimited or unknown.
pub fn soft_limit(limit: Limit) -> Option<u64> {
    #[cfg(unix)]
    {
        let resource = match limit {
            Limit::AddressSpace => libc::RLIMIT_AS,
            Limit::OpenFiles => libc::RLIMIT_NOFILE,
        };
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` through a valid pointer.
        let rc = unsafe { libc::getrlimit(resource, &mut r) };
        (rc == 0 && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        let _ = limit;
        None
    }
}

/// `memory.max − memory.current` of this process's cgroup (v2), None when
/// there is no limit ("max") or no cgroup v2.
fn cgroup_left() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    cgroup_left_in(&dir)
}

fn cgroup_left_in(dir: &Path) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let cur: u64 = read("memory.current")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Some(max.saturating_sub(cur))
}

/// A lower bound on a training run's memory: per branch 16 bytes per
/// parameter (value, gradient, Adam's two moments), plus one batch of region
/// features (`batch × regions × dim` f32) and its `batch²` score matrices per
/// branch. Saturates instead of overflowing.
pub fn train_bytes(
    params: usize,
    branches: usize,
    batch: usize,
    regions: usize,
    dim: usize,
) -> u64 {
    let p = (params as u64).saturating_mul(16);
    let scores = (batch as u64)
        .saturating_mul(batch as u64)
        .saturating_mul(8);
    let feats = (batch as u64)
        .saturating_mul(regions as u64)
        .saturating_mul(dim as u64)
        .saturating_mul(4);
    p.saturating_add(scores)
        .saturating_mul(branches as u64)
        .saturating_add(feats)
}

/// `Err(message)` when `need` bytes exceed `available` (`None`: unknown, accepted).
pub fn check_fits(need: u64, available: Option<u64>, what: &str) -> Result<(), String> {
    match available {
        Some(avail) if need > avail => Err(format!(
            "{what} needs at least {:.1} GiB of memory but {:.1} GiB is available; lower \
             branches, batch_size or the model size",
            need as f64 / f64::from(1u32 << 30),
            avail as f64 / f64::from(1u32 << 30)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_grows_with_branches_and_refuses_what_cannot_fit() {
        let one = train_bytes(13_052_077, 1, 128, 36, 2048);
        assert!(one > 13_052_077 * 16);
        assert!(train_bytes(13_052_077, 1000, 128, 36, 2048) > 1000 * 13_052_077 * 16);
        assert_eq!(
            train_bytes(usize::MAX, usize::MAX, usize::MAX, 2, 2),
            u64::MAX
        );
        assert!(check_fits(one, Some(one - 1), "this run").is_err());
        assert!(check_fits(one, Some(one), "this run").is_ok());
        assert!(check_fits(u64::MAX, None, "this run").is_ok());
        assert!(max_threads() >= 8);
    }

    #[test]
    fn the_cgroup_limit_counts_and_max_means_none() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("memory.max"), "1073741824\n").unwrap();
        std::fs::write(tmp.path().join("memory.current"), "73741824\n").unwrap();
        assert_eq!(cgroup_left_in(tmp.path()), Some(1_000_000_000));
        std::fs::write(tmp.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_left_in(tmp.path()), None);
    }
}
