"""Hand-off to PyTorch: Model.state_dict() loads into the project's port
(tools/reference/dbl_ref) with strict names and reproduces dbl's scores."""

import sys

import numpy as np
import pytest

import dbl
from conftest import REPO

torch = pytest.importorskip("torch")
sys.path.insert(0, str(REPO / "tools" / "reference"))
from dbl_ref import models  # noqa: E402


def test_state_dict_reproduces_scores_in_the_pytorch_port(run, data):
    m = dbl.load(run, threads=1)
    sd = m.state_dict()
    assert all(v.dtype == np.float32 for v in sd.values())
    cfg = m.config
    net = models.ScanAve(m.vocab_size, img_dim=m.img_dim, word_dim=cfg["word_dim"],
                         embed_size=m.embed_dim, sim_dim=cfg["sim_dim"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    net.eval()
    feats = np.load(data / "test_ims.npy")
    caps = (data / "test_caps.txt").read_text().splitlines()[:20]
    ids = [m.tokenize(c)[0] for c in caps]
    lengths = [len(i) for i in ids]
    padded = np.zeros((len(ids), max(lengths)), np.int64)
    for r, i in enumerate(ids):
        padded[r, : len(i)] = i
    with torch.no_grad():
        want = net(torch.from_numpy(feats), torch.from_numpy(padded), lengths).numpy()
    got = m.score(feats, caps)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= 1e-5, rel
