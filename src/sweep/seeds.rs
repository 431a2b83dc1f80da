//! The `--seeds` syntax: `A..B` (B exclusive, as in Rust), `A..=B`, or a
//! comma-separated list `0,3,7` (any mix of these, comma-separated); the
//! result is sorted, without repeats.

use super::SweepError;

/// Parses a seed list.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, SweepError> {
    let bad = |message: &str| SweepError::Seeds {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let num = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| {
            bad(&format!(
                "`{}` is not a seed (a whole number ≥ 0)",
                s.trim()
            ))
        })
    };
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
            out.extend(a..=b);
        } else if let Some((a, b)) = part.split_once("..") {
            let (a, b) = (num(a)?, num(b)?);
            if a >= b {
                return Err(bad(&format!("{a}..{b} is empty (the end is exclusive)")));
            }
            out.extend(a..b);
        } else {
            out.push(num(part)?);
        }
        if out.len() > 100_000 {
            return Err(bad("more than 100,000 seeds"));
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
        for bad in ["", "3..3", "a..4", "1,,2", "-1", "4..=2"] {
            let e = parse_seeds(bad).unwrap_err().to_string();
            assert!(e.contains("--seeds"), "{bad}: {e}");
        }
    }
}
