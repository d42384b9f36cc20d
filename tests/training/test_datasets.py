"""The TFDS builders, end to end, on tiny fake manual folders."""

import json
import sys

import numpy as np
import pytest
from _support import optional
from PIL import Image

tfds = optional("tensorflow_datasets", extra="data")

from zerodce_jax import cli  # noqa: E402
from zerodce_jax.training import datasets  # noqa: E402


def _img(path, h=10, w=12, value=None, seed=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  if value is None:
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(
        np.uint8)
  else:
    arr = np.full((h, w, 3), value, np.uint8)
  Image.fromarray(arr).save(path)
  return arr


def _name(example):
  return example["file_name"].decode()  # TFDS Text -> bytes


def _build(name, manual, tmp_path):
  data = tmp_path / "data"
  datasets.build(name, manual_dir=str(manual), data_dir=str(data))
  return data


@pytest.mark.parametrize("name,folder", [("dicm", "DICM"), ("lime", "LIME"),
                                         ("mef", "MEF"), ("npe", "NPE"),
                                         ("vv", "VV")])
def test_unpaired(tmp_path, name, folder):
  manual = tmp_path / "manual"
  a = _img(manual / folder / "a.png", 9, 7, seed=1)
  _img(manual / folder / "b.jpg", 12, 5, seed=2)
  data = _build(name, manual, tmp_path)
  src = datasets.data_source(name, data_dir=str(data), split="test")
  assert len(src) == 2
  by_name = {_name(src[i]): src[i] for i in range(2)}
  assert by_name["b.jpg"]["image"].shape == (12, 5, 3)  # original size
  np.testing.assert_array_equal(by_name["a.png"]["image"], a)  # lossless
  assert "tensorflow" not in sys.modules


def test_lol_pairs(tmp_path):
  manual = tmp_path / "m"
  for split, n in (("our485", 3), ("eval15", 2)):
    for i in range(n):
      _img(manual / "LOL" / split / "low" / f"{i}.png", value=10 + i)
      _img(manual / "LOL" / split / "high" / f"{i}.png", value=200 + i)
  data = _build("lol", manual, tmp_path)
  train = datasets.data_source("lol", data_dir=str(data), split="train")
  test = datasets.data_source("lol", data_dir=str(data), split="test")
  assert (len(train), len(test)) == (3, 2)
  ex = [test[i] for i in range(2)]
  for e in ex:
    i = int(_name(e)[0])
    assert e["image"].max() == 10 + i and e["label"].min() == 200 + i


def test_sice_sequences_and_pairs(tmp_path):
  manual = tmp_path / "m" / "SICE"
  for part in ("Dataset_Part1", "Dataset_Part2"):
    for seq in ("1", "2"):
      _img(manual / part / "Label" / f"{seq}.jpg", value=120)
      for k, v in enumerate((20, 60, 200)):  # two darker, one brighter
        _img(manual / part / seq / f"{k}.png", value=v)
  data = _build("sice", tmp_path / "m", tmp_path)
  train = datasets.data_source("sice", data_dir=str(data), split="train")
  test = datasets.data_source("sice", data_dir=str(data), split="test")
  assert len(train) == 6  # every exposure of Part1
  assert len(test) == 4  # Part2 images darker than their reference
  for i in range(len(test)):
    e = test[i]
    assert e["image"].mean() < e["label"].mean()
    assert e["sequence"].decode() in ("1", "2")


def test_dark_face_boxes(tmp_path):
  manual = tmp_path / "m" / "DarkFace"
  _img(manual / "image" / "1.png", 20, 40)
  _img(manual / "image" / "2.png", 20, 40)
  (manual / "label").mkdir()
  (manual / "label" / "1.txt").write_text("2\n4 2 20 10\n0 0 40 20\n")
  data = _build("dark_face", tmp_path / "m", tmp_path)
  src = datasets.data_source("dark_face", data_dir=str(data), split="train")
  by = {_name(src[i]): src[i] for i in range(2)}
  np.testing.assert_allclose(by["1.png"]["faces"],
                             [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], atol=1e-6)
  assert bool(by["1.png"]["has_labels"]) and not bool(by["2.png"]["has_labels"])
  assert len(by["2.png"]["faces"]) == 0


def test_wrong_layout_says_what_is_expected(tmp_path, capsys):
  (tmp_path / "m" / "lol").mkdir(parents=True)  # wrong case, wrong depth
  rc = cli.main(["data", "build", "lol", "--manual-dir",
                 str(tmp_path / "m"), "--data-dir", str(tmp_path / "d")])
  assert rc == 2
  err = capsys.readouterr().err
  assert "LOL/our485/low" in err and "Expected layout" in err
  assert "Obtain it from" in err
  with pytest.raises(datasets.LayoutError, match="SICE/Dataset_Part1"):
    datasets.build("sice", manual_dir=str(tmp_path / "m"),
                   data_dir=str(tmp_path / "d"))
  assert cli.main(["data", "layout", "dark_face"]) == 0
  assert "DarkFace/label" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["lol", "dicm", "sice", "dark_face"])
def test_missing_or_empty_manual_dir_says_what_is_expected(tmp_path, capsys,
                                                           name):
  (tmp_path / "empty").mkdir()
  for manual, why in (("missing", "no such folder"), ("empty", "empty")):
    rc = cli.main(["data", "build", name, "--manual-dir",
                   str(tmp_path / manual), "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert rc == 2 and why in err and "Expected layout" in err, err
    assert "Traceback" not in err and "AssertionError" not in err


def test_training_reads_a_tfds_dataset(tmp_path):
  from zerodce_jax import training
  from zerodce_jax.training import config_utils
  manual = tmp_path / "m"
  for i in range(8):
    _img(manual / "DICM" / f"{i}.png", 20, 24, seed=i)
  data = _build("dicm", manual, tmp_path)
  config = config_utils.load_config("configs/smoke.py")
  config_utils.apply_overrides(config, [
      ("data.source", "tfds:dicm"), ("data.path", str(data)),
      ("data.split", "test"), ("data.image_size", "16"),
      ("num_steps", "3"), ("log_every", "1")])
  state = training.train(config, str(tmp_path / "w"),
                         progress=False)
  assert int(state.step) == 3
  rows = [json.loads(l) for l in (tmp_path / "w" / "metrics.jsonl").open()]
  assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)


def test_eval_on_a_tfds_dataset_equals_eval_on_its_folders(tmp_path, capsys):
  """`zerodce eval --dataset tfds:lol` scores the same pairs as the folders
  it was built from (PNG: lossless), and unpaired sets give LOE."""
  manual = tmp_path / "m"
  for split, n in (("our485", 1), ("eval15", 2)):
    for i in range(n):
      high = _img(manual / "LOL" / split / "high" / f"{i}.png", 16, 20,
                  seed=i)
      low = manual / "LOL" / split / "low" / f"{i}.png"
      low.parent.mkdir(parents=True, exist_ok=True)
      Image.fromarray((high * 0.25).astype(np.uint8)).save(low)
  data = _build("lol", manual, tmp_path)
  eval15 = manual / "LOL" / "eval15"
  assert cli.main(["eval", "--low", str(eval15 / "low"), "--high",
                   str(eval15 / "high"), "--json",
                   str(tmp_path / "f.json")]) == 0
  assert cli.main(["eval", "--dataset", "tfds:lol", "--data-dir", str(data),
                   "--json", str(tmp_path / "t.json")]) == 0
  f = json.loads((tmp_path / "f.json").read_text())["images"]
  t = json.loads((tmp_path / "t.json").read_text())["images"]
  assert sorted(r["image"] for r in t) == ["0.png", "1.png"]
  by_name = {r["image"]: r for r in t}
  for r in f:
    for k in ("psnr", "ssim", "mae"):
      assert by_name[r["image"] + ".png"][k] == pytest.approx(r[k], rel=1e-6)
  capsys.readouterr()
  _img(manual / "DICM" / "a.png", 9, 7, seed=1)
  data2 = _build("dicm", manual, tmp_path / "d")
  assert cli.main(["eval", "--dataset", "tfds:dicm:test", "--data-dir",
                   str(data2)]) == 0
  assert "loe" in capsys.readouterr().out
  assert cli.main(["eval", "--dataset", "tfds:lol"]) == 2
  assert "--data-dir" in capsys.readouterr().err
  assert cli.main(["eval"]) == 2
