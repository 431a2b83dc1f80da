//! Value parsers for numeric flags with bounds: an out-of-range value is a
//! usage error from clap (exit status 2, the flag named), never a panic or
//! an overflow further in.

use std::ops::RangeInclusive;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;

/// A `usize` flag within `r`.
pub fn usize_in(r: RangeInclusive<usize>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(*r.start() as u64..=*r.end() as u64)
}

/// `--threads T`: 0 (every core) up to `train::resources::max_threads()`.
pub fn threads(s: &str) -> Result<usize, String> {
    bounded_threads(s, 0)
}

/// A thread count that must be at least 1 (`dbl serve --workers`).
pub fn workers(s: &str) -> Result<usize, String> {
    bounded_threads(s, 1)
}

fn bounded_threads(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    let max = crate::train::resources::max_threads();
    if n < min || n > max {
        return Err(format!(
            "{n} is out of range: {min} ..= {max} (4 x the cores here, at least 8)"
        ));
    }
    Ok(n)
}

/// A duration in seconds (decimals allowed) within `r`.
pub fn secs_in(
    r: RangeInclusive<f64>,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !r.contains(&v) {
            return Err(format!(
                "{v} s is out of range: {} ..= {} s",
                r.start(),
                r.end()
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_what_would_overflow_later() {
        assert_eq!(threads("0"), Ok(0));
        assert!(threads("100000000000").is_err());
        assert!(workers("0").is_err());
        assert!(threads("-1").is_err());
        let p = secs_in(0.05..=10.0);
        assert_eq!(p("1.5"), Ok(Duration::from_millis(1500)));
        assert!(p("0").is_err() && p("NaN").is_err() && p("1e300").is_err());
    }
}
