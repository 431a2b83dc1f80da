//! Property tests of sharded scoring: for a dot-product scorer over random
//! embeddings and arbitrary block sizes, the tiled matrix equals the
//! one-block matrix bit for bit, and so do ranks and metrics, including the
//! streaming ranker.

use proptest::prelude::*;

use super::dot::DotScorer;
use super::matrix::SimMatrix;
use super::metrics::Metrics;
use super::ranks::ranks;
use super::sharded::{BlockSize, score_bands, score_full};
use super::streaming::rank_sharded;

/// (n_img, cpi, dim, image embeddings, caption embeddings). Values on a
/// coarse grid half the time so ties occur and exercise the tie rule.
fn case() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>, Vec<f32>)> {
    (1usize..12, 1usize..6, 1usize..20, any::<bool>()).prop_flat_map(|(n_img, cpi, dim, coarse)| {
        let value = if coarse {
            (-2i32..=2).prop_map(|x| x as f32 * 0.5).boxed()
        } else {
            (-1.0f32..1.0).boxed()
        };
        (
            Just(n_img),
            Just(cpi),
            Just(dim),
            prop::collection::vec(value.clone(), n_img * dim),
            prop::collection::vec(value, n_img * cpi * dim),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sharded_equals_full(
        (n_img, cpi, dim, img, cap) in case(),
        bi in 1usize..15,
        bc in 1usize..70,
    ) {
        let n_cap = n_img * cpi;
        let scorer = DotScorer::new(&img, &cap, dim).unwrap();
        let whole = BlockSize { images: n_img, captions: n_cap };
        let block = BlockSize { images: bi, captions: bc };
        let full = score_full(&scorer, whole).unwrap();
        let sharded = score_full(&scorer, block).unwrap();
        let full_bits: Vec<u32> = full.iter().map(|x| x.to_bits()).collect();
        let sharded_bits: Vec<u32> = sharded.iter().map(|x| x.to_bits()).collect();
        prop_assert_eq!(&full_bits, &sharded_bits);

        let mut banded = Vec::new();
        score_bands(&scorer, block, |_, band| {
            banded.extend(band.iter().map(|x| x.to_bits()));
            Ok::<(), super::EvalError>(())
        }).unwrap();
        prop_assert_eq!(&full_bits, &banded);

        let m_full = SimMatrix::new(&full, n_img, n_cap).unwrap();
        let m_sharded = SimMatrix::new(&sharded, n_img, n_cap).unwrap();
        let r_full = ranks(&m_full);
        prop_assert_eq!(&r_full, &ranks(&m_sharded));
        prop_assert_eq!(&r_full, &rank_sharded(&scorer, block).unwrap());
        prop_assert_eq!(Metrics::from_ranks(&r_full), Metrics::from_ranks(&ranks(&m_sharded)));
    }
}
