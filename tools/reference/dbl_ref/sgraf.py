"""SGRAF backbones ("sgr", "saf") in PyTorch, written from docs/method.md section 13.

Diao et al., "Similarity Reasoning and Filtration for Image-Text Matching" (AAAI 2021).
Computed the way the authors' code computes it (a Python loop over captions, each
caption scored against every image, float32), so that it is a fair benchmark peer.

Parameter names follow the authors' released models (state_dict order):
  img_enc.fc.*, txt_enc.embed.weight, txt_enc.cap_rnn.*,
  sim_enc.v_global_w.embedding_local.{0 (Linear), 1 (BatchNorm1d(36))}.*,
  sim_enc.v_global_w.embedding_global.{0 (Linear), 1 (BatchNorm1d(d))}.*,
  sim_enc.v_global_w.embedding_common.0.*,
  sim_enc.t_global_w.embedding_{local,global,common}.0.*,
  sim_enc.sim_tranloc_w.*, sim_enc.sim_tranglo_w.*, sim_enc.sim_eval_w.*,
  sim_enc.SGR_module.{0,1,2}.{graph_query_w,graph_key_w,sim_graph_w}.*  (sgr)
  sim_enc.SAF_module.attn_sim_w.*, sim_enc.SAF_module.bn.*              (saf)
BatchNorm layers also hold running_mean / running_var / num_batches_tracked buffers;
dbl keeps the first two under the same names (tools/import_torch.py copies them).
"""

import torch
import torch.nn as nn

from .models import ImageEncoder, TextEncoder, l2norm, scan_attention, xavier_uniform_

SGR_STEPS = 3


def l1norm(x, dim, eps=1e-8):
    """x / (sum |x| + eps) along `dim`."""
    return x / (x.abs().sum(dim=dim, keepdim=True) + eps)


class GlobalAttention(nn.Module):
    """VisualSA (bn=True: BatchNorm1d over the R regions and over the d features) or
    TextSA (bn=False): attention of the item's rows guided by their mean, then L2."""

    def __init__(self, embed_size, dropout=0.4, regions=None):
        super().__init__()
        bn = regions is not None

        def branch(channels):
            layers = [nn.Linear(embed_size, embed_size)]
            if bn:
                layers.append(nn.BatchNorm1d(channels))
            layers += [nn.Tanh(), nn.Dropout(dropout)]
            return nn.Sequential(*layers)

        self.embedding_local = branch(regions)
        self.embedding_global = branch(embed_size)
        self.embedding_common = nn.Sequential(nn.Linear(embed_size, 1))
        for seq in (self.embedding_local, self.embedding_global, self.embedding_common):
            for m in seq:
                if isinstance(m, nn.Linear):
                    xavier_uniform_(m)

    def forward(self, local, raw_global):
        """local: [n, k, d], raw_global: [n, d] -> [n, d]."""
        l_emb = self.embedding_local(local)
        g_emb = self.embedding_global(raw_global)
        common = l_emb * g_emb.unsqueeze(1)
        weights = torch.softmax(self.embedding_common(common).squeeze(2), dim=1)
        return l2norm((weights.unsqueeze(2) * local).sum(dim=1), dim=-1)


class GraphReasoning(nn.Module):
    """One SGR step over a pair's nodes [n, m, S]."""

    def __init__(self, sim_dim):
        super().__init__()
        self.graph_query_w = nn.Linear(sim_dim, sim_dim)
        self.graph_key_w = nn.Linear(sim_dim, sim_dim)
        self.sim_graph_w = nn.Linear(sim_dim, sim_dim)
        for m in (self.graph_query_w, self.graph_key_w, self.sim_graph_w):
            xavier_uniform_(m)

    def forward(self, x):
        q = self.graph_query_w(x)
        k = self.graph_key_w(x)
        edges = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
        return torch.relu(self.sim_graph_w(torch.bmm(edges, x)))


class AttentionFiltration(nn.Module):
    """SAF: sigmoid gates (through BatchNorm1d(1)), L1-normalised, weight the nodes."""

    def __init__(self, sim_dim):
        super().__init__()
        self.attn_sim_w = nn.Linear(sim_dim, 1)
        self.bn = nn.BatchNorm1d(1)
        xavier_uniform_(self.attn_sim_w)

    def forward(self, x):
        """x: [n, m, S] -> [n, S]."""
        gate = torch.sigmoid(self.bn(self.attn_sim_w(x).transpose(1, 2)))
        attn = l1norm(gate, dim=-1)
        return l2norm(torch.matmul(attn, x).squeeze(1), dim=-1)


class SimilarityHead(nn.Module):
    """`sim_enc`: global + local alignment vectors -> SGR / SAF -> sigmoid score."""

    def __init__(self, embed_size, sim_dim, module, regions=36, smooth=9.0, dropout=0.4):
        super().__init__()
        if module not in ("sgr", "saf"):
            raise ValueError(f"module must be 'sgr' or 'saf', got {module!r}")
        self.module = module
        self.smooth = smooth
        self.v_global_w = GlobalAttention(embed_size, dropout, regions)
        self.t_global_w = GlobalAttention(embed_size, dropout)
        self.sim_tranloc_w = nn.Linear(embed_size, sim_dim)
        self.sim_tranglo_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        for m in (self.sim_tranloc_w, self.sim_tranglo_w, self.sim_eval_w):
            xavier_uniform_(m)
        if module == "sgr":
            self.SGR_module = nn.ModuleList([GraphReasoning(sim_dim) for _ in range(SGR_STEPS)])
        else:
            self.SAF_module = AttentionFiltration(sim_dim)

    def forward(self, img_emb, cap_emb, cap_lens):
        """img_emb: [n_img, R, d], cap_emb: [n_cap, L, d] -> [n_img, n_cap]."""
        n_img = img_emb.size(0)
        img_glo = self.v_global_w(img_emb, img_emb.mean(dim=1))
        cols = []
        for i in range(cap_emb.size(0)):
            n_word = int(cap_lens[i])
            cap_i = cap_emb[i, :n_word, :].unsqueeze(0)
            cap_glo = self.t_global_w(cap_i, cap_i.mean(dim=1))
            cap_rep = cap_i.repeat(n_img, 1, 1)
            ctx = scan_attention(cap_rep, img_emb, self.smooth)
            sim_loc = l2norm(self.sim_tranloc_w((ctx - cap_rep).pow(2)), dim=-1)
            sim_glo = l2norm(self.sim_tranglo_w((img_glo - cap_glo).pow(2)), dim=-1)
            nodes = torch.cat([sim_glo.unsqueeze(1), sim_loc], 1)
            if self.module == "sgr":
                for step in self.SGR_module:
                    nodes = step(nodes)
                vec = nodes[:, 0, :]
            else:
                vec = self.SAF_module(nodes)
            cols.append(torch.sigmoid(self.sim_eval_w(vec)))
        return torch.cat(cols, dim=1)


class Sgraf(nn.Module):
    """"sgr" or "saf": scan-ave's encoders with the SGRAF similarity head."""

    def __init__(self, vocab_size, module, img_dim=2048, word_dim=300, embed_size=1024,
                 sim_dim=256, regions=36):
        super().__init__()
        self.img_enc = ImageEncoder(img_dim, embed_size)
        self.txt_enc = TextEncoder(vocab_size, word_dim, embed_size)
        self.sim_enc = SimilarityHead(embed_size, sim_dim, module, regions)

    def forward(self, images, captions, lengths):
        img = self.img_enc(images)
        cap = self.txt_enc(captions, lengths)
        return self.sim_enc(img, cap, lengths)
