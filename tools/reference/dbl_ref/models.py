"""Backbones of the dbl project, in PyTorch, written from `docs/method.md` section 5.

- `ScanAve` ("scan-ave"): the released DBL backbone, a stripped-down SGRAF with local
  SCAN attention, squared-difference similarity vectors and mean pooling over words.
  Computed the way the authors' code computes it (a Python loop over captions, each
  caption scored against every image, f32), so that it is a fair benchmark peer.
- `Vse` ("vse"): an embedding model; FC image encoder with mean (or max) pooling over
  regions, BiGRU text encoder with mean pooling over valid words, cosine score = one GEMM.
- `Vse(..., precomp_enc_type="basic")` ("vse-infty", docs/method.md section 13.7): VSE-infinity's
  precomp model: the region MLP (`RegionMlp`) added to the image FC before pooling, GPO on
  both sides.

Both return scores as [n_image, n_caption] (rows = images, spec section 2).

Parameter names are those of the authors' released backbone so their checkpoints
map 1:1 after stripping the `module.` prefix nn.DataParallel adds:
  img_enc.fc.{weight,bias}
  txt_enc.embed.weight
  txt_enc.cap_rnn.{weight_ih_l0,weight_hh_l0,bias_ih_l0,bias_hh_l0}{,_reverse}
  sim_enc.sim_tran_w.{weight,bias}, sim_enc.sim_eval_w.{weight,bias}   (scan-ave only)
  img_enc.mlp.layers.{0,1}.*, img_enc.mlp.bns.{0,1}.*                   (vse-infty only)
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8
SCAN_AVE_PARAMS_F30K = 13_052_077  # docs/method.md §5.5, V = 8,481


def l2norm(x, dim=-1, eps=EPS):
    """x / (||x||_2 + eps) along `dim` (eps added to the norm, docs/method.md §5.4)."""
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


def xavier_uniform_(linear):
    """U(-r, r), r = sqrt(6) / sqrt(in + out); bias 0 (docs/method.md §5.1, 5.3)."""
    r = math.sqrt(6.0) / math.sqrt(linear.in_features + linear.out_features)
    with torch.no_grad():
        linear.weight.uniform_(-r, r)
        linear.bias.zero_()


class RegionMlp(nn.Module):
    """VSE-infinity's region MLP for `precomp_enc_type basic` (docs/method.md section 13.7),
    on every region: Linear(img_dim -> d/2) -> BatchNorm1d(d/2) -> ReLU -> Linear(d/2 -> d).

    A second BatchNorm1d(d) (`bns.1`, the last layer's) is built but never applied, as in
    VSE-infinity; it counts in the parameters (1,577,472 in all at img_dim 2048, d 1024).
    The batch norm normalises over every region of the batch in training mode.
    """

    def __init__(self, img_dim, embed_size):
        super().__init__()
        hidden = embed_size // 2
        self.layers = nn.ModuleList([nn.Linear(img_dim, hidden), nn.Linear(hidden, embed_size)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(hidden), nn.BatchNorm1d(embed_size)])

    def forward(self, x):
        """x: [B, R, img_dim] -> [B, R, d]."""
        b, r, _ = x.shape
        h = F.relu(self.bns[0](self.layers[0](x.reshape(b * r, -1))))
        return self.layers[1](h).view(b, r, -1)


class ImageEncoder(nn.Module):
    """Region features [B, R, img_dim] -> Linear (+ region MLP) -> (pool over regions) -> L2.

    pool=None keeps one embedding per region ([B, R, d], scan-ave);
    pool="mean" | "max" returns one embedding per image ([B, d], vse).
    mlp=True adds `RegionMlp` to the Linear's output (vse-infty).
    """

    def __init__(self, img_dim=2048, embed_size=1024, pool=None, mlp=False):
        super().__init__()
        if pool not in (None, "mean", "max", "gpo"):
            raise ValueError(f"image pooling must be None, 'mean', 'max' or 'gpo', got {pool!r}")
        self.pool = pool
        self.fc = nn.Linear(img_dim, embed_size)
        xavier_uniform_(self.fc)
        if mlp:
            self.mlp = RegionMlp(img_dim, embed_size)
        if pool == "gpo":
            from .gpo import Gpo

            self.gpool = Gpo()

    def forward(self, images):
        x = self.fc(images)
        if hasattr(self, "mlp"):
            x = x + self.mlp(images)
        if self.pool == "gpo":
            x = self.gpool(x, torch.full((x.size(0),), x.size(1), dtype=torch.int64))
        elif self.pool == "mean":
            x = x.mean(dim=1)
        elif self.pool == "max":
            x = x.max(dim=1)[0]
        return l2norm(x, dim=-1)


class TextEncoder(nn.Module):
    """Word ids [B, L] + lengths [B] -> Embedding(V, 300) -> Dropout(0.4) -> packed BiGRU
    -> average of the two directions -> per-word L2 ([B, L, d], scan-ave) or mean over
    the valid words then L2 ([B, d], pool="mean", vse).

    Positions at or beyond a caption's length are zeros in the per-word output. The
    backward direction starts at each caption's own last token (packing).
    """

    def __init__(self, vocab_size, word_dim=300, embed_size=1024, pool=None):
        super().__init__()
        if pool not in (None, "mean", "gpo"):
            raise ValueError(f"text pooling must be None, 'mean' or 'gpo', got {pool!r}")
        self.pool = pool
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.dropout = nn.Dropout(0.4)
        # GRU weights keep PyTorch's default init U(-1/sqrt(H), 1/sqrt(H)) (docs/method.md §5.2).
        self.cap_rnn = nn.GRU(word_dim, embed_size, 1, batch_first=True, bidirectional=True)
        with torch.no_grad():
            self.embed.weight.uniform_(-0.1, 0.1)
        if pool == "gpo":
            from .gpo import Gpo

            self.gpool = Gpo()

    def forward(self, ids, lengths):
        lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
        x = self.dropout(self.embed(ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.cap_rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.size(1))
        h = out.size(2) // 2
        words = (out[:, :, :h] + out[:, :, h:]) / 2
        if self.pool == "gpo":
            return l2norm(self.gpool(words, lengths), dim=-1)
        if self.pool == "mean":
            pooled = words.sum(dim=1) / lengths.to(words.device, words.dtype).view(-1, 1)
            return l2norm(pooled, dim=-1)
        return l2norm(words, dim=-1)


def scan_attention(words, regions, smooth=9.0):
    """Context vectors of regions attended by words (docs/method.md §5.3).

    words: [n, L, d], regions: [n, R, d] -> [n, L, d]
    a = LeakyReLU_0.1(regions . words) [n, R, L]; normalise over words (L2 + eps);
    softmax over regions of smooth * a; context = L2norm(sum_r alpha * v_r).
    """
    attn = torch.bmm(regions, words.transpose(1, 2))
    attn = F.leaky_relu(attn, 0.1)
    attn = l2norm(attn, dim=2)
    attn = F.softmax(attn.transpose(1, 2) * smooth, dim=2)
    return l2norm(torch.bmm(attn, regions), dim=-1)


class SimilarityHead(nn.Module):
    """Per (image, caption) pair: squared difference of attended context and words ->
    Linear(d -> 256) -> L2 -> mean over words -> L2 -> Linear(256 -> 1) -> tanh."""

    def __init__(self, embed_size=1024, sim_dim=256, smooth=9.0):
        super().__init__()
        self.smooth = smooth
        self.sim_tran_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        xavier_uniform_(self.sim_tran_w)
        xavier_uniform_(self.sim_eval_w)

    def forward(self, img_emb, cap_emb, cap_lens):
        """img_emb: [n_img, R, d], cap_emb: [n_cap, L, d], cap_lens: [n_cap] -> [n_img, n_cap]."""
        n_img = img_emb.size(0)
        cols = []
        for i in range(cap_emb.size(0)):
            n_word = int(cap_lens[i])
            cap_i = cap_emb[i, :n_word, :].unsqueeze(0).repeat(n_img, 1, 1)
            ctx = scan_attention(cap_i, img_emb, self.smooth)
            rep = l2norm(self.sim_tran_w((ctx - cap_i).pow(2)), dim=-1)
            rep = l2norm(rep.mean(dim=1), dim=-1)
            cols.append(torch.tanh(self.sim_eval_w(rep)))
        return torch.cat(cols, dim=1)


class ScanAve(nn.Module):
    """The released DBL backbone ("scan-ave", docs/method.md §5): 13,052,077 parameters at V = 8,481."""

    def __init__(self, vocab_size, img_dim=2048, word_dim=300, embed_size=1024, sim_dim=256):
        super().__init__()
        self.img_enc = ImageEncoder(img_dim, embed_size)
        self.txt_enc = TextEncoder(vocab_size, word_dim, embed_size)
        self.sim_enc = SimilarityHead(embed_size, sim_dim)

    def forward(self, images, captions, lengths):
        """images: [B, R, img_dim], captions: [B, L] ids, lengths: [B] -> scores [B_img, B_cap]."""
        img = self.img_enc(images)
        cap = self.txt_enc(captions, lengths)
        return self.sim_enc(img, cap, lengths)


class Vse(nn.Module):
    """Embedding backbone ("vse"): cosine score of pooled, L2-normalised embeddings."""

    def __init__(self, vocab_size, img_dim=2048, word_dim=300, embed_size=1024, img_pool="mean",
                 precomp_enc_type=None):
        super().__init__()
        if precomp_enc_type not in (None, "basic"):
            raise ValueError(f"precomp_enc_type must be None or 'basic', got {precomp_enc_type!r}")
        if precomp_enc_type == "basic":
            img_pool = "gpo"  # VSE-infinity pools with GPO
        self.img_enc = ImageEncoder(img_dim, embed_size, pool=img_pool,
                                    mlp=precomp_enc_type == "basic")
        # GPO (VSE-infinity) pools both sides; otherwise captions are mean-pooled.
        self.txt_enc = TextEncoder(vocab_size, word_dim, embed_size,
                                   pool="gpo" if img_pool == "gpo" else "mean")

    def forward(self, images, captions, lengths):
        """-> scores [B_img, B_cap] = img [B, d] @ cap [B, d]^T."""
        return self.img_enc(images) @ self.txt_enc(captions, lengths).t()


def build(name, vocab_size, **kw):
    """`scan-ave`, `vse` or `vse-infty` (kwargs go to the constructor)."""
    if name == "scan-ave":
        return ScanAve(vocab_size, **kw)
    if name == "vse":
        return Vse(vocab_size, **kw)
    if name == "vse-infty":
        return Vse(vocab_size, precomp_enc_type="basic", **kw)
    raise ValueError(f"unknown backbone {name!r}; expected 'scan-ave', 'vse' or 'vse-infty'")


def n_params(model):
    return sum(p.numel() for p in model.parameters())
