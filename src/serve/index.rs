//! An opened index folder and two-stage search over it:
//! 1. shortlist: the K items whose global embedding has the largest inner
//!    product with the query's ([`Shortlist`]: HNSW or exact);
//! 2. exact re-ranking of the K with the run's own scorer (scan-ave: the SCAN
//!    head over regions × words), best first, ties by row.
//!
//! With K ≥ the gallery size both stages are exact, so the result is the exact
//! full ranking (tested).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::ServeError;
use super::files::{RowsF32, Watched};
use super::manifest::Manifest;
use super::models::Models;
use super::shortlist::Shortlist;
use crate::data::precomp::parse_captions;
use crate::eval::sharded::{BlockSize, score_full};
use crate::infer::global::global_rows;
use crate::infer::{CaptionView, ImageView, InferError, LoadedMatcher};
use crate::model::encode::uniform_offsets;
use crate::model::precision::HeadPrecision;

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The item's id (`ids.txt`, or the row number).
    pub id: String,
    /// Row in the gallery.
    pub row: usize,
    /// Exact score of the run's head.
    pub score: f32,
    /// The caption text (caption hits only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The image's first gallery caption (image hits, when the index holds
    /// c captions per image: caption row `row × c`, as `--captions` of a
    /// split lists them; otherwise absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_caption: Option<String>,
}

/// The gallery image an image → caption search was asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// Its id ([`Hit::id`]).
    pub id: String,
    /// Its gallery row.
    pub row: usize,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// Best first.
    pub hits: Vec<Hit>,
    /// Candidates re-ranked (K).
    pub candidates: usize,
    /// Query words not in the vocabulary (text queries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_words: Vec<String>,
    /// The gallery image searched with (searches by row or id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

/// Image ids (`ids.txt`): by row, and each id's first row and how many rows
/// carry it (an id on several rows names no single image).
#[derive(Debug)]
struct Ids {
    by_row: Vec<String>,
    rows: HashMap<String, (usize, usize)>,
}

impl Ids {
    fn new(by_row: Vec<String>) -> Self {
        let mut rows: HashMap<String, (usize, usize)> = HashMap::with_capacity(by_row.len());
        for (r, id) in by_row.iter().enumerate() {
            rows.entry(id.clone()).or_insert((r, 0)).1 += 1;
        }
        Ids { by_row, rows }
    }
}

/// The caption side of an index.
#[derive(Debug)]
struct Captions {
    texts: Vec<String>,
    /// `[n_rows, d]`, on disk.
    rows: RowsF32,
    /// `[n_cap + 1]`.
    offsets: Vec<usize>,
    short: Shortlist,
}

/// An opened index.
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    model: Arc<LoadedMatcher>,
    shortlist_model: Option<Arc<LoadedMatcher>>,
    /// `[n_img, rows, d]`, on disk.
    images: RowsF32,
    img_short: Shortlist,
    ids: Option<Ids>,
    captions: Option<Captions>,
    /// The files read at open, to notice when they change on disk.
    watched: Watched,
}

fn corrupt(path: &Path, message: impl Into<String>) -> ServeError {
    ServeError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Caption offsets from the raw little-endian u64 bytes of `path`: `[n_cap + 1]`.
fn parse_offsets(
    path: &Path,
    bytes: &[u8],
    n_cap: usize,
    n_rows: usize,
) -> Result<Vec<usize>, ServeError> {
    if bytes.len() != (n_cap + 1) * 8 {
        return Err(corrupt(
            path,
            format!(
                "{} bytes, expected {} (truncated?)",
                bytes.len(),
                (n_cap + 1) * 8
            ),
        ));
    }
    let offs: Vec<usize> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
        .collect();
    if offs[0] != 0 || offs[n_cap] != n_rows || offs.windows(2).any(|w| w[0] > w[1]) {
        return Err(corrupt(path, "offsets must rise from 0 to the row count"));
    }
    Ok(offs)
}

/// Text bytes of `path` as UTF-8.
fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, ServeError> {
    String::from_utf8(bytes).map_err(|_| corrupt(path, "not UTF-8 text"))
}

/// Sorts (row, score) best first, ties by row, and keeps `k`.
fn top(mut scored: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

impl Index {
    /// Opens `dir`, loading (or reusing from `models`) its model(s) and
    /// checking that their weights are the ones the index was built with.
    /// Every file is read into memory and checked against the manifest's
    /// size and SHA-256, and every manifest field against the arrays and the
    /// model ([`super::files`]).
    pub fn open(dir: &Path, models: &Models) -> Result<Self, ServeError> {
        let manifest = Manifest::load(dir)?;
        let model = models.get(&manifest.model, dir)?;
        let shortlist_model = match &manifest.shortlist_model {
            Some(r) => Some(models.get(r, dir)?),
            None => None,
        };
        let m = &manifest;
        let mpath = dir.join("manifest.json");
        let lie = |what: String| corrupt(&mpath, what);
        m.check_files_listed(dir)?;
        let mx = model.matcher();
        if mx.embed_dim() != m.embed_dim || mx.img_dim() != m.img_dim {
            return Err(lie(format!(
                "embed_dim {} / img_dim {}, the model has {} / {}",
                m.embed_dim,
                m.img_dim,
                mx.embed_dim(),
                mx.img_dim()
            )));
        }
        if mx.image_rows(m.regions) != m.image_rows {
            return Err(lie(format!(
                "image_rows {} for {} regions, the model makes {}",
                m.image_rows,
                m.regions,
                mx.image_rows(m.regions)
            )));
        }
        if model.config().backbone.name() != m.model.backbone {
            return Err(lie(format!(
                "backbone {:?}, the run's is {:?}",
                m.model.backbone,
                model.config().backbone.name()
            )));
        }
        let sdim = shortlist_model
            .as_ref()
            .map_or(m.embed_dim, |s| s.matcher().embed_dim());
        if sdim != m.shortlist_dim {
            return Err(lie(format!(
                "shortlist_dim {}, the shortlist model embeds in {sdim}",
                m.shortlist_dim
            )));
        }
        let mut watched = Watched::default();
        let sum = |name: &str| m.files.get(name).expect("checked by check_files_listed");
        let images = watched.open_verified_rows(&dir.join("images.npy"), sum("images.npy"), 3)?;
        if images.shape() != [m.n_images, m.image_rows, m.embed_dim] {
            return Err(corrupt(
                images.path(),
                format!(
                    "shape {:?}, the manifest says [{}, {}, {}]",
                    images.shape(),
                    m.n_images,
                    m.image_rows,
                    m.embed_dim
                ),
            ));
        }
        let mut shortlist = |emb: &str, hnsw: &str, n: usize| -> Result<Shortlist, ServeError> {
            let e = watched.read_verified_f32(&dir.join(emb), sum(emb), 2)?;
            let h = match m.files.get(hnsw) {
                Some(hs) => Some((dir.join(hnsw), watched.read_verified(&dir.join(hnsw), hs)?)),
                None => None,
            };
            let h = h.as_ref().map(|(p, b)| (p.as_path(), b.as_slice()));
            Shortlist::new(e, h, n, m.shortlist_dim)
        };
        let img_short = shortlist("images_global.npy", "images.usearch", m.n_images)?;
        let captions = if m.n_captions > 0 {
            let rows_short = shortlist("captions_global.npy", "captions.usearch", m.n_captions)?;
            let p = dir.join("captions.txt");
            let texts = parse_captions(&p, &watched.read_verified(&p, sum("captions.txt"))?)?;
            if texts.len() != m.n_captions {
                return Err(corrupt(
                    &p,
                    format!(
                        "{} captions, the manifest says {}",
                        texts.len(),
                        m.n_captions
                    ),
                ));
            }
            let rows = watched.open_verified_rows(
                &dir.join("caption_rows.npy"),
                sum("caption_rows.npy"),
                2,
            )?;
            if rows.shape() != [m.n_caption_rows, m.embed_dim] {
                return Err(corrupt(
                    rows.path(),
                    format!(
                        "shape {:?}, expected [{}, {}]",
                        rows.shape(),
                        m.n_caption_rows,
                        m.embed_dim
                    ),
                ));
            }
            let op = dir.join("caption_offsets.u64");
            let offsets = parse_offsets(
                &op,
                &watched.read_verified(&op, sum("caption_offsets.u64"))?,
                m.n_captions,
                m.n_caption_rows,
            )?;
            Some(Captions {
                texts,
                rows,
                offsets,
                short: rows_short,
            })
        } else {
            None
        };
        let ids = if m.has_ids {
            let p = dir.join("ids.txt");
            let text = utf8(&p, watched.read_verified(&p, sum("ids.txt"))?)?;
            let ids: Vec<String> = text.lines().map(str::to_string).collect();
            if ids.len() != m.n_images || ids.iter().any(String::is_empty) {
                return Err(corrupt(
                    &p,
                    format!(
                        "{} ids for {} images (one non-empty id per line expected)",
                        ids.len(),
                        m.n_images
                    ),
                ));
            }
            Some(Ids::new(ids))
        } else {
            None
        };
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            model,
            shortlist_model,
            images,
            img_short,
            ids,
            captions,
            watched,
        })
    }

    /// Err naming the file when one of this index's files changed on disk
    /// since it was opened (the index then answers 503; see [`super::files`]).
    pub fn check_files(&self) -> Result<(), ServeError> {
        self.watched.check(&self.dir)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The index folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The re-ranking model.
    pub fn model(&self) -> &LoadedMatcher {
        &self.model
    }

    fn check_k(&self, k: usize, n: usize, what: &str) -> Result<(), ServeError> {
        if k == 0 || k > n {
            return Err(ServeError::BadRequest(format!(
                "k = {k}: must be between 1 and the gallery's {n} {what}"
            )));
        }
        Ok(())
    }

    fn image_id(&self, row: usize) -> String {
        match &self.ids {
            Some(ids) => ids.by_row[row].clone(),
            None => row.to_string(),
        }
    }

    /// The gallery row of the image whose id is `id`: its line of `ids.txt`,
    /// or, for an index built without `--ids`, the row whose number `id` is
    /// (in decimal, as [`Hit::id`] writes it: `7`, not `07`).
    pub fn image_row_of(&self, id: &str) -> Result<usize, ServeError> {
        let n = self.manifest.n_images;
        let found = match &self.ids {
            Some(ids) => ids.rows.get(id).copied(),
            None => id
                .parse::<usize>()
                .ok()
                .filter(|&r| r < n && r.to_string() == id)
                .map(|r| (r, 1)),
        };
        match found {
            Some((row, 1)) => Ok(row),
            Some((row, count)) => Err(ServeError::BadRequest(format!(
                "image_id {id:?}: {count} gallery images carry this id (the first at row {row}); \
                 ask by image_row"
            ))),
            None if self.ids.is_some() => Err(ServeError::BadRequest(format!(
                "image_id {id:?}: no gallery image has this id (ids from the index's ids.txt)"
            ))),
            None => Err(ServeError::BadRequest(format!(
                "image_id {id:?}: this index has no ids (built without --ids), so an image's id \
                 is its row number, 0..{n}"
            ))),
        }
    }

    /// The first caption of gallery image `row` when the index holds c
    /// captions per image (caption row `row × c`); None otherwise.
    fn first_caption(&self, row: usize) -> Option<String> {
        let c = self.captions.as_ref()?;
        let (ni, nc) = (self.manifest.n_images, c.texts.len());
        (ni > 0 && nc > 0 && nc % ni == 0).then(|| c.texts[row * (nc / ni)].clone())
    }

    /// Text → images: the `k` best images for `text`, re-ranking a shortlist
    /// of `max(shortlist, k)` candidates.
    pub fn search_images(
        &self,
        text: &str,
        k: usize,
        shortlist: usize,
    ) -> Result<SearchResult, ServeError> {
        let n = self.manifest.n_images;
        self.check_k(k, n, "images")?;
        let (cap, unknown) = self.model.encode_texts(&[text])?;
        let q = match &self.shortlist_model {
            None => global_rows(&cap.rows, &cap.offsets, self.manifest.embed_dim),
            Some(s) => {
                let (g, _) = s.encode_texts(&[text])?;
                global_rows(&g.rows, &g.offsets, s.matcher().embed_dim())
            }
        };
        let mut cand = self.img_short.candidates(&q, shortlist.max(k))?;
        cand.sort_unstable();
        let per = self.images.row_len();
        let mut gathered = Vec::with_capacity(cand.len() * per);
        for &r in &cand {
            self.images.read_rows(r..r + 1, &mut gathered)?;
        }
        let img = ImageView {
            data: &gathered,
            rows: per / self.manifest.embed_dim,
        };
        let s = self.exact_scores(img, CaptionView::from(&cap), true)?;
        let hits = top(cand.iter().copied().zip(s).collect(), k)
            .into_iter()
            .map(|(row, score)| Hit {
                id: self.image_id(row),
                row,
                score,
                caption: None,
                first_caption: self.first_caption(row),
            })
            .collect();
        Ok(SearchResult {
            hits,
            candidates: cand.len(),
            unknown_words: unknown.into_iter().flatten().collect(),
            image: None,
        })
    }

    /// Image (gallery row `row`) → captions.
    pub fn search_captions_by_row(
        &self,
        row: usize,
        k: usize,
        shortlist: usize,
    ) -> Result<SearchResult, ServeError> {
        if row >= self.manifest.n_images {
            return Err(ServeError::BadRequest(format!(
                "image_row {row}: the gallery has rows 0..{}",
                self.manifest.n_images
            )));
        }
        let g = self.img_short.global(row).to_vec();
        let mut rep = Vec::new();
        self.images.read_rows(row..row + 1, &mut rep)?;
        let mut res = self.rank_captions(&rep, &g, k, shortlist)?;
        res.image = Some(ImageRef {
            id: self.image_id(row),
            row,
        });
        Ok(res)
    }

    /// Image (the gallery image with id `id`, [`Index::image_row_of`]) → captions.
    pub fn search_captions_by_id(
        &self,
        id: &str,
        k: usize,
        shortlist: usize,
    ) -> Result<SearchResult, ServeError> {
        self.search_captions_by_row(self.image_row_of(id)?, k, shortlist)
    }

    /// Image (region features `[R, D]`, flattened) → captions.
    pub fn search_captions(
        &self,
        features: &[f32],
        k: usize,
        shortlist: usize,
    ) -> Result<SearchResult, ServeError> {
        let m = &self.manifest;
        let n = self.model.check_features(features, m.regions)?;
        if n != 1 {
            return Err(ServeError::BadRequest(format!(
                "features: expected one image of {} regions x {} features, got {n}",
                m.regions, m.img_dim
            )));
        }
        let rep = self.model.matcher().encode_images(features, m.regions);
        let q = match &self.shortlist_model {
            None => global_rows(&rep, &uniform_offsets(1, m.image_rows), m.embed_dim),
            Some(s) => {
                let g = s.matcher().encode_images(features, m.regions);
                let gd = s.matcher().embed_dim();
                global_rows(&g, &uniform_offsets(1, g.len() / gd), gd)
            }
        };
        if rep.iter().chain(&q).any(|v| !v.is_finite()) {
            return Err(ServeError::NotFinite(
                "the encoding of these features".into(),
            ));
        }
        self.rank_captions(&rep, &q, k, shortlist)
    }

    fn rank_captions(
        &self,
        rep: &[f32],
        q: &[f32],
        k: usize,
        shortlist: usize,
    ) -> Result<SearchResult, ServeError> {
        let c = self.captions.as_ref().ok_or_else(|| {
            ServeError::BadRequest("this index has no captions (built without --captions)".into())
        })?;
        self.check_k(k, c.texts.len(), "captions")?;
        let mut cand = c.short.candidates(q, shortlist.max(k))?;
        cand.sort_unstable();
        let d = self.manifest.embed_dim;
        let mut rows = Vec::new();
        let mut offsets = vec![0usize];
        for &j in &cand {
            c.rows
                .read_rows(c.offsets[j]..c.offsets[j + 1], &mut rows)?;
            offsets.push(rows.len() / d);
        }
        let img = ImageView {
            data: rep,
            rows: self.manifest.image_rows,
        };
        let cap = CaptionView {
            rows: &rows,
            offsets: &offsets,
        };
        let s = self.exact_scores(img, cap, false)?;
        let hits = top(cand.iter().copied().zip(s).collect(), k)
            .into_iter()
            .map(|(row, score)| Hit {
                id: row.to_string(),
                row,
                score,
                caption: Some(c.texts[row].clone()),
                first_caption: None,
            })
            .collect();
        Ok(SearchResult {
            hits,
            candidates: cand.len(),
            unknown_words: Vec::new(),
            image: None,
        })
    }

    /// Exact scores of the run's head over gathered candidates, blocks of 32
    /// along the candidate side (`images_side`: the candidates are images).
    fn exact_scores(
        &self,
        img: ImageView<'_>,
        cap: CaptionView<'_>,
        images_side: bool,
    ) -> Result<Vec<f32>, ServeError> {
        let scorer = self
            .model
            .matcher()
            .scorer(img, cap, HeadPrecision::F32)
            .map_err(InferError::from)?;
        let (images, captions) = if images_side { (32, 1) } else { (1, 32) };
        let block = BlockSize { images, captions };
        let s = score_full(scorer.as_ref(), block).map_err(crate::infer::InferError::from)?;
        if s.iter().any(|v| !v.is_finite()) {
            return Err(ServeError::NotFinite("a score of this query".into()));
        }
        Ok(s)
    }

    /// Stored representation of gallery image `row`: `[image_rows, d]`
    /// (read from the file: a file changed under the server is an error).
    pub fn image_rep(&self, row: usize) -> Result<Vec<f32>, ServeError> {
        if row >= self.manifest.n_images {
            return Err(ServeError::BadRequest(format!(
                "image_row {row}: the gallery has rows 0..{}",
                self.manifest.n_images
            )));
        }
        let mut out = Vec::new();
        self.images.read_rows(row..row + 1, &mut out)?;
        Ok(out)
    }

    /// Gallery caption `row`: its text and stored representation
    /// `[caption rows, d]` (caption galleries only).
    pub fn caption_rep(&self, row: usize) -> Result<(&str, Vec<f32>), ServeError> {
        let c = self.captions.as_ref().ok_or_else(|| {
            ServeError::BadRequest("this index has no captions (built without --captions)".into())
        })?;
        if row >= c.texts.len() {
            return Err(ServeError::BadRequest(format!(
                "caption_row {row}: the gallery has captions 0..{}",
                c.texts.len()
            )));
        }
        let mut rows = Vec::new();
        c.rows
            .read_rows(c.offsets[row]..c.offsets[row + 1], &mut rows)?;
        Ok((&c.texts[row], rows))
    }

    /// Stored shortlist embedding of gallery image `row`: `[shortlist_dim]`.
    pub fn image_global(&self, row: usize) -> &[f32] {
        self.img_short.global(row)
    }

    /// Stored shortlist embedding of gallery caption `row` (caption galleries only).
    pub fn caption_global(&self, row: usize) -> &[f32] {
        self.captions.as_ref().map_or(&[], |c| c.short.global(row))
    }

    /// Stage one for images: the shortlist's `k` candidate rows for `q`.
    pub fn image_candidates(&self, q: &[f32], k: usize) -> Result<Vec<usize>, ServeError> {
        self.img_short.candidates(q, k)
    }

    /// Stage one for captions (empty without captions).
    pub fn caption_candidates(&self, q: &[f32], k: usize) -> Result<Vec<usize>, ServeError> {
        match &self.captions {
            Some(c) => c.short.candidates(q, k),
            None => Ok(Vec::new()),
        }
    }

    /// Exact scores of every gallery image × caption: `[n_images, n_captions]`
    /// (the run's head over the stored representations).
    pub fn score_all(&self) -> Result<Vec<f32>, ServeError> {
        let c = self
            .captions
            .as_ref()
            .ok_or_else(|| ServeError::BadRequest("this index has no captions".into()))?;
        let (images, rows) = (self.images.read_all()?, c.rows.read_all()?);
        let img = ImageView {
            data: &images,
            rows: self.manifest.image_rows,
        };
        let cap = CaptionView {
            rows: &rows,
            offsets: &c.offsets,
        };
        let scorer = self
            .model
            .matcher()
            .scorer(img, cap, HeadPrecision::F32)
            .map_err(InferError::from)?;
        Ok(score_full(scorer.as_ref(), BlockSize::default())
            .map_err(crate::infer::InferError::from)?)
    }
}
