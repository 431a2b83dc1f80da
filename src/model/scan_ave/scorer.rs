//! Evaluation scoring with the scan-ave head ([`ScanScorer`]): encoded images
//! × the stacked words of all captions, block by block, in f32 or — with
//! [`Bf16Head`] — with the head's three GEMMs in bf16 on Intel AMX (the
//! issue #5 stretch; `--head-precision bf16`).

use std::ops::Range;

use crate::engine::amx::{self, PackedB};
use crate::engine::bf16::to_bf16;
use crate::eval::sharded::BlockScorer;
use crate::model::scan_head::{Bf16Tile, Kernel, Saved, ScanHead, Scratch, Words};

/// What the bf16 path prepares once per split: `W_t` packed for AMX and every
/// word rounded to bf16 (row stride d rounded up to 32, plus 32 zero rows so
/// the last tile's row padding stays in bounds).
#[derive(Debug)]
pub struct Bf16Head {
    proj: PackedB,
    /// [N_w + 32, d_pad]
    words: Vec<u16>,
    n_words: usize,
}

impl Bf16Head {
    /// Rounds `head`'s projection and all of `words` (`offsets[0] = 0`) to
    /// bf16. Errors when this machine has no AMX.
    pub fn new(head: &ScanHead, words: Words<'_>) -> Result<Self, amx::Unavailable> {
        amx::require()?;
        let d = head.embed();
        let dp = d.next_multiple_of(amx::BLOCK);
        let nw = words.n_words();
        let mut w16 = vec![0u16; (nw + amx::BLOCK) * dp];
        for (dst, src) in w16
            .chunks_exact_mut(dp)
            .zip(words.data[..nw * d].chunks_exact(d))
        {
            dst.iter_mut().zip(src).for_each(|(q, &x)| *q = to_bf16(x));
        }
        Ok(Bf16Head {
            proj: head.pack_projection_bf16(),
            words: w16,
            n_words: nw,
        })
    }
}

/// Block scorer over encoded evaluation data: images [n_img, R, d] and the
/// stacked words of all captions. Each score depends only on its image and
/// caption (the kernel's per-caption reductions never cross captions), so
/// results do not depend on the block shape.
#[derive(Debug, Clone, Copy)]
pub struct ScanScorer<'a> {
    head: &'a ScanHead,
    img: &'a [f32],
    n_regions: usize,
    words: Words<'a>,
    bf16: Option<&'a Bf16Head>,
}

impl<'a> ScanScorer<'a> {
    /// img: [n_img, R, d]; words: all captions (`offsets[0] = 0`).
    pub fn new(head: &'a ScanHead, img: &'a [f32], n_regions: usize, words: Words<'a>) -> Self {
        ScanScorer {
            head,
            img,
            n_regions,
            words,
            bf16: None,
        }
    }

    /// Runs the head's GEMMs in bf16 on AMX with `prep`, made by
    /// [`Bf16Head::new`] from this scorer's head and words.
    pub fn with_bf16(self, prep: &'a Bf16Head) -> Self {
        let h = self.head;
        assert_eq!(
            (prep.proj.n(), prep.proj.k(), prep.n_words),
            (h.sim_dim(), h.embed(), self.words.n_words()),
            "scan scorer: Bf16Head was made for another head or word list"
        );
        ScanScorer {
            bf16: Some(prep),
            ..self
        }
    }
}

impl BlockScorer for ScanScorer<'_> {
    fn n_images(&self) -> usize {
        self.img.len() / (self.n_regions * self.head.embed())
    }
    fn n_captions(&self) -> usize {
        self.words.n_cap()
    }
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        let d = self.head.embed();
        let r = self.n_regions;
        let per = r * d;
        let w = self.words.slice(captions.clone(), d);
        let tiles = w.tiles(self.head.tile_words());
        let nc = captions.len();
        let (mut sv, mut sc) = (Saved::default(), Scratch::default());
        let wt = self.head.projection_t();
        for (ii, o) in images.zip(out.chunks_exact_mut(nc)) {
            let v = &self.img[ii * per..(ii + 1) * per];
            // The image's two AMX operands, once per block row.
            let packed = self
                .bf16
                .map(|_| (PackedB::from_weight(v, r, d), PackedB::from_kn(v, r, d)));
            for t in &tiles {
                let tile = self
                    .bf16
                    .zip(packed.as_ref())
                    .map(|(b, (vt, vn))| Bf16Tile {
                        proj: &b.proj,
                        // The tile's first word, in the whole list's numbering.
                        words: &b.words[w.offsets[t.start] * vt.k_pad()..],
                        vt,
                        v: vn,
                    });
                let kernel = match tile.as_ref() {
                    Some(b) => Kernel::Bf16(b),
                    None => Kernel::F32 { wt: &wt },
                };
                self.head.tile_forward(v, w, t, &mut sv, &mut sc, o, kernel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::rand_vec;
    use crate::eval::sharded::{BlockSize, score_full};

    /// bf16 GEMMs (AMX) change scores by bf16 rounding only: close to f32,
    /// but not equal (so the bf16 path did run), and independent of the
    /// block shape like the f32 path.
    #[test]
    fn bf16_scores_stay_close_to_f32() {
        if !amx::available() {
            eprintln!("skipped: no AMX on this machine");
            return;
        }
        let (d, s, r, n_img) = (80, 40, 6, 5);
        let mut head = ScanHead::new(d, s, 9.0, &mut seeded(9));
        head.tran.bias.as_mut().unwrap().value = rand_vec(s, 4, 0.1);
        let mut offsets = vec![0usize];
        for j in 0..45 {
            offsets.push(offsets[j] + 2 + (j * 5) % 11);
        }
        let words = rand_vec(offsets[45] * d, 5, 1.0);
        let img = rand_vec(n_img * r * d, 6, 1.0);
        let w = Words {
            data: &words,
            offsets: &offsets,
        };
        let prep = Bf16Head::new(&head, w).unwrap();
        let f32_scorer = ScanScorer::new(&head, &img, r, w);
        let bf16_scorer = f32_scorer.with_bf16(&prep);
        let block = BlockSize {
            images: 2,
            captions: 7,
        };
        let a = score_full(&f32_scorer, block).unwrap();
        let b = score_full(&bf16_scorer, block).unwrap();
        assert_eq!(a, head.forward(&img, r, w));
        let whole = BlockSize {
            images: n_img,
            captions: 45,
        };
        assert_eq!(b, score_full(&bf16_scorer, whole).unwrap());
        let err = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err > 0.0,
            "bf16 scores equal f32 bit for bit: path not taken"
        );
        assert!(err < 1e-2, "bf16 scores differ from f32 by {err}");
    }
}
