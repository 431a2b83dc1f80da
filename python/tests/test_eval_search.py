"""dbl.evaluate against `dbl eval`, dbl.open_index against `dbl search`."""

import numpy as np
import pytest

import dbl
from conftest import cli, cli_error, cli_json


def test_evaluate_is_dbl_eval(run, tmp_path):
    out = tmp_path / "s.npy"
    cli("score", "--run", run, "--split", "test", "--threads", 1, "--out", out)
    want = cli_json("eval", "--sims", out, "--protocol", "f30k", "--json")
    got = dbl.evaluate(np.load(out), "f30k")
    assert got.pop("folds") == []
    assert got == want


@pytest.mark.parametrize("protocol", ["coco1k", "coco5k"])
def test_evaluate_coco_needs_testall(tmp_path, protocol):
    # A 5,000 x 25,000 matrix is 500 MB; the COCO protocols are checked on
    # the CLI's refusal of any other shape, with the same message.
    sims = np.random.default_rng(0).standard_normal((10, 50)).astype(np.float32)
    np.save(tmp_path / "s.npy", sims)
    with pytest.raises(dbl.BadInputError) as e:
        dbl.evaluate(sims, protocol)
    assert str(e.value) in cli_error("eval", "--sims", tmp_path / "s.npy", "--protocol", protocol)


def test_evaluate_bad_matrices():
    with pytest.raises(dbl.BadInputError, match="is NaN; scores must be finite"):
        dbl.evaluate(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(dbl.BadInputError, match="not a whole multiple"):
        dbl.evaluate(np.zeros((2, 3), np.float32))
    with pytest.raises(dbl.BadInputError, match="protocol: expected one of f30k, coco1k, coco5k"):
        dbl.evaluate(np.zeros((2, 4), np.float32), "f8k")


def test_search_text_is_dbl_search(index):
    want = cli_json("search", "--index", index, "--text", "a dog on the grass", "--k", 5,
                    "--threads", 1, "--json")
    got = dbl.open_index(index, threads=1).search_text("a dog on the grass", k=5)
    assert got == want
    assert len(got["hits"]) == 5


def test_search_image_is_dbl_search(index, data):
    want = cli_json("search", "--index", index, "--image-features", data / "test_ims.npy",
                    "--row", 2, "--k", 4, "--threads", 1, "--json")
    idx = dbl.open_index(index, threads=1)
    feats = np.load(data / "test_ims.npy")
    assert idx.search_image(feats[2], k=4) == want
    assert idx.search_image(feats[2:3], k=4) == want
    assert idx.search_image(row=2, k=4)["hits"][0]["row"] == want["hits"][0]["row"]
    assert idx.manifest["n_images"] == feats.shape[0]
    with pytest.raises(dbl.BadInputError, match="either features or row"):
        idx.search_image()
    with pytest.raises(dbl.BadInputError, match="image_row 99"):
        idx.search_image(row=99)
