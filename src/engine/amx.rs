//! bf16 GEMM on Intel AMX (`amx-tile` + `amx-bf16`, Sapphire Rapids and
//! later): `C = A·B` with A and B in bf16 ([`crate::engine::bf16`]) and C
//! accumulated in f32 by `tdpbf16ps` (exact bf16 products, f32 sums). It
//! serves the optional bf16 similarity head's three GEMMs at evaluation time
//! (issue #5 stretch); everything else in the engine stays f32.
//!
//! Layouts:
//! - A: row-major `[m, k_pad]` bf16, `m` a multiple of [`BLOCK`], columns
//!   `k..k_pad` zero;
//! - B: a [`PackedB`], built once from a PyTorch-layout weight `W: [n, k]`
//!   (B = Wᵀ) in AMX's pair-interleaved tile layout;
//! - C: row-major `[m, n_pad]` f32, overwritten.
//!
//! The kernel keeps a 32 × 32 block of C in four 16 × 16 f32 tiles and walks
//! k in steps of 32 (two A tiles, two B tiles, four `tdpbf16ps`). Inline
//! assembly (stable Rust has no AMX intrinsics); Linux hands a process the
//! tile state only after `arch_prctl(ARCH_REQ_XCOMP_PERM)`, which
//! [`available`] requests once.

use std::sync::OnceLock;

use super::bf16::to_bf16;

/// Rows of A and columns of B handled per kernel block, and the k step (32).
pub const BLOCK: usize = 32;

/// bf16 values per 16 × 64-byte tile.
const TILE: usize = 16 * 32;

/// Why the AMX path cannot run here.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the bf16 similarity head needs Intel AMX (amx-tile and amx-bf16, Sapphire Rapids or later) \
     and Linux >= 5.16 to enable it; this machine does not offer it (use --head-precision f32)"
)]
pub struct Unavailable;

/// Whether this CPU and OS run AMX bf16 tiles. The first call asks Linux
/// for the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`,
/// process-wide); the answer is cached.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

/// [`available`] as a `Result`.
pub fn require() -> Result<(), Unavailable> {
    if available() {
        Ok(())
    } else {
        Err(Unavailable)
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    // CPUID.(EAX=7, ECX=0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE.
    let edx = __cpuid_count(7, 0).edx;
    if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it only changes
    // which extended register state the kernel lets this process use.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    rc == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// B = Wᵀ of a weight `W: [n, k]`, rounded to bf16 and packed into tiles:
/// tile `(nt, kb)` (columns `16·nt..`, k `32·kb..`) is 16 rows of k-pairs ×
/// 16 columns × 2 bf16, i.e. element `(kk, col)` sits at row `kk / 2`,
/// offset `2·(col % 16) + kk % 2`. Zero-padded to `n_pad`, `k_pad`
/// (multiples of [`BLOCK`]).
#[derive(Debug, Clone)]
pub struct PackedB {
    n: usize,
    k: usize,
    n_pad: usize,
    k_pad: usize,
    /// [n_pad / 16][k_pad / 32][TILE]
    tiles: Vec<u16>,
}

impl PackedB {
    /// Packs `Wᵀ`. w: [n, k] row-major (a PyTorch `Linear` weight).
    pub fn from_weight(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "amx: weight must be [n={n}, k={k}]");
        Self::pack(n, k, |col, kk| w[col * k + kk])
    }

    /// Packs `B` itself. b: [k, n] row-major.
    pub fn from_kn(b: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "amx: B must be [k={k}, n={n}]");
        Self::pack(n, k, |col, kk| b[kk * n + col])
    }

    /// Packs the n × k values `at(col, kk)` = B[kk][col].
    fn pack(n: usize, k: usize, at: impl Fn(usize, usize) -> f32) -> Self {
        let (n_pad, k_pad) = (n.next_multiple_of(BLOCK), k.next_multiple_of(BLOCK));
        let kblocks = k_pad / BLOCK;
        let mut tiles = vec![0u16; n_pad * k_pad];
        for col in 0..n {
            let (nt, c) = (col / 16, col % 16);
            for kk in 0..k {
                let (kb, p) = (kk / BLOCK, kk % BLOCK);
                tiles[(nt * kblocks + kb) * TILE + (p / 2) * 32 + c * 2 + p % 2] =
                    to_bf16(at(col, kk));
            }
        }
        PackedB {
            n,
            k,
            n_pad,
            k_pad,
            tiles,
        }
    }

    /// Columns n of the product (rows of W).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Inner dimension k (columns of W).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Row stride of C: n rounded up to [`BLOCK`].
    pub fn n_pad(&self) -> usize {
        self.n_pad
    }
    /// Row stride of A: k rounded up to [`BLOCK`].
    pub fn k_pad(&self) -> usize {
        self.k_pad
    }
}

/// 64-byte tile configuration of `ldtilecfg` (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    /// Bytes per row of each of the 16 tile registers.
    colsb: [u16; 16],
    /// Rows of each tile register.
    rows: [u8; 16],
}

/// C = A·B. a: [m, b.k_pad()] bf16 (m a multiple of [`BLOCK`], pad columns
/// zero) → c: [m, b.n_pad()] f32, overwritten. Panics without AMX: callers
/// check [`require`] once, where the bf16 path is chosen.
pub fn gemm(a: &[u16], m: usize, b: &PackedB, c: &mut [f32]) {
    assert!(
        available(),
        "amx::gemm called without AMX (check amx::require first)"
    );
    assert_eq!(m % BLOCK, 0, "amx: m = {m} is not a multiple of {BLOCK}");
    assert_eq!(
        a.len(),
        m * b.k_pad,
        "amx: A must be [m={m}, k_pad={}]",
        b.k_pad
    );
    assert_eq!(
        c.len(),
        m * b.n_pad,
        "amx: C must be [m={m}, n_pad={}]",
        b.n_pad
    );
    if m == 0 || b.n_pad == 0 {
        return;
    }
    if b.k_pad == 0 {
        c.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    kernel(a, m, b, c);
}

#[cfg(target_arch = "x86_64")]
fn kernel(a: &[u16], m: usize, b: &PackedB, c: &mut [f32]) {
    use std::arch::asm;
    // Tiles 0–3: C (16 rows × 16 f32); 4–5: A (16 rows × 32 bf16);
    // 6–7: B (16 k-pairs × 16 columns × 2 bf16). All 16 rows × 64 bytes.
    let mut cfg = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    cfg.colsb[..8].fill(64);
    cfg.rows[..8].fill(16);
    let kblocks = b.k_pad / BLOCK;
    let a_stride = b.k_pad * 2; // bytes
    let c_stride = b.n_pad * 4; // bytes
    // SAFETY: `available()` holds (asserted by the caller), so the CPU has
    // AMX and the OS has granted this process the tile state; the
    // configuration is a valid palette-1 layout.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack, readonly));
    }
    for mb in (0..m).step_by(BLOCK) {
        for nb in (0..b.n_pad).step_by(BLOCK) {
            let a0 = a[mb * b.k_pad..].as_ptr();
            let a1 = a[(mb + 16) * b.k_pad..].as_ptr();
            let b0 = b.tiles[(nb / 16) * kblocks * TILE..].as_ptr();
            let b1 = b.tiles[(nb / 16 + 1) * kblocks * TILE..].as_ptr();
            let c0 = c[mb * b.n_pad + nb..].as_mut_ptr();
            let c1 = c[(mb + 16) * b.n_pad + nb..].as_mut_ptr();
            // SAFETY: every load stays inside its slice: A rows mb..mb+32
            // (m is a multiple of 32) over k_pad columns (kblocks steps of 64
            // bytes); B tiles (nb/16, 0..kblocks) and (nb/16 + 1, 0..kblocks)
            // (n_pad is a multiple of 32, 1024 bytes per tile); C rows
            // mb..mb+32, columns nb..nb+32 (two 64-byte halves). Tiles are
            // configured above on this thread.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {s64}*1]",
                    "tileloadd tmm7, [{b1} + {s64}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    "add {a0}, 64",
                    "add {a1}, 64",
                    "add {b0}, 1024",
                    "add {b1}, 1024",
                    "dec {kb}",
                    "jnz 2b",
                    "tilestored [{c0} + {sc}*1], tmm0",
                    "tilestored [{c0} + {sc}*1 + 64], tmm1",
                    "tilestored [{c1} + {sc}*1], tmm2",
                    "tilestored [{c1} + {sc}*1 + 64], tmm3",
                    a0 = inout(reg) a0 => _,
                    a1 = inout(reg) a1 => _,
                    b0 = inout(reg) b0 => _,
                    b1 = inout(reg) b1 => _,
                    kb = inout(reg) kblocks => _,
                    c0 = in(reg) c0,
                    c1 = in(reg) c1,
                    sa = in(reg) a_stride,
                    sc = in(reg) c_stride,
                    s64 = in(reg) 64usize,
                    options(nostack),
                );
            }
        }
    }
    // SAFETY: returns the tiles to their initial state (cheaper context switches).
    unsafe {
        asm!("tilerelease", options(nostack, nomem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bf16::round_bf16;
    use crate::engine::gemm::{MatMut, MatRef, Par, gemm as gemm_f32};
    use crate::engine::testutil::rand_vec;

    #[test]
    fn packing_places_every_weight() {
        let (n, k) = (40, 70);
        let w: Vec<f32> = (0..n * k).map(|i| i as f32).collect();
        let p = PackedB::from_weight(&w, n, k);
        assert_eq!((p.n_pad(), p.k_pad()), (64, 96));
        let kblocks = p.k_pad() / BLOCK;
        for col in 0..p.n_pad() {
            for kk in 0..p.k_pad() {
                let idx = ((col / 16) * kblocks + kk / 32) * TILE
                    + (kk % 32 / 2) * 32
                    + (col % 16) * 2
                    + kk % 2;
                let want = if col < n && kk < k {
                    round_bf16(w[col * k + kk])
                } else {
                    0.0
                };
                assert_eq!(f32::from_bits((p.tiles[idx] as u32) << 16), want);
            }
        }
    }

    #[test]
    fn from_kn_packs_the_transpose_of_from_weight() {
        let (n, k) = (36, 50);
        let w = rand_vec(n * k, 3, 1.0);
        let mut wt = vec![0.0f32; k * n];
        for col in 0..n {
            for kk in 0..k {
                wt[kk * n + col] = w[col * k + kk];
            }
        }
        assert_eq!(
            PackedB::from_kn(&wt, k, n).tiles,
            PackedB::from_weight(&w, n, k).tiles
        );
    }

    /// The AMX product equals an f32 GEMM of the bf16-rounded inputs up to
    /// f32 summation order (products of bf16 values are exact in f32).
    #[test]
    fn gemm_matches_f32_on_rounded_inputs() {
        if !available() {
            eprintln!("skipped: no AMX on this machine");
            return;
        }
        for &(m, n, k) in &[(64, 40, 70), (32, 256, 1024), (96, 32, 32)] {
            let a = rand_vec(m * k, 1, 1.0);
            let w = rand_vec(n * k, 2, 1.0);
            let p = PackedB::from_weight(&w, n, k);
            let mut a16 = vec![0u16; m * p.k_pad()];
            for (dst, src) in a16.chunks_exact_mut(p.k_pad()).zip(a.chunks_exact(k)) {
                dst.iter_mut().zip(src).for_each(|(d, &x)| *d = to_bf16(x));
            }
            let mut c = vec![f32::NAN; m * p.n_pad()];
            gemm(&a16, m, &p, &mut c);
            let ar: Vec<f32> = a.iter().map(|&x| round_bf16(x)).collect();
            let wr: Vec<f32> = w.iter().map(|&x| round_bf16(x)).collect();
            let mut want = vec![0.0f32; m * n];
            gemm_f32(
                MatMut::new(&mut want, m, n),
                MatRef::new(&ar, m, k),
                MatRef::new(&wr, n, k).t(),
                1.0,
                0.0,
                Par::Seq,
            );
            for i in 0..m {
                for j in 0..p.n_pad() {
                    let got = c[i * p.n_pad() + j];
                    if j >= n {
                        assert_eq!(got, 0.0, "padding column {j}");
                        continue;
                    }
                    let scale: f32 = (0..k).map(|t| (ar[i * k + t] * wr[j * k + t]).abs()).sum();
                    let err = (got - want[i * n + j]).abs();
                    assert!(
                        err <= 1e-6 * scale.max(1.0),
                        "({m},{n},{k}) C[{i}][{j}] = {got}, f32 {}",
                        want[i * n + j]
                    );
                }
            }
        }
    }
}
