//! Statistics over seeds: mean, sample standard deviation, Student-t
//! quantiles (from the regularised incomplete beta function) and the paired
//! target − anchor summary with its 95 % confidence interval (docs/method.md
//! §8 metrics; evidence about the method is seeded).

use serde::Serialize;

/// Arithmetic mean (NaN for no values).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n − 1 in the denominator; NaN below 2 values).
pub fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ≈ 1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Regularised incomplete beta I_x(a, b), 0 ≤ x ≤ 1.
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile (0 < p < 1) of Student's t with `df` > 0 degrees of
/// freedom, by bisection on [`t_cdf`] (to ≈ 1e-12).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Mean ± standard deviation of one quantity over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanSd {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation (null in JSON below 2 seeds).
    pub sd: f64,
    /// Number of seeds.
    pub n: usize,
}

impl MeanSd {
    /// Of `v`.
    pub fn of(v: &[f64]) -> Self {
        MeanSd {
            mean: mean(v),
            sd: sd(v),
            n: v.len(),
        }
    }
}

/// Paired differences (target − anchor per seed) and their 95 % Student-t interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    /// Difference per seed, in seed order.
    pub diffs: Vec<f64>,
    /// Mean difference.
    pub mean: f64,
    /// Sample standard deviation of the differences.
    pub sd: f64,
    /// 95 % confidence interval of the mean: mean ∓ t_{0.975, n−1}·sd/√n
    /// (NaN below 2 seeds).
    pub ci95: (f64, f64),
    /// Seeds where the target scored higher (by more than [`TIE`]).
    pub wins: usize,
    /// Seeds where they tied (within [`TIE`]).
    pub ties: usize,
}

/// Differences within this are ties: recalls are multiples of 100/n_queries
/// percent, so two equal rSums can differ only by float rounding of their
/// sums (511.99999999999994 against 512.0 in the study).
pub const TIE: f64 = 1e-6;

impl Paired {
    /// From per-seed `target` and `anchor` values (same length, same seed order).
    pub fn of(target: &[f64], anchor: &[f64]) -> Self {
        let diffs: Vec<f64> = target.iter().zip(anchor).map(|(t, a)| t - a).collect();
        let (m, s, n) = (mean(&diffs), sd(&diffs), diffs.len());
        let ci95 = if n >= 2 {
            let h = t_quantile(0.975, (n - 1) as f64) * s / (n as f64).sqrt();
            (m - h, m + h)
        } else {
            (f64::NAN, f64::NAN)
        };
        Paired {
            wins: diffs.iter().filter(|&&d| d > TIE).count(),
            ties: diffs.iter().filter(|&&d| d.abs() <= TIE).count(),
            diffs,
            mean: m,
            sd: s,
            ci95,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// t_{0.975, df} against published values (R `qt(0.975, df)`), and other tails.
    #[test]
    fn t_quantiles_match_known_values() {
        let known = [
            (1.0, 12.706_204_736_174_698),
            (2.0, 4.302_652_729_749_464),
            (3.0, 3.182_446_305_284_263),
            (4.0, 2.776_445_105_197_793),
            (9.0, 2.262_157_162_854_099),
            (29.0, 2.045_229_642_132_703),
            (1000.0, 1.962_339_080_826_408),
        ];
        for (df, q) in known {
            let got = t_quantile(0.975, df);
            assert!((got - q).abs() < 1e-8 * q, "df {df}: {got} vs {q}");
        }
        // qt(0.95, 5) and qt(0.005, 10).
        assert!((t_quantile(0.95, 5.0) - 2.015_048_372_669_157).abs() < 1e-8);
        assert!((t_quantile(0.005, 10.0) + 3.169_272_672_616_954).abs() < 1e-8);
        // df = 1 is Cauchy: P(T ≤ 1) = 3/4.
        assert!((t_cdf(1.0, 1.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn mean_sd_and_paired_interval() {
        assert_eq!(mean(&[1.0, 2.0, 3.0, 6.0]), 3.0);
        assert!((sd(&[1.0, 2.0, 3.0, 6.0]) - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(sd(&[4.0]).is_nan());
        let p = Paired::of(
            &[10.0, 12.0, 9.0, 15.0, 11.0],
            &[8.0, 12.0, 10.0, 10.0, 9.0],
        );
        assert_eq!(p.diffs, vec![2.0, 0.0, -1.0, 5.0, 2.0]);
        assert_eq!((p.wins, p.ties), (3, 1));
        assert!((p.mean - 1.6).abs() < 1e-12);
        // sd = √(21.2/4); half-width = t_{.975,4}·sd/√5.
        let h = 2.776_445_105_197_793 * (21.2f64 / 4.0).sqrt() / 5f64.sqrt();
        assert!((p.ci95.0 - (1.6 - h)).abs() < 1e-9 && (p.ci95.1 - (1.6 + h)).abs() < 1e-9);
        assert!(Paired::of(&[1.0], &[0.0]).ci95.0.is_nan());
        // Equal rSums summed in another order are a tie, not a win.
        let p = Paired::of(&[512.0, 300.1], &[511.999_999_999_999_94, 300.0]);
        assert_eq!((p.wins, p.ties), (1, 1));
    }
}
