"""VSE-infinity's Generalized Pooling Operator (Chen et al., CVPR 2021), written from
docs/method.md section 13.5.

Pooling weights come from the item's size alone: sin/cos positional encodings of width 32
-> bidirectional GRU(32 -> 32), directions averaged -> Linear(32 -> 1, no bias) ->
softmax over the valid positions at temperature 0.1. Each feature dimension is sorted
descending over the item's rows and the sorted values are summed with those weights.
Parameters: `{prefix}.gru.*` (PyTorch GRU names), `{prefix}.linear.weight`.
"""

import math

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

DIM = 32
TEMPERATURE = 0.1


def positional_encoding(n, dim=DIM):
    """[n, dim]: row t = [sin(t q_0), cos(t q_0), sin(t q_1), ...], q_i = exp(-2i ln(1e4) / dim)."""
    pe = torch.zeros(n, dim)
    t = torch.arange(0, n).unsqueeze(1).float()
    q = torch.exp(torch.arange(0, dim, 2, dtype=torch.float) * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(t * q)
    pe[:, 1::2] = torch.cos(t * q)
    return pe


class Gpo(nn.Module):
    def __init__(self, dim=DIM):
        super().__init__()
        self.gru = nn.GRU(dim, dim, 1, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(dim, 1, bias=False)

    def weights(self, lengths):
        """lengths: int64 [n] -> (weights [n, L_max, 1], valid mask [n, L_max, 1])."""
        n_max = int(lengths.max())
        pe = positional_encoding(n_max).to(self.linear.weight.dtype)
        mask = (torch.arange(n_max).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        x = pe.unsqueeze(0).repeat(lengths.size(0), 1, 1).masked_fill(~mask, 0)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=n_max)
        h = out.size(2) // 2
        scores = self.linear((out[:, :, :h] + out[:, :, h:]) / 2)
        scores = scores.masked_fill(~mask, -10000.0)
        return torch.softmax(scores / TEMPERATURE, dim=1), mask

    def forward(self, features, lengths):
        """features [n, L, d] (rows past each length ignored), lengths [n] -> [n, d]."""
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        w, mask = self.weights(lengths)
        x = features[:, : int(lengths.max()), :].masked_fill(~mask, -10000.0)
        x = x.sort(dim=1, descending=True)[0].masked_fill(~mask, 0.0)
        return (x * w).sum(dim=1)
