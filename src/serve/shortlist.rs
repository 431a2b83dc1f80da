//! Stage one of search: the K gallery items whose global embeddings have the
//! largest inner product with the query's. HNSW (`usearch`, metric inner
//! product, f32) when the gallery has at least `ann_threshold` items, exact
//! brute force below it — and always when K covers the whole gallery, so that
//! K = gallery size is exact full ranking.

use std::path::Path;

use usearch::{Index as Hnsw, IndexOptions, MetricKind, ScalarKind};

use super::ServeError;
use super::files::OwnedF32;
use crate::eval::dot::dot;

/// Global embeddings of a gallery, in memory, with their HNSW if built.
pub struct Shortlist {
    /// `[n, dim]`.
    emb: OwnedF32,
    hnsw: Option<Hnsw>,
}

impl std::fmt::Debug for Shortlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shortlist")
            .field("shape", &self.emb.shape())
            .field("hnsw", &self.hnsw.is_some())
            .finish()
    }
}

fn ann_err(path: &Path, e: impl std::fmt::Display) -> ServeError {
    ServeError::Ann {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Builds the HNSW over `emb` `[n, dim]` (keys = row numbers, added in row
/// order on one thread, so the graph is reproducible) and saves it to `path`.
pub fn build_hnsw(emb: &[f32], dim: usize, path: &Path) -> Result<(), ServeError> {
    let opts = IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: 0,
        expansion_add: 0,
        expansion_search: 0,
        multi: false,
    };
    let idx = Hnsw::new(&opts).map_err(|e| ann_err(path, e))?;
    let n = emb.len() / dim;
    idx.reserve(n).map_err(|e| ann_err(path, e))?;
    for (i, v) in emb.chunks_exact(dim).enumerate() {
        idx.add(i as u64, v).map_err(|e| ann_err(path, e))?;
    }
    let s = path
        .to_str()
        .ok_or_else(|| ann_err(path, "path is not UTF-8"))?;
    idx.save(s).map_err(|e| ann_err(path, e))
}

impl Shortlist {
    /// Global embeddings `emb` (`[n, dim]`) and, when given, the HNSW saved
    /// at `hnsw.0` whose file bytes are `hnsw.1` (loaded into usearch's own
    /// memory: nothing stays mapped); checks it holds n vectors of width dim.
    pub fn new(
        emb: OwnedF32,
        hnsw: Option<(&Path, &[u8])>,
        n: usize,
        dim: usize,
    ) -> Result<Self, ServeError> {
        if emb.shape() != [n, dim] {
            return Err(ServeError::Corrupt {
                path: emb.path().to_path_buf(),
                message: format!("shape {:?}, the manifest says [{n}, {dim}]", emb.shape()),
            });
        }
        let hnsw = match hnsw {
            None => None,
            Some((p, bytes)) => {
                let idx = Hnsw::restore_from_buffer(bytes).map_err(|e| ann_err(p, e))?;
                if idx.size() != n || idx.dimensions() != dim {
                    return Err(ServeError::Corrupt {
                        path: p.to_path_buf(),
                        message: format!(
                            "holds {} vectors of width {}, the manifest says {n} of {dim}",
                            idx.size(),
                            idx.dimensions()
                        ),
                    });
                }
                Some(idx)
            }
        };
        Ok(Shortlist { emb, hnsw })
    }

    /// Gallery size.
    pub fn len(&self) -> usize {
        self.emb.shape()[0]
    }

    /// True for an empty gallery.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored global embedding of `row`: `[dim]`.
    pub fn global(&self, row: usize) -> &[f32] {
        self.emb.row(row)
    }

    /// Rows of the (up to) `k` items with the largest `q · emb[row]`, any order.
    /// q: `[dim]`.
    pub fn candidates(&self, q: &[f32], k: usize) -> Result<Vec<usize>, ServeError> {
        if q.len() != self.emb.row_len() {
            return Err(ServeError::BadRequest(format!(
                "shortlist query of width {}, the index holds width {}",
                q.len(),
                self.emb.row_len()
            )));
        }
        let n = self.len();
        if k == 0 {
            return Ok(Vec::new());
        }
        if k >= n {
            return Ok((0..n).collect());
        }
        // usearch answers an error when more threads search at once than it
        // has search contexts (its default: the core count); such a query
        // falls back to the exact scan below, which is never worse.
        if let Some(Ok(m)) = self.hnsw.as_ref().map(|idx| idx.search(q, k)) {
            return Ok(m.keys.iter().map(|&key| key as usize).collect());
        }
        let data = self.emb.data();
        let dim = q.len();
        let mut scored: Vec<(f32, usize)> = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, row)| (dot(q, row), i))
            .collect();
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        scored.select_nth_unstable_by(k - 1, by_score);
        Ok(scored[..k].iter().map(|&(_, i)| i).collect())
    }
}
