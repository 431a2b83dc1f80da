"""Benchmark configurations of dbl and the deterministic inputs they run on.

Shared by `tools/reference/bench_peer.py` (the PyTorch peer), `tools/bench/flops.py`
and `tools/bench/run_bench.py`. The Rust side (`dbl bench`) must use the same
configuration names, dimensions and inputs; everything it needs to reproduce the
inputs bit for bit is specified here (no Python RNG is involved).

Dimensions are the released backbone's (spec section 5): regions 36 x 2048, word
embedding 300, joint embedding 1024 (256 for the `-e256` variant), similarity 256,
F30K vocabulary 8,481 (docs/method.md §6.2), batch 128 (docs/method.md §7), eval batch and shard 100
(docs/method.md §6.3, evaluation `shard_attn_scores`).

Inputs (all from `mix(tag, i)` = splitmix64 finaliser of `(tag << 32 | i) + 0x9E3779B97F4A7C15`,
the same hash as `hash_uniform` in tools/reference/make_engine_fixtures.py):
- caption c has length L_c = max(4, popcount(mix(TAG_LEN, c)) - 20) tokens including
  <start> and <end>: popcount of 64 random bits is Binomial(64, 1/2), so L_c has mean
  ~12 and standard deviation 4, like F30K captions (~12 +- 4 tokens incl. start/end);
- its tokens are [1] + [4 + mix(TAG_TOK, 64 c + j) % (V - 4) for j in 1..L_c-1] + [2]
  (ids 0..3 are <pad>, <start>, <end>, <unk>);
- image i, region r, feature f = (mix(TAG_IMG, (i * 36 + r) * 2048 + f) >> 40) * 2^-24,
  uniform in [0, 1) and exact in f32 (bottom-up features are non-negative);
- a training batch is images 0..B with captions 0..B (caption c is the positive of
  image c), sorted by caption length descending like the authors' collate function;
- a scoring split is images 0..n_img and captions 0..n_cap (each image is encoded once).
Model weights are each side's own initialisation from its seed; they do not change
the amount of work.
"""

from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------- dimensions
REGIONS = 36
IMG_DIM = 2048
WORD_DIM = 300
EMBED = 1024
SIM_DIM = 256
VOCAB = 8481  # F30K, docs/method.md §6.2
BATCH = 128  # training batch, docs/method.md §7
SHARD = 100  # eval batch size and scoring shard, docs/method.md §6.3 / evaluation.shard_attn_scores
FULL_IMAGES = 1000  # F30K test split, docs/method.md §6.1
FULL_CAPTIONS = 5000

TAG_LEN = 0xB1
TAG_TOK = 0xB2
TAG_IMG = 0xB3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Config:
    """One benchmark configuration.

    kind: "train" (one optimiser step on a batch of `batch` pairs) or "score"
    (encode a split and score every image x caption pair in eval mode).
    backbone: "scan-ave", "vse", "sgr" or "saf". branches: 1 = baseline, 2 = OSS cohort (branch 1
    boosts from branch 0 with RM, docs/method.md §3.5 / 4.2).
    """

    name: str
    kind: str
    backbone: str
    embed: int = EMBED
    branches: int = 1
    batch: int = BATCH
    sim_dim: int = SIM_DIM
    word_dim: int = WORD_DIM
    img_dim: int = IMG_DIM
    regions: int = REGIONS
    vocab: int = VOCAB
    notes: str = field(default="", compare=False)


CONFIGS = {
    c.name: c
    for c in [
        Config(
            "scan-train-baseline",
            "train",
            "scan-ave",
            notes="forward + hardest triplet + backward + clip 2.0 + Adam, B = 128, embed 1024",
        ),
        Config(
            "scan-train-baseline-e256",
            "train",
            "scan-ave",
            embed=256,
            notes="as scan-train-baseline with embed 256",
        ),
        Config(
            "scan-train-oss",
            "train",
            "scan-ave",
            branches=2,
            notes="two branches (OSS): branch 0 L_raw, branch 1 L_raw + RM; each its own clip + Adam",
        ),
        Config(
            "vse-train",
            "train",
            "vse",
            notes="mean-pooled FC image + mean-pooled BiGRU text, cosine GEMM, hardest triplet",
        ),
        Config(
            "scan-score",
            "score",
            "scan-ave",
            notes="eval: encode in batches of 100, head in 100 x 100 shards (per-caption loop)",
        ),
        Config(
            "vse-score",
            "score",
            "vse",
            notes="eval: encode in batches of 100, one image x caption GEMM",
        ),
        Config(
            "sgr-train",
            "train",
            "sgr",
            notes="SGRAF SGR head (3 reasoning steps, sim 256), same step as scan-train-baseline",
        ),
        Config(
            "saf-train",
            "train",
            "saf",
            notes="SGRAF SAF head (attention filtration, sim 256), same step as scan-train-baseline",
        ),
        Config(
            "sgr-score",
            "score",
            "sgr",
            notes="eval: encode in batches of 100, SGR head in 100 x 100 shards (per-caption loop)",
        ),
        Config(
            "saf-score",
            "score",
            "saf",
            notes="eval: encode in batches of 100, SAF head in 100 x 100 shards (per-caption loop)",
        ),
    ]
}


def get(name):
    try:
        return CONFIGS[name]
    except KeyError:
        raise SystemExit(f"unknown config {name!r}; expected one of: {', '.join(CONFIGS)}") from None


# ---------------------------------------------------------------- deterministic inputs
def mix(tag, idx):
    """splitmix64 finaliser of (tag << 32 | idx) + golden; idx: uint64 array, each < 2^32."""
    z = (np.uint64(tag) << np.uint64(32)) | np.asarray(idx, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def caption_lengths(start, n):
    """Lengths (incl. <start>/<end>) of captions start..start+n: int64 [n]."""
    bits = np.bitwise_count(mix(TAG_LEN, np.arange(start, start + n, dtype=np.uint64)))
    return np.maximum(4, bits.astype(np.int64) - 20)


def caption_ids(start, n, vocab=VOCAB):
    """Right-padded (0) token ids of captions start..start+n: (ids int64 [n, max_len], lengths [n])."""
    lengths = caption_lengths(start, n)
    ids = np.zeros((n, int(lengths.max())), dtype=np.int64)
    for row, c in enumerate(range(start, start + n)):
        length = int(lengths[row])
        j = np.arange(1, length - 1, dtype=np.uint64)
        ids[row, 0] = 1
        ids[row, 1 : length - 1] = (4 + mix(TAG_TOK, np.uint64(64 * c) + j) % np.uint64(vocab - 4)).astype(
            np.int64
        )
        ids[row, length - 1] = 2
    return ids, lengths


def image_features(start, n, regions=REGIONS, img_dim=IMG_DIM):
    """Region features of images start..start+n: float32 [n, regions, img_dim] in [0, 1)."""
    per_image = regions * img_dim
    out = np.empty((n, regions, img_dim), dtype=np.float32)
    for row, i in enumerate(range(start, start + n)):
        k = mix(TAG_IMG, np.arange(i * per_image, (i + 1) * per_image, dtype=np.uint64))
        out[row] = ((k >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).reshape(regions, img_dim)
    return out


def train_batch_order(batch):
    """Order of pairs 0..batch in the training batch: by caption length, descending (stable)."""
    lengths = caption_lengths(0, batch)
    return np.argsort(-lengths, kind="stable")
