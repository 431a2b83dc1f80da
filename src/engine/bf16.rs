//! bfloat16 storage: the top 16 bits of an IEEE f32 (8-bit exponent, 7-bit
//! mantissa), used only as the input format of the AMX similarity-head
//! projection ([`crate::engine::amx`]). Arithmetic stays in f32.

/// Rounds `x` to the nearest bf16, ties to even (the rounding of
/// `torch.Tensor.to(torch.bfloat16)` and of AVX512-BF16 `vcvtneps2bf16`).
/// NaN stays NaN (quietened); ±∞ and overflow to ±∞ as in f32 rounding.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x0040) as u16;
    }
    let round = 0x7FFF + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` rounded to bf16 precision, as an f32.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        // Just above a tie rounds up.
        assert_eq!(
            round_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        assert_eq!(round_bf16(-2.5), -2.5);
        assert_eq!(to_bf16(1.0), 0x3F80);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
    }

    #[test]
    fn relative_error_is_at_most_half_an_ulp() {
        let mut x = 1.0e-30f32;
        while x < 1.0e30 {
            for v in [x, -x * 1.37] {
                let r = round_bf16(v);
                assert!(((r - v) / v).abs() <= 2f32.powi(-8), "{v} -> {r}");
            }
            x *= 1.618;
        }
    }
}
