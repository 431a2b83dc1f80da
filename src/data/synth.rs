//! Deterministic synthetic dataset in the SCAN "precomp" layout (docs/method.md §6): `{train,dev,test}_ims.npy` `[n_img, regions, dim]`,
//! `{train,dev,test}_caps.txt` (5 captions per image, one per line) and `vocab.json`
//! (the authors' format, built like their `vocab.py`: train+dev captions, count ≥ 4).
//!
//! The data is a small "world" that a matching model can learn and a bag-of-words
//! model cannot solve outright:
//! - C latent **concepts**, each a curated F30K noun with 1–3 synonyms (see [`CONCEPT_BANK`])
//!   and a sparse non-negative `dim`-d prototype.
//! - Each **image** picks 3 distinct concepts and fills 4–8 regions per concept with
//!   `ReLU(s · prototype ⊙ mask + σ_c · noise)` (per-image and per-region scale `s`, a
//!   random 3/4 of the prototype's dimensions kept per region); the remaining regions are
//!   `ReLU(σ_b · noise)` background, half of them carrying faint clutter of a random
//!   concept. Region order is shuffled.
//! - Each of the image's 5 distinct **captions** names 2–3 of its concepts (determiner,
//!   optional adjective, one synonym) joined by connector words, with optional filler,
//!   Flickr style ("A young man is standing next to a brown dog on a sunny day .").
//!
//! Determinism: every image draws from its own ChaCha8 stream, keyed by the seed and
//! numbered by (split, image index, scene|features), so the bytes written depend on the
//! configuration only — not on the thread count or the chunking. Normal noise is
//! Irwin–Hall (sum of four 16-bit uniforms, rescaled to unit variance): integer
//! arithmetic plus exactly rounded `f32` operations, hence bit-identical on every
//! platform (no `ln`/`sin` from a platform maths library), and cheap: one 64-bit draw
//! per value. Its tails stop at ±√12 σ, which synthetic features do not miss.
//!
//! Files are written in chunks of images generated in parallel (rayon) and streamed in
//! order through [`NpyWriter`], so memory stays at two chunks whatever the split size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::npy::{NpyError, NpyWriter};
use crate::data::vocab::{Vocab, VocabError};

/// Captions per image (the SCAN layout's fixed 5).
pub const CAPTIONS_PER_IMAGE: usize = 5;

/// Images generated per parallel chunk (memory: two chunks of `regions·dim` floats each).
pub const CHUNK_IMAGES: usize = 64;

/// Errors of the synthetic generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("synth config: `{field}` {what}")]
    Invalid { field: &'static str, what: String },
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Vocab(#[from] VocabError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Size presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 2,000 / 200 / 200 images: quick experiments and CI.
    Small,
    /// 29,000 / 1,014 / 1,000 images: the Flickr30K precomp sizes (≈ 8.5 GB of train features).
    F30k,
}

/// What to generate. Build with [`SynthConfig::default`] or [`SynthConfig::preset`],
/// adjust fields, then [`SynthConfig::validate`] (done by [`World::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Training images (default 2,000).
    pub train: usize,
    /// Validation images (default 200).
    pub dev: usize,
    /// Test images (default 200).
    pub test: usize,
    /// Seed of the world and of every image (default 0).
    pub seed: u64,
    /// Latent concepts C, drawn from [`CONCEPT_BANK`] (default 150; at most the bank size).
    pub concepts: usize,
    /// Concepts per image (default 3).
    pub concepts_per_image: usize,
    /// Regions per image (default 36, the bottom-up-attention count).
    pub regions: usize,
    /// Feature dimension (default 2048).
    pub dim: usize,
    /// Fewest regions showing one of the image's concepts (default 4).
    pub min_regions_per_concept: usize,
    /// Most regions showing one of the image's concepts (default 8).
    pub max_regions_per_concept: usize,
    /// Non-zero dimensions of each concept prototype (default 64).
    pub proto_nnz: usize,
    /// Mean prototype value: values are uniform in `[0.5, 1.5) × signal` (default 2.0;
    /// higher is easier). Calibrated for neural models (issue #11, EXPERIMENTS.md
    /// "Calibration"): scan-ave at embed 256, batch 32, sum-over-negatives triplet,
    /// lr 2e-4, 2 threads reaches dev rSum 128 after one epoch and 428 after two
    /// (chance ≈ 16); at 0.5, the earlier default, it stayed near chance (21–25
    /// after 3 epochs) although a bag-of-words ridge baseline reached ≈ 230.
    pub signal: f32,
    /// Standard deviation of the noise added to concept regions before ReLU (default 1.0).
    pub concept_noise: f32,
    /// Standard deviation of background regions before ReLU (default 1.0).
    pub background_noise: f32,
    /// Largest scale of the faint random concept mixed into half of the background
    /// regions, relative to the prototype (default 0.5; in concept regions the prototype's
    /// scale is 0.45–1.75).
    pub clutter: f32,
    /// Minimum count for a word to enter `vocab.json` (default 4, as the authors' `vocab.py`).
    pub vocab_threshold: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            train: 2_000,
            dev: 200,
            test: 200,
            seed: 0,
            concepts: 150,
            concepts_per_image: 3,
            regions: 36,
            dim: 2048,
            min_regions_per_concept: 4,
            max_regions_per_concept: 8,
            proto_nnz: 64,
            signal: 2.0,
            concept_noise: 1.0,
            background_noise: 1.0,
            clutter: 0.5,
            vocab_threshold: 4,
        }
    }
}

/// Concepts of the harder variant ([`SynthConfig::hard`]).
pub const HARD_CONCEPTS: usize = 15;

impl SynthConfig {
    /// The harder variant: [`HARD_CONCEPTS`] concepts instead of 150, so many
    /// images share the concepts their captions name and a caption's own image
    /// often cannot be told from others that show the same things. Models still
    /// learn fast, but converge well below 600: measured (EXPERIMENTS.md
    /// "Calibration") scan-ave embed 256, batch 32, sum loss, lr 2e-4: dev rSum
    /// 411, 450, 476, 478 over 4 epochs.
    pub fn hard(self) -> Self {
        Self {
            concepts: HARD_CONCEPTS,
            ..self
        }
    }

    /// The defaults with the split sizes of `preset`.
    pub fn preset(preset: Preset) -> Self {
        let (train, dev, test) = match preset {
            Preset::Small => (2_000, 200, 200),
            Preset::F30k => (29_000, 1_014, 1_000),
        };
        Self {
            train,
            dev,
            test,
            ..Self::default()
        }
    }

    /// Number of images in `split`.
    pub fn images(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train,
            Split::Dev => self.dev,
            Split::Test => self.test,
        }
    }

    /// Checks every field; the error names the field and what was expected.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |field, what: String| Err(SynthError::Invalid { field, what });
        for (field, n) in [
            ("train", self.train),
            ("dev", self.dev),
            ("test", self.test),
        ] {
            if n == 0 {
                return bad(field, "must be at least 1 image".into());
            }
            if n >= MAX_IMAGES {
                return bad(field, format!("is {n}; at most {} images", MAX_IMAGES - 1));
            }
        }
        if self.concepts_per_image == 0 {
            return bad("concepts_per_image", "must be at least 1".into());
        }
        if self.concepts < self.concepts_per_image || self.concepts > CONCEPT_BANK.len() {
            return bad(
                "concepts",
                format!(
                    "is {}; expected between concepts_per_image ({}) and the bank size ({})",
                    self.concepts,
                    self.concepts_per_image,
                    CONCEPT_BANK.len()
                ),
            );
        }
        if self.min_regions_per_concept == 0
            || self.min_regions_per_concept > self.max_regions_per_concept
        {
            return bad(
                "min_regions_per_concept",
                format!(
                    "is {}; expected 1 ..= max_regions_per_concept ({})",
                    self.min_regions_per_concept, self.max_regions_per_concept
                ),
            );
        }
        let needed = self
            .concepts_per_image
            .saturating_mul(self.max_regions_per_concept);
        if self.regions < needed {
            return bad(
                "regions",
                format!(
                    "is {}; concepts_per_image × max_regions_per_concept needs {needed}",
                    self.regions
                ),
            );
        }
        if self.dim == 0 || self.dim > u32::MAX as usize {
            return bad("dim", format!("is {}; expected 1 ..= 2^32-1", self.dim));
        }
        if self.proto_nnz == 0 || self.proto_nnz > self.dim {
            return bad(
                "proto_nnz",
                format!("is {}; expected 1 ..= dim ({})", self.proto_nnz, self.dim),
            );
        }
        for (field, v) in [
            ("signal", self.signal),
            ("concept_noise", self.concept_noise),
            ("background_noise", self.background_noise),
            ("clutter", self.clutter),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, format!("is {v}; expected a finite value ≥ 0"));
            }
        }
        if self.vocab_threshold == 0 {
            return bad("vocab_threshold", "must be at least 1".into());
        }
        let total = [self.train, self.dev, self.test]
            .iter()
            .try_fold(0usize, |acc, &n| acc.checked_add(n))
            .and_then(|n| n.checked_mul(self.regions))
            .and_then(|n| n.checked_mul(self.dim))
            .and_then(|n| n.checked_mul(4));
        if total.is_none() {
            return bad(
                "train",
                "× regions × dim overflows the addressable size".into(),
            );
        }
        Ok(())
    }
}

/// Most images per split (the stream id has 56 bits for the index; 2^40 is ample).
const MAX_IMAGES: usize = 1 << 40;

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    /// All splits in the order they are written.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// File-name prefix (`train`, `dev`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    fn stream_tag(self) -> u64 {
        match self {
            Split::Train => 0,
            Split::Dev => 1,
            Split::Test => 2,
        }
    }
}

/// Broad kind of a concept; picks its adjectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Person,
    Animal,
    Vehicle,
    Object,
    Instrument,
    Clothing,
    Place,
    Nature,
    Food,
}

/// Grammatical number of a concept's nouns; picks its determiners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// "a dog", "the dog", "one dog".
    Singular,
    /// "the stairs", "some flowers".
    Plural,
    /// "snow", "the grass", "some water".
    Mass,
}

/// One entry of the concept bank: synonyms (all in the F30K vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConceptDef {
    /// Broad kind.
    pub category: Category,
    /// Grammatical number.
    pub number: Number,
    /// 1–3 synonyms; a caption uses one of them.
    pub words: &'static [&'static str],
}

const fn c(category: Category, number: Number, words: &'static [&'static str]) -> ConceptDef {
    ConceptDef {
        category,
        number,
        words,
    }
}

use Category::{
    Animal as An, Clothing as Cl, Food as Fo, Instrument as In, Nature as Na, Object as Ob,
    Person as Pe, Place as Pl, Vehicle as Ve,
};
use Number::{Mass as M, Plural as P, Singular as S};

/// Curated concrete nouns of Flickr30K captions (each word checked against the authors'
/// released F30K vocabulary); no word appears in two entries or in the caption grammar.
pub const CONCEPT_BANK: &[ConceptDef] = &[
    c(Pe, S, &["man", "guy", "gentleman"]),
    c(Pe, S, &["woman", "lady"]),
    c(Pe, S, &["boy"]),
    c(Pe, S, &["girl"]),
    c(Pe, S, &["child", "kid", "toddler"]),
    c(Pe, S, &["baby", "infant"]),
    c(Pe, S, &["player", "athlete"]),
    c(Pe, S, &["worker", "laborer", "workman"]),
    c(Pe, S, &["musician", "guitarist"]),
    c(Pe, S, &["policeman", "officer", "cop"]),
    c(Pe, S, &["dancer", "ballerina"]),
    c(Pe, S, &["crowd", "audience"]),
    c(Pe, S, &["soldier"]),
    c(Pe, S, &["chef", "cook"]),
    c(Pe, S, &["cyclist", "biker", "bicyclist"]),
    c(Pe, S, &["skier"]),
    c(Pe, S, &["surfer"]),
    c(Pe, S, &["climber"]),
    c(Pe, S, &["runner", "jogger"]),
    c(Pe, S, &["clown"]),
    c(Pe, S, &["student"]),
    c(Pe, S, &["vendor", "merchant"]),
    c(Pe, S, &["swimmer"]),
    c(Pe, S, &["skateboarder", "skater"]),
    c(Pe, S, &["singer"]),
    c(Pe, S, &["fisherman"]),
    c(Pe, S, &["cowboy"]),
    c(Pe, S, &["bride"]),
    c(Pe, S, &["priest"]),
    c(Pe, S, &["doctor", "nurse"]),
    c(Pe, S, &["tourist"]),
    c(Pe, S, &["teenager", "teen"]),
    c(An, S, &["dog", "puppy"]),
    c(An, S, &["cat", "kitten"]),
    c(An, S, &["horse", "pony"]),
    c(An, S, &["cow"]),
    c(An, S, &["sheep", "lamb"]),
    c(An, S, &["bird"]),
    c(An, S, &["duck"]),
    c(An, S, &["fish"]),
    c(An, S, &["camel"]),
    c(An, S, &["elephant"]),
    c(An, S, &["goat"]),
    c(An, S, &["pig"]),
    c(An, S, &["bull"]),
    c(An, S, &["chicken", "rooster"]),
    c(An, S, &["donkey"]),
    c(An, S, &["monkey"]),
    c(An, S, &["deer"]),
    c(Ve, S, &["car", "automobile"]),
    c(Ve, S, &["bicycle", "bike"]),
    c(Ve, S, &["motorcycle", "motorbike"]),
    c(Ve, S, &["boat", "canoe", "kayak"]),
    c(Ve, S, &["bus"]),
    c(Ve, S, &["truck"]),
    c(Ve, S, &["train"]),
    c(Ve, S, &["airplane", "plane", "jet"]),
    c(Ve, S, &["skateboard"]),
    c(Ve, S, &["surfboard"]),
    c(Ve, S, &["scooter"]),
    c(Ve, S, &["tractor"]),
    c(Ve, S, &["wheelchair"]),
    c(Ve, S, &["stroller"]),
    c(Ve, S, &["cart", "wagon"]),
    c(Ve, S, &["taxi", "cab"]),
    c(Ve, S, &["helicopter"]),
    c(Ob, S, &["ball"]),
    c(Ob, S, &["frisbee"]),
    c(Ob, S, &["camera"]),
    c(Ob, S, &["umbrella", "parasol"]),
    c(Ob, S, &["backpack"]),
    c(Ob, S, &["book"]),
    c(Ob, S, &["newspaper"]),
    c(Ob, S, &["phone", "cellphone"]),
    c(Ob, S, &["laptop", "computer"]),
    c(Ob, S, &["kite"]),
    c(Ob, S, &["flag", "banner"]),
    c(Ob, S, &["sign", "poster"]),
    c(Ob, S, &["bench"]),
    c(Ob, S, &["table", "desk"]),
    c(Ob, S, &["chair"]),
    c(Ob, S, &["ladder"]),
    c(Ob, S, &["rope"]),
    c(Ob, S, &["bucket", "pail"]),
    c(Ob, S, &["basket"]),
    c(Ob, S, &["box", "crate"]),
    c(Ob, S, &["bottle"]),
    c(Ob, S, &["cup", "mug"]),
    c(Ob, S, &["bowl"]),
    c(Ob, S, &["balloon"]),
    c(Ob, S, &["stick", "pole"]),
    c(Ob, S, &["bat"]),
    c(Ob, S, &["racket", "racquet"]),
    c(Ob, S, &["net"]),
    c(Ob, S, &["tent"]),
    c(Ob, S, &["lamp", "lantern"]),
    c(Ob, S, &["candle"]),
    c(Ob, S, &["shovel"]),
    c(Ob, S, &["hammer"]),
    c(Ob, S, &["sword"]),
    c(Ob, S, &["gun", "rifle"]),
    c(Ob, S, &["bed"]),
    c(Ob, S, &["couch", "sofa"]),
    c(Ob, S, &["television", "tv"]),
    c(Ob, S, &["grill", "barbecue"]),
    c(Ob, S, &["clock"]),
    c(Ob, S, &["mirror"]),
    c(Ob, S, &["suitcase", "luggage"]),
    c(Ob, S, &["blanket"]),
    c(Ob, S, &["towel"]),
    c(Ob, S, &["map"]),
    c(Ob, S, &["statue", "sculpture"]),
    c(Ob, S, &["painting", "mural"]),
    c(Ob, S, &["tire", "wheel"]),
    c(Ob, S, &["microphone", "mic"]),
    c(Ob, S, &["purse", "handbag"]),
    c(In, S, &["guitar"]),
    c(In, S, &["drum"]),
    c(In, S, &["piano", "keyboard"]),
    c(In, S, &["violin", "fiddle"]),
    c(In, S, &["trumpet"]),
    c(In, S, &["saxophone"]),
    c(In, S, &["accordion"]),
    c(In, S, &["flute"]),
    c(In, S, &["cello"]),
    c(Cl, S, &["hat", "cap"]),
    c(Cl, S, &["helmet"]),
    c(Cl, S, &["dress", "gown"]),
    c(Cl, S, &["shirt", "t-shirt"]),
    c(Cl, S, &["jacket", "coat"]),
    c(Cl, S, &["scarf"]),
    c(Cl, S, &["uniform"]),
    c(Cl, S, &["costume"]),
    c(Cl, S, &["apron"]),
    c(Cl, S, &["mask"]),
    c(Cl, S, &["sweater"]),
    c(Cl, S, &["vest"]),
    c(Cl, P, &["sunglasses", "shades"]),
    c(Cl, P, &["boots"]),
    c(Cl, P, &["shorts"]),
    c(Cl, P, &["jeans"]),
    c(Cl, P, &["gloves"]),
    c(Pl, S, &["fence", "railing"]),
    c(Pl, S, &["wall"]),
    c(Pl, S, &["door", "doorway"]),
    c(Pl, S, &["window"]),
    c(Pl, P, &["stairs", "steps"]),
    c(Pl, S, &["bridge"]),
    c(Pl, S, &["building", "skyscraper"]),
    c(Pl, S, &["house", "cottage"]),
    c(Pl, S, &["church", "cathedral"]),
    c(Pl, S, &["street", "road"]),
    c(Pl, S, &["sidewalk", "pavement"]),
    c(Pl, S, &["stage"]),
    c(Pl, S, &["market", "bazaar"]),
    c(Pl, S, &["restaurant", "cafe", "diner"]),
    c(Pl, S, &["kitchen"]),
    c(Pl, S, &["shop", "store"]),
    c(Pl, S, &["park", "playground"]),
    c(Pl, S, &["fountain"]),
    c(Pl, S, &["pool"]),
    c(Pl, S, &["tower"]),
    c(Pl, S, &["arena", "stadium"]),
    c(Pl, S, &["subway"]),
    c(Na, S, &["tree"]),
    c(Na, P, &["flowers"]),
    c(Na, M, &["grass", "lawn"]),
    c(Na, S, &["rock", "boulder"]),
    c(Na, S, &["mountain", "cliff"]),
    c(Na, S, &["hill"]),
    c(Na, S, &["beach", "shore"]),
    c(Na, S, &["ocean", "sea"]),
    c(Na, S, &["lake", "pond"]),
    c(Na, S, &["river", "stream", "creek"]),
    c(Na, S, &["waterfall"]),
    c(Na, M, &["snow"]),
    c(Na, M, &["sand"]),
    c(Na, S, &["field", "meadow"]),
    c(Na, S, &["forest", "woods"]),
    c(Na, M, &["fire", "bonfire"]),
    c(Na, M, &["smoke"]),
    c(Na, M, &["mud"]),
    c(Na, S, &["cave"]),
    c(Na, S, &["garden"]),
    c(Na, M, &["water"]),
    c(Fo, S, &["cake"]),
    c(Fo, S, &["pizza"]),
    c(Fo, S, &["sandwich"]),
    c(Fo, M, &["food"]),
    c(Fo, P, &["vegetables"]),
    c(Fo, M, &["fruit"]),
    c(Fo, S, &["pumpkin"]),
    c(Fo, S, &["watermelon"]),
    c(Fo, M, &["coffee"]),
    c(Fo, M, &["beer"]),
];

/// Adjectives by category (none is a concept word).
fn adjectives(category: Category) -> &'static [&'static str] {
    match category {
        Category::Person => &[
            "young", "old", "little", "tall", "smiling", "happy", "older", "elderly", "blond",
        ],
        Category::Animal => &[
            "brown", "black", "white", "small", "large", "big", "spotted", "furry",
        ],
        Category::Vehicle => &[
            "red", "blue", "white", "black", "yellow", "green", "old", "new",
        ],
        Category::Object => &[
            "red", "blue", "green", "yellow", "small", "large", "orange", "purple", "pink",
            "wooden", "metal",
        ],
        Category::Instrument => &["electric", "old", "small", "large", "wooden", "shiny"],
        Category::Clothing => &[
            "red", "blue", "black", "white", "green", "pink", "striped", "colorful", "bright",
        ],
        Category::Place => &[
            "big", "small", "busy", "crowded", "empty", "old", "modern", "large",
        ],
        Category::Nature => &[
            "large",
            "small",
            "beautiful",
            "green",
            "tall",
            "rocky",
            "wide",
        ],
        Category::Food => &["large", "small", "fresh", "hot", "delicious"],
    }
}

/// Links between the first and second mention when the first is a person or animal.
const FIRST_LINKS: &[&str] = &[
    "and",
    "with",
    "next to",
    "near",
    "beside",
    "in front of",
    "behind",
    "by",
    "is standing next to",
    "is sitting near",
    "is looking at",
    "is playing with",
    "is walking past",
    "standing by",
    "sitting beside",
    "posing with",
    "waiting near",
];

/// Links before a third mention, or the second when the first is a thing or place.
const LATER_LINKS: &[&str] = &[
    "and",
    "with",
    "near",
    "by",
    "beside",
    "behind",
    "next to",
    "in front of",
];

/// Optional endings; also used, in order, to make a repeated caption distinct.
const FILLERS: &[&str] = &[
    "outside",
    "in the city",
    "on a sunny day",
    "at night",
    "during the day",
    "in the afternoon",
    "in the evening",
    "together",
    "while people watch",
    "on a cloudy day",
    "in the summer",
    "in the winter",
    "at an event",
    "in the background",
    "for a picture",
];

/// Probability that a mention carries an adjective.
const P_ADJECTIVE: f32 = 0.35;
/// Probability that a caption names 3 concepts (when the image has 3).
const P_THREE_MENTIONS: f32 = 0.4;
/// Probability of a filler ending.
const P_FILLER: f32 = 0.4;
/// Probability of a final " .".
const P_PERIOD: f32 = 0.85;
/// Probability of an upper-case first letter.
const P_CAPITAL: f32 = 0.9;
/// Probability that a background region carries clutter.
const P_CLUTTER: f32 = 0.5;
/// Retries for a distinct caption before a filler is appended to force it.
const CAPTION_RETRIES: usize = 32;

// ---------------------------------------------------------------- random numbers

/// SplitMix64 step: a bijective 64-bit mixer (Steele et al. 2014).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 256-bit ChaCha key of `seed`.
fn key_of(seed: u64) -> [u8; 32] {
    let mut s = seed;
    let mut key = [0u8; 32];
    for chunk in key.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
    }
    key
}

/// What a stream is used for.
#[derive(Clone, Copy)]
enum Purpose {
    /// Concept choice and captions of one image.
    Scene = 0,
    /// Region features of one image.
    Features = 1,
    /// The world (prototypes, concept subset).
    World = 2,
}

/// Stream number: split (4 bits) | purpose (4 bits) | image index (56 bits).
fn stream_id(split_tag: u64, purpose: Purpose, index: usize) -> u64 {
    (split_tag << 60) | ((purpose as u64) << 56) | index as u64
}

/// Uniform integer in `0..n` (`n ≥ 1`), Lemire's multiply-and-reject: unbiased and
/// fixed by this code (not by a crate's sampling algorithm).
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = n as u64;
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = (rng.next_u64() as u128) * (n as u128);
        if (m as u64) >= threshold {
            return (m >> 64) as usize;
        }
    }
}

/// Uniform `f32` in `[0, 1)` with 24 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Uniform `f32` in `[lo, hi)`.
fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(rng)
}

fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    unit(rng) < p
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[below(rng, items.len())]
}

/// `√3 / 2^16`: rescales a sum of four 16-bit uniforms (variance ≈ 2^32/3) to unit variance.
const IRWIN_HALL_SCALE: f32 = 1.732_050_8 / 65_536.0;
/// Mean of a sum of four uniforms on `0..=65535`.
const IRWIN_HALL_MEAN: f32 = 2.0 * 65_535.0;

/// One approximately standard-normal value from 64 random bits (Irwin–Hall, n = 4).
#[inline(always)]
fn irwin_hall(bits: u64) -> f32 {
    let s = (bits & 0xFFFF) + ((bits >> 16) & 0xFFFF) + ((bits >> 32) & 0xFFFF) + (bits >> 48);
    (s as f32 - IRWIN_HALL_MEAN) * IRWIN_HALL_SCALE
}

/// Fills `out` with `sigma ·` noise; `bits` is scratch of the same length.
fn fill_noise(rng: &mut ChaCha8Rng, bits: &mut [u64], out: &mut [f32], sigma: f32) {
    rng.fill_bytes(bytemuck::cast_slice_mut(bits));
    for (o, &b) in out.iter_mut().zip(bits.iter()) {
        *o = sigma * irwin_hall(u64::from_le(b));
    }
}

fn relu(v: &mut [f32]) {
    for x in v {
        *x = x.max(0.0);
    }
}

// ---------------------------------------------------------------- the world

/// A concept of the world: its words and its sparse prototype.
#[derive(Debug, Clone)]
pub struct Concept {
    /// The bank entry it came from.
    pub def: ConceptDef,
    /// Prototype support, ascending: `[proto_nnz]` dimension indices.
    pub support: Vec<u32>,
    /// Prototype values on `support`, in `[0.5, 1.5) × signal`: `[proto_nnz]`.
    pub values: Vec<f32>,
}

/// What one image shows and says (features are drawn separately, see [`World::features`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// Indices into [`World::concepts`], distinct, in drawing order: `[concepts_per_image]`.
    pub concepts: Vec<usize>,
    /// [`CAPTIONS_PER_IMAGE`] distinct captions.
    pub captions: Vec<String>,
}

/// The latent world of a configuration: concepts with prototypes.
#[derive(Debug, Clone)]
pub struct World {
    cfg: SynthConfig,
    key: [u8; 32],
    concepts: Vec<Concept>,
}

impl World {
    /// Validates `cfg` and draws the world from its seed.
    pub fn new(cfg: &SynthConfig) -> Result<Self, SynthError> {
        cfg.validate()?;
        let key = key_of(cfg.seed);
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream_id(0, Purpose::World, 0));
        // A seeded subset of the bank, in bank order (partial Fisher–Yates).
        let mut order: Vec<usize> = (0..CONCEPT_BANK.len()).collect();
        for i in 0..cfg.concepts {
            let j = i + below(&mut rng, order.len() - i);
            order.swap(i, j);
        }
        let mut chosen = order[..cfg.concepts].to_vec();
        chosen.sort_unstable();
        let mut dims: Vec<u32> = (0..cfg.dim as u32).collect();
        let concepts = chosen
            .into_iter()
            .map(|b| {
                for i in 0..cfg.proto_nnz {
                    let j = i + below(&mut rng, dims.len() - i);
                    dims.swap(i, j);
                }
                let mut support = dims[..cfg.proto_nnz].to_vec();
                support.sort_unstable();
                let values = (0..cfg.proto_nnz)
                    .map(|_| cfg.signal * uniform(&mut rng, 0.5, 1.5))
                    .collect();
                Concept {
                    def: CONCEPT_BANK[b],
                    support,
                    values,
                }
            })
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            key,
            concepts,
        })
    }

    /// The configuration this world was drawn from.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// The C concepts.
    pub fn concepts(&self) -> &[Concept] {
        &self.concepts
    }

    fn rng(&self, split: Split, purpose: Purpose, index: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream_id(split.stream_tag(), purpose, index));
        rng
    }

    /// The concepts and captions of image `index` of `split`.
    pub fn scene(&self, split: Split, index: usize) -> Scene {
        let mut rng = self.rng(split, Purpose::Scene, index);
        let mut concepts = Vec::with_capacity(self.cfg.concepts_per_image);
        while concepts.len() < self.cfg.concepts_per_image {
            let c = below(&mut rng, self.concepts.len());
            if !concepts.contains(&c) {
                concepts.push(c);
            }
        }
        let mut captions: Vec<String> = Vec::with_capacity(CAPTIONS_PER_IMAGE);
        while captions.len() < CAPTIONS_PER_IMAGE {
            let mut cap = self.caption(&mut rng, &concepts);
            let mut tries = 1;
            while captions.contains(&cap) && tries < CAPTION_RETRIES {
                cap = self.caption(&mut rng, &concepts);
                tries += 1;
            }
            // Forced distinctness: at most CAPTIONS_PER_IMAGE-1 captions can collide,
            // and FILLERS has more entries than that.
            let base = cap.clone();
            let mut f = 0;
            while captions.contains(&cap) {
                cap = format!("{base} {}", FILLERS[f]);
                f += 1;
            }
            captions.push(cap);
        }
        Scene { concepts, captions }
    }

    /// One caption naming 2–3 of `concepts` (fewer if the image has fewer).
    fn caption(&self, rng: &mut ChaCha8Rng, concepts: &[usize]) -> String {
        let most = concepts.len().min(3);
        let fewest = concepts.len().min(2);
        let k = if most > fewest && chance(rng, P_THREE_MENTIONS) {
            most
        } else {
            fewest
        };
        let mut pool = concepts.to_vec();
        for m in 0..k {
            let j = m + below(rng, pool.len() - m);
            pool.swap(m, j);
        }
        let named = &mut pool[..k];
        // A person or animal, when named, leads: it can stand, sit, look, play...
        let agent = |c: usize| {
            matches!(
                self.concepts[c].def.category,
                Category::Person | Category::Animal
            )
        };
        if let Some(a) = named.iter().position(|&c| agent(c)) {
            named.swap(0, a);
        }
        let first_links = if agent(named[0]) {
            FIRST_LINKS
        } else {
            LATER_LINKS
        };
        let mut text = String::with_capacity(64);
        for (m, &c) in named.iter().enumerate() {
            if m > 0 {
                text.push(' ');
                text.push_str(pick(rng, if m == 1 { first_links } else { LATER_LINKS }));
                text.push(' ');
            }
            self.mention(rng, c, &mut text);
        }
        if chance(rng, P_FILLER) {
            text.push(' ');
            text.push_str(pick(rng, FILLERS));
        }
        if chance(rng, P_PERIOD) {
            text.push_str(" .");
        }
        if chance(rng, P_CAPITAL)
            && let Some(first) = text.get_mut(..1)
        {
            first.make_ascii_uppercase();
        }
        text
    }

    /// Appends "determiner [adjective] noun" for concept `c`.
    fn mention(&self, rng: &mut ChaCha8Rng, c: usize, out: &mut String) {
        let def = self.concepts[c].def;
        let det = match def.number {
            Number::Singular => pick(rng, &["a", "a", "a", "the", "one"]),
            Number::Plural => pick(rng, &["the", "some"]),
            Number::Mass => pick(rng, &["the", "some", ""]),
        };
        let adj = chance(rng, P_ADJECTIVE).then(|| pick(rng, adjectives(def.category)));
        let noun = pick(rng, def.words);
        let next = adj.unwrap_or(noun);
        if det == "a" && next.starts_with(['a', 'e', 'i', 'o', 'u']) {
            out.push_str("an ");
        } else if !det.is_empty() {
            out.push_str(det);
            out.push(' ');
        }
        if let Some(a) = adj {
            out.push_str(a);
            out.push(' ');
        }
        out.push_str(noun);
    }

    /// Draws the region features of image `index` of `split` showing `scene`.
    /// out: [regions, dim] (C order); every value is ≥ 0.
    pub fn features(&self, split: Split, index: usize, scene: &Scene, out: &mut [f32]) {
        let cfg = &self.cfg;
        assert_eq!(
            out.len(),
            cfg.regions * cfg.dim,
            "features: wrong buffer size"
        );
        let mut rng = self.rng(split, Purpose::Features, index);
        // Slot of the r-th generated region (Fisher–Yates shuffle).
        let mut slot: Vec<usize> = (0..cfg.regions).collect();
        for i in (1..cfg.regions).rev() {
            slot.swap(i, below(&mut rng, i + 1));
        }
        let mut bits = vec![0u64; cfg.dim];
        let mut r = 0;
        for &c in &scene.concepts {
            let concept = &self.concepts[c];
            let span = cfg.max_regions_per_concept - cfg.min_regions_per_concept + 1;
            let n = cfg.min_regions_per_concept + below(&mut rng, span);
            let amplitude = uniform(&mut rng, 0.6, 1.4);
            for _ in 0..n {
                let region = &mut out[slot[r] * cfg.dim..(slot[r] + 1) * cfg.dim];
                r += 1;
                let s = amplitude * uniform(&mut rng, 0.75, 1.25);
                fill_noise(&mut rng, &mut bits, region, cfg.concept_noise);
                // Keep each prototype dimension with probability 3/4 (2 bits each).
                let mut mask = 0u64;
                for (k, (&d, &v)) in concept.support.iter().zip(&concept.values).enumerate() {
                    if k % 32 == 0 {
                        mask = rng.next_u64();
                    }
                    if (mask >> (2 * (k % 32))) & 3 != 0 {
                        region[d as usize] += s * v;
                    }
                }
                relu(region);
            }
        }
        while r < cfg.regions {
            let region = &mut out[slot[r] * cfg.dim..(slot[r] + 1) * cfg.dim];
            r += 1;
            fill_noise(&mut rng, &mut bits, region, cfg.background_noise);
            if chance(&mut rng, P_CLUTTER) {
                let other = &self.concepts[below(&mut rng, self.concepts.len())];
                let s = uniform(&mut rng, 0.0, cfg.clutter);
                for (&d, &v) in other.support.iter().zip(&other.values) {
                    region[d as usize] += s * v;
                }
            }
            relu(region);
        }
    }
}

// ---------------------------------------------------------------- writing

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// Per split: (split, images, features file, captions file).
    pub splits: Vec<(Split, usize, PathBuf, PathBuf)>,
    /// The vocabulary file and its size (specials included).
    pub vocab: (PathBuf, usize),
    /// Bytes written in all files.
    pub bytes: u64,
}

/// Writes the dataset of `cfg` into the existing directory `dir` (files there with the
/// same names are replaced; each appears only once complete). `progress` is called
/// with the number of images finished so far, over all splits (total
/// `train + dev + test`).
pub fn generate(
    cfg: &SynthConfig,
    dir: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<SynthSummary, SynthError> {
    generate_chunked(cfg, dir, CHUNK_IMAGES, progress)
}

fn generate_chunked(
    cfg: &SynthConfig,
    dir: &Path,
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<SynthSummary, SynthError> {
    let world = World::new(cfg)?;
    let mut done = 0;
    let mut bytes = 0;
    let mut splits = Vec::new();
    let mut vocab_captions: Vec<String> = Vec::new();
    for split in Split::ALL {
        let (ims, caps, b) = write_split(&world, split, dir, chunk, &mut |n, captions| {
            if split != Split::Test {
                vocab_captions.extend_from_slice(captions);
            }
            progress(done + n);
        })?;
        done += cfg.images(split);
        bytes += b;
        splits.push((split, cfg.images(split), ims, caps));
    }
    let vocab = Vocab::build(
        vocab_captions.iter().map(String::as_str),
        cfg.vocab_threshold,
        true,
    );
    let vocab_path = dir.join("vocab.json");
    vocab.save(&vocab_path)?;
    bytes += std::fs::metadata(&vocab_path)
        .map_err(io_err(&vocab_path))?
        .len();
    Ok(SynthSummary {
        splits,
        vocab: (vocab_path, vocab.len()),
        bytes,
    })
}

/// A chunk's buffers: features `[images, regions, dim]` and captions.
struct Chunk {
    features: Vec<f32>,
    captions: Vec<Vec<String>>,
    len: usize,
}

/// Writes `{split}_ims.npy` and `{split}_caps.txt`; `on_chunk(images_done, captions)`
/// follows every written chunk. Generation of chunk k+1 overlaps writing of chunk k.
fn write_split(
    world: &World,
    split: Split,
    dir: &Path,
    chunk: usize,
    on_chunk: &mut dyn FnMut(usize, &[String]),
) -> Result<(PathBuf, PathBuf, u64), SynthError> {
    let cfg = world.config();
    let n = cfg.images(split);
    let per_image = cfg.regions * cfg.dim;
    let ims_path = dir.join(format!("{}_ims.npy", split.name()));
    let caps_path = dir.join(format!("{}_caps.txt", split.name()));
    let caps_tmp = dir.join(format!(
        "{}_caps.txt.tmp{}",
        split.name(),
        std::process::id()
    ));

    let mut ims = NpyWriter::create(&ims_path, &[n, cfg.regions, cfg.dim])?;
    let caps_file = File::create(&caps_tmp).map_err(io_err(&caps_tmp))?;
    let mut caps = BufWriter::new(caps_file);

    let fill = |c: &mut Chunk, start: usize| {
        c.len = chunk.min(n - start);
        c.captions.resize(c.len, Vec::new());
        c.features[..c.len * per_image]
            .par_chunks_mut(per_image)
            .zip(c.captions.par_iter_mut())
            .enumerate()
            .for_each(|(i, (feats, caps))| {
                let scene = world.scene(split, start + i);
                world.features(split, start + i, &scene, feats);
                *caps = scene.captions;
            });
    };
    let new_chunk = || Chunk {
        features: vec![0.0; chunk.min(n) * per_image],
        captions: Vec::new(),
        len: 0,
    };
    let mut cur = new_chunk();
    let mut next = new_chunk();
    fill(&mut cur, 0);
    let mut start = 0;
    let mut caps_bytes = 0u64;
    let mut flat: Vec<String> = Vec::new();
    while start < n {
        let next_start = start + cur.len;
        let (written, ()) = rayon::join(
            || -> Result<u64, SynthError> {
                ims.write(&cur.features[..cur.len * per_image])?;
                let mut b = 0u64;
                for line in cur.captions.iter().flatten() {
                    caps.write_all(line.as_bytes())
                        .and_then(|_| caps.write_all(b"\n"))
                        .map_err(io_err(&caps_tmp))?;
                    b += line.len() as u64 + 1;
                }
                Ok(b)
            },
            || {
                if next_start < n {
                    fill(&mut next, next_start);
                }
            },
        );
        caps_bytes += written?;
        flat.clear();
        flat.extend(cur.captions.drain(..).flatten());
        on_chunk(next_start, &flat);
        std::mem::swap(&mut cur, &mut next);
        start = next_start;
    }
    ims.finish()?;
    let file = caps.into_inner().map_err(|e| SynthError::Io {
        path: caps_tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(&caps_tmp))?;
    std::fs::rename(&caps_tmp, &caps_path).map_err(io_err(&caps_path))?;
    let ims_bytes = std::fs::metadata(&ims_path)
        .map_err(io_err(&ims_path))?
        .len();
    Ok((ims_path, caps_path, ims_bytes + caps_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::NpyF32;
    use std::collections::{HashMap, HashSet};

    /// A config small enough for unit tests (features 8 × 32 per image).
    fn tiny(seed: u64) -> SynthConfig {
        SynthConfig {
            train: 7,
            dev: 3,
            test: 4,
            seed,
            concepts: 12,
            regions: 8,
            dim: 32,
            min_regions_per_concept: 1,
            max_regions_per_concept: 2,
            proto_nnz: 6,
            vocab_threshold: 1,
            ..SynthConfig::default()
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn run(cfg: &SynthConfig, chunk: usize, threads: usize) -> Vec<(String, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| generate_chunked(cfg, dir.path(), chunk, &mut |_| {}))
            .unwrap();
        files(dir.path())
    }

    #[test]
    fn same_seed_same_bytes_whatever_threads_and_chunks() {
        let cfg = tiny(7);
        let a = run(&cfg, 3, 1);
        let b = run(&cfg, 3, 2);
        let c = run(&cfg, 64, 2);
        let d = run(&cfg, 1, 1);
        let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev_caps.txt",
                "dev_ims.npy",
                "test_caps.txt",
                "test_ims.npy",
                "train_caps.txt",
                "train_ims.npy",
                "vocab.json"
            ]
        );
        assert!(a == b, "1 vs 2 threads differ");
        assert!(a == c, "chunk 3 vs 64 differ");
        assert!(a == d, "chunk 3 vs 1 differ");
    }

    #[test]
    fn different_seed_different_data() {
        let a = run(&tiny(1), 64, 2);
        let b = run(&tiny(2), 64, 2);
        for ((na, da), (nb, db)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            if na.ends_with(".npy") || na.ends_with(".txt") {
                assert_ne!(da, db, "{na} is the same for seeds 1 and 2");
            }
        }
    }

    #[test]
    fn layout_shapes_and_captions() {
        let cfg = tiny(3);
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        let summary = generate_chunked(&cfg, dir.path(), 2, &mut |n| {
            assert!(n > last, "progress must increase");
            last = n;
        })
        .unwrap();
        assert_eq!(last, cfg.train + cfg.dev + cfg.test);
        assert_eq!(summary.splits.len(), 3);
        for split in Split::ALL {
            let n = cfg.images(split);
            let ims =
                NpyF32::open_ndim(dir.path().join(format!("{}_ims.npy", split.name())), 3).unwrap();
            assert_eq!(ims.shape(), &[n, cfg.regions, cfg.dim]);
            assert!(ims.data().iter().all(|&x| x.is_finite() && x >= 0.0));
            let text =
                std::fs::read_to_string(dir.path().join(format!("{}_caps.txt", split.name())))
                    .unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), CAPTIONS_PER_IMAGE * n);
            assert!(text.ends_with('\n'));
            for img in lines.chunks(CAPTIONS_PER_IMAGE) {
                assert!(img.iter().all(|l| !l.trim().is_empty()));
                let distinct: HashSet<&&str> = img.iter().collect();
                assert_eq!(distinct.len(), CAPTIONS_PER_IMAGE, "{img:?}");
            }
        }
        let v = Vocab::load(dir.path().join("vocab.json")).unwrap();
        assert_eq!(summary.vocab.1, v.len());
        assert!(v.contains("."));
    }

    #[test]
    fn captions_name_two_or_three_of_the_image_concepts() {
        let cfg = SynthConfig {
            concepts: CONCEPT_BANK.len(),
            ..tiny(11)
        };
        let world = World::new(&cfg).unwrap();
        let mut word_to_concept: HashMap<&str, usize> = HashMap::new();
        for (i, c) in world.concepts().iter().enumerate() {
            for w in c.def.words {
                assert!(word_to_concept.insert(w, i).is_none(), "{w} twice");
            }
        }
        for index in 0..200 {
            let scene = world.scene(Split::Train, index);
            assert_eq!(scene.concepts.len(), 3);
            for cap in &scene.captions {
                let lower = cap.to_lowercase();
                let named: Vec<usize> = lower
                    .split_whitespace()
                    .filter_map(|t| word_to_concept.get(t).copied())
                    .collect();
                let set: HashSet<usize> = named.iter().copied().collect();
                assert_eq!(set.len(), named.len(), "a concept named twice: {cap}");
                assert!((2..=3).contains(&named.len()), "{cap}");
                assert!(set.iter().all(|c| scene.concepts.contains(c)), "{cap}");
            }
        }
    }

    #[test]
    fn grammar_words_are_not_concept_words() {
        let concept_words: HashSet<&str> = CONCEPT_BANK
            .iter()
            .flat_map(|c| c.words.iter().copied())
            .collect();
        let cats = [
            Category::Person,
            Category::Animal,
            Category::Vehicle,
            Category::Object,
            Category::Instrument,
            Category::Clothing,
            Category::Place,
            Category::Nature,
            Category::Food,
        ];
        let grammar = FIRST_LINKS
            .iter()
            .chain(LATER_LINKS)
            .chain(FILLERS)
            .chain(cats.iter().flat_map(|&c| adjectives(c)))
            .chain(&["a", "an", "the", "one", "some"]);
        for phrase in grammar {
            for w in phrase.split_whitespace() {
                assert!(!concept_words.contains(w), "{w:?} is also a concept word");
            }
        }
        for c in CONCEPT_BANK {
            assert!((1..=3).contains(&c.words.len()));
            for w in c.words {
                assert!(!w.is_empty() && *w == w.to_lowercase() && !w.contains(' '));
            }
        }
        assert!(FILLERS.len() >= CAPTIONS_PER_IMAGE);
    }

    #[test]
    fn concept_regions_carry_their_prototype() {
        // Matched filter on the region mean (the default config at signal 0.5, the
        // faintest level in use): an image's own concepts should mostly be its 3
        // best-scoring ones. Chance is 3/150 = 2%; at signal 0.5 about 2 in 3 are found
        // (measured 0.689 on these 60 images), so 0.5 fails only if the features stop
        // carrying their prototypes.
        let cfg = SynthConfig {
            train: 60,
            signal: 0.5,
            ..SynthConfig::default()
        };
        let world = World::new(&cfg).unwrap();
        let mut feats = vec![0.0; cfg.regions * cfg.dim];
        let mut found = 0;
        for i in 0..cfg.train {
            let scene = world.scene(Split::Train, i);
            world.features(Split::Train, i, &scene, &mut feats);
            let mut mean = vec![0.0f32; cfg.dim];
            for r in feats.chunks(cfg.dim) {
                for (m, x) in mean.iter_mut().zip(r) {
                    *m += x;
                }
            }
            let mut scores: Vec<(f32, usize)> = world
                .concepts()
                .iter()
                .enumerate()
                .map(|(c, k)| {
                    let dot: f32 = k
                        .support
                        .iter()
                        .zip(&k.values)
                        .map(|(&d, &v)| mean[d as usize] * v)
                        .sum();
                    (dot / k.values.iter().sum::<f32>(), c)
                })
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            found += scores[..3]
                .iter()
                .filter(|(_, c)| scene.concepts.contains(c))
                .count();
        }
        let recall = found as f32 / (3 * cfg.train) as f32;
        eprintln!("top-3 concept recall of the matched filter: {recall:.3}");
        assert!(recall >= 0.5, "recall {recall}");
    }

    #[test]
    fn hard_variant_has_fewer_concepts_and_is_valid() {
        let h = SynthConfig::preset(Preset::Small).hard();
        assert_eq!(h.concepts, HARD_CONCEPTS);
        assert_eq!((h.train, h.signal), (2_000, SynthConfig::default().signal));
        h.validate().unwrap();
        let world = World::new(&h).unwrap();
        assert_eq!(world.concepts().len(), HARD_CONCEPTS);
    }

    #[test]
    fn noise_has_unit_variance() {
        let mut rng = ChaCha8Rng::from_seed(key_of(5));
        let n = 200_000;
        let mut bits = vec![0u64; n];
        let mut v = vec![0.0f32; n];
        fill_noise(&mut rng, &mut bits, &mut v, 1.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: mean 1/√n ≈ 0.0022, variance ≈ √(2/n)·0.95 ≈ 0.003.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
        assert!(v.iter().all(|x| x.abs() <= 3.47));
    }

    #[test]
    fn validate_names_the_field() {
        let e = SynthConfig {
            concepts: 10_000,
            ..SynthConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`concepts`"), "{e}");
        let e = SynthConfig {
            regions: 10,
            ..SynthConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`regions`") && e.contains("24"), "{e}");
        let e = SynthConfig {
            dev: 0,
            ..SynthConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`dev`"), "{e}");
        let e = SynthConfig {
            clutter: f32::NAN,
            ..SynthConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`clutter`"), "{e}");
        assert!(SynthConfig::preset(Preset::F30k).validate().is_ok());
        assert!(SynthConfig::default().validate().is_ok());
    }
}
