//! The `--seeds` syntax: `A..B` (B exclusive, as in Rust), `A..=B`, or a
//! comma-separated list `0,3,7` (any mix of these, comma-separated); the
//! result is sorted, without repeats. At most [`MAX_SEEDS`] seeds, each at
//! most [`MAX_SEED`] (a TOML integer): a range is sized before it is expanded.

use super::SweepError;

/// Most seeds in one sweep.
pub const MAX_SEEDS: usize = 100_000;
/// Largest seed (TOML integers are signed 64-bit).
pub const MAX_SEED: u64 = i64::MAX as u64;

/// Parses a seed list.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, SweepError> {
    let bad = |message: &str| SweepError::Seeds {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let num = |s: &str| match s.trim().parse::<u64>() {
        Ok(v) if v <= MAX_SEED => Ok(v),
        Ok(v) => Err(bad(&format!("seed {v} is over {MAX_SEED}"))),
        Err(_) => Err(bad(&format!(
            "`{}` is not a seed (a whole number from 0 to {MAX_SEED})",
            s.trim()
        ))),
    };
    let too_many = || bad(&format!("more than {MAX_SEEDS} seeds"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("empty entry"));
        }
        if let Some((a, b)) = part.split_once("..=") {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(bad(&format!("{a}..={b} is empty")));
            }
            if b - a >= (MAX_SEEDS - out.len()) as u64 {
                return Err(too_many());
            }
            out.extend(a..=b);
        } else if let Some((a, b)) = part.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if a >= b {
                return Err(bad(&format!("{a}..{b} is empty (the end is exclusive)")));
            }
            if b - a > (MAX_SEEDS - out.len()) as u64 {
                return Err(too_many());
            }
            out.extend(a..b);
        } else {
            out.push(num(part)?);
        }
        if out.len() > MAX_SEEDS {
            return Err(too_many());
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists() {
        assert_eq!(parse_seeds("0..3").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("0..=3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_seeds("7, 3,0..2,3").unwrap(), vec![0, 1, 3, 7]);
        let huge = format!("0..{}", u64::MAX);
        let over = format!("{}", u64::MAX);
        for bad in [
            "",
            "3..3",
            "a..4",
            "1,,2",
            "-1",
            "4..=2",
            &huge,
            "0..=100000",
            &over,
        ] {
            let e = parse_seeds(bad).unwrap_err().to_string();
            assert!(e.contains("--seeds"), "{bad}: {e}");
        }
    }
}
