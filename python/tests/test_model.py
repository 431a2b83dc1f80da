"""dbl.load / Model: loading, encoding, scoring (bitwise against `dbl score`),
bad inputs and the CLI's error messages."""

import pydoc

import numpy as np
import pytest

import dbl
from conftest import cli, cli_error


def test_load_reports_the_run(run):
    m = dbl.load(run, threads=1)
    assert (m.backbone, m.embed_dim, m.branch, m.tag) == ("scan-ave", 16, 1, "best")
    assert str(m.run) == str(run)
    assert m.img_dim > 0 and m.vocab_size >= m.vocab_len > 0
    assert m.config["backbone"] == "scan-ave"
    b0 = dbl.load(run, branch=0, tag="last", threads=1)
    assert (b0.branch, b0.tag) == (0, "last")
    assert "branch=1" in repr(m)


def bits(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.view(np.uint32)


@pytest.mark.parametrize("threads", [1, 2])
def test_score_split_is_bitwise_dbl_score(run, tmp_path, threads):
    out = tmp_path / "s.npy"
    cli("score", "--run", run, "--split", "test", "--threads", threads, "--out", out)
    want = np.load(out)
    got = dbl.load(run, threads=threads).score_split("test")
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(bits(got), bits(want))


def test_score_of_raw_inputs_is_bitwise_dbl_score(run, data, tmp_path):
    out = tmp_path / "s.npy"
    cli("score", "--run", run, "--split", "test", "--threads", 1, "--out", out)
    feats = np.load(data / "test_ims.npy")
    caps = (data / "test_caps.txt").read_text().splitlines()
    m = dbl.load(run, threads=1)
    got = m.score(feats, caps)
    assert np.array_equal(bits(got), bits(np.load(out)))
    # Other batches of the same inputs: equal to f32 rounding (images are
    # encoded in chunks of 128 and captions as one batch, whose GEMM shapes
    # set the last bit; `dbl score` passes the whole split, as above).
    sub = m.score(feats[3:7], caps[10:31])
    np.testing.assert_allclose(sub, got[3:7, 10:31], rtol=1e-5, atol=1e-6)


def test_encoders_shapes(run, data):
    m = dbl.load(run, threads=1)
    feats = np.load(data / "test_ims.npy")
    img = m.encode_images(feats)
    assert img.shape == (feats.shape[0], feats.shape[1], m.embed_dim)
    cap = (data / "train_caps.txt").read_text().splitlines()[0]
    rows, offsets, unknown = m.encode_captions([cap, cap + " zzqx"])
    ids, unk = m.tokenize(cap)
    assert unk == [] and ids[0] != ids[1]
    assert offsets.tolist() == [0, len(ids), 2 * len(ids) + 1]
    assert rows.shape == (offsets[-1], m.embed_dim)
    assert unknown == [[], ["zzqx"]]


def test_other_dtypes_and_layouts_are_converted(run, data):
    m = dbl.load(run, threads=1)
    feats = np.load(data / "test_ims.npy")[:4]
    caps = (data / "test_caps.txt").read_text().splitlines()[:6]
    want = m.score(feats, caps)
    # float64 holding the same values, Fortran order, a strided view.
    assert np.array_equal(m.score(feats.astype(np.float64), caps), want)
    assert np.array_equal(m.score(np.asfortranarray(feats), caps), want)
    wide = np.repeat(feats, 2, axis=2)
    view = wide[:, :, ::2]
    assert not view.flags.c_contiguous
    assert np.array_equal(m.score(view, caps), want)


def test_bad_inputs(run, data):
    m = dbl.load(run, threads=1)
    feats = np.load(data / "test_ims.npy")[:2]
    with pytest.raises(dbl.BadInputError, match="dtype int32 is not floating point"):
        m.score(feats.astype(np.int32), ["a dog"])
    with pytest.raises(dbl.BadInputError, match=r"expected a 3-D array \[N, R, D\], got shape \[2, "):
        m.score(feats.reshape(2, -1), ["a dog"])
    with pytest.raises(dbl.BadInputError, match="expected a numpy array"):
        m.score(feats.tolist(), ["a dog"])
    nan = feats.copy()
    nan[1, 0, 3] = np.nan
    with pytest.raises(dbl.BadInputError, match=r"image features: value \d+ is NaN"):
        m.encode_images(nan)
    wrong_d = np.zeros((2, feats.shape[1], feats.shape[2] + 1), np.float32)
    with pytest.raises(dbl.BadInputError, match="not a whole number of images"):
        m.score(wrong_d, ["a dog"])
    with pytest.raises(dbl.BadInputError, match="empty list"):
        m.score(feats, [])
    with pytest.raises(dbl.BadInputError, match="empty list"):
        m.encode_captions([])
    with pytest.raises(dbl.BadInputError, match="text query: empty or whitespace only"):
        m.score(feats, ["a dog", "  "])
    with pytest.raises(dbl.BadInputError, match="head_precision: expected one of f32, bf16"):
        m.score(feats, ["a dog"], head_precision="f16")
    with pytest.raises(dbl.BadInputError, match="split: expected one of dev, test, testall"):
        m.score_split("train")
    with pytest.raises(dbl.BadInputError, match='tag: expected "best" or "last"'):
        dbl.load(run, tag="first")
    # BadInputError is also a ValueError.
    with pytest.raises(ValueError):
        m.score(feats, [])


def test_errors_carry_the_cli_messages(run, tmp_path):
    with pytest.raises(dbl.BadInputError) as e:
        dbl.load(run, branch=7)
    assert str(e.value) == cli_error("score", "--run", run, "--branch", 7)
    missing = tmp_path / "nope"
    with pytest.raises(dbl.DblIOError) as e:
        dbl.load(missing)
    assert str(e.value) == cli_error("score", "--run", missing)
    assert isinstance(e.value, OSError)
    # A damaged checkpoint: its checksum no longer matches the manifest.
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    for w in bad.glob("checkpoints/**/branch1/model.safetensors"):
        raw = bytearray(w.read_bytes())
        raw[-1] ^= 1
        w.write_bytes(bytes(raw))
    with pytest.raises(dbl.CorruptCheckpointError) as e:
        dbl.load(bad)
    assert str(e.value) == cli_error("score", "--run", bad)


def test_docs_read_well():
    text = pydoc.render_doc(dbl.load)
    for word in ["run", "branch", "tag", "threads", "Raises", "dbl score"]:
        assert word in text
    assert "features" in (dbl.Model.score.__doc__ or "")
    assert dbl.Model.score.__text_signature__.startswith("($self, features, captions")
