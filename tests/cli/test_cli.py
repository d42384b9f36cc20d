import hashlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from zerodce_jax import cli
from zerodce_jax.apps import enhance, enhance_files
from zerodce_jax.core import models
from zerodce_jax.formats import params_io, weights


def _save(path, h, w, seed=0, mode="RGB"):
  rng = np.random.default_rng(seed)
  arr = (rng.random((h, w, 3)) * 80).astype(np.uint8)  # dark
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(arr).convert(mode).save(path)


def _digest(folder):
  return {p: hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
  model = models.make_model("3-32-8", bias_init="torch")
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
  path = tmp_path_factory.mktemp("w") / "tiny.msgpack"
  params_io.save_params(str(path), params, arch=params_io.arch_of(model),
                        source="test")
  return str(path)


def test_folder_tree_bad_files_and_untouched_inputs(tmp_path, tiny_weights,
                                                    capsys):
  src = tmp_path / "in"
  _save(src / "a.png", 20, 30, 1)
  _save(src / "sub" / "b.jpg", 33, 17, 2)
  _save(src / "sub" / "deeper" / "c.png", 16, 16, 3, mode="RGBA")
  _save(src / "g.png", 12, 12, 4, mode="L")
  (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
  (src / "empty.png").write_bytes(b"")
  before = _digest(src)
  out = tmp_path / "out"
  rc = cli.main(["enhance", str(src), str(tmp_path / "missing.png"),
                 "-o", str(out), "--weights", tiny_weights, "--no-progress"])
  assert rc == 1
  err = capsys.readouterr().err
  assert "broken.jpg" in err and "empty.png" in err and "missing.png" in err
  assert _digest(src) == before  # inputs untouched
  assert (out / "a.png").is_file()
  assert (out / "sub" / "b.jpg").is_file()
  assert (out / "sub" / "deeper" / "c.png").is_file()
  c = Image.open(out / "sub" / "deeper" / "c.png")
  assert c.mode == "RGBA" and c.size == (16, 16)
  assert Image.open(out / "g.png").mode == "L"
  assert Image.open(out / "sub" / "b.jpg").size == (17, 33)


def test_never_overwrites_inputs(tmp_path, tiny_weights, capsys):
  _save(tmp_path / "x.png", 10, 10)
  before = _digest(tmp_path)
  rc = cli.main(["enhance", str(tmp_path / "x.png"), "-o", str(tmp_path),
                 "--weights", tiny_weights, "--no-progress"])
  assert rc == 1
  assert "would overwrite an input" in capsys.readouterr().err
  assert _digest(tmp_path) == before


def test_glob_format_suffix_compare(tmp_path, tiny_weights):
  for i in range(3):
    _save(tmp_path / f"p{i}.jpg", 24, 24, i)
  rc = cli.main(["enhance", str(tmp_path / "p*.jpg"), "-o",
                 str(tmp_path / "o"), "--format", "png", "--suffix", "_e",
                 "--compare", "--weights", tiny_weights, "--no-progress"])
  assert rc == 0
  names = sorted(p.name for p in (tmp_path / "o").iterdir())
  assert names == ["p0_e.png", "p0_e_compare.png", "p1_e.png",
                   "p1_e_compare.png", "p2_e.png", "p2_e_compare.png"]
  assert Image.open(tmp_path / "o" / "p0_e_compare.png").size == (56, 24)


def test_weights_errors(tmp_path, capsys, shared):
  _save(tmp_path / "x.png", 10, 10)
  assert cli.main(["enhance", str(tmp_path / "x.png"), "--weights",
                   str(tmp_path / "nope.msgpack")]) == 2
  assert "nope.msgpack" in capsys.readouterr().err
  pth = shared / "weights" / "zerodce_official_epoch99.pth"
  assert cli.main(["enhance", str(tmp_path / "x.png"), "--weights",
                   str(pth)]) == 2
  assert "zerodce convert" in capsys.readouterr().err


def test_mixed_sizes_do_not_recompile_per_image(tmp_path, tiny_weights):
  sizes = [(40, 50), (33, 61), (64, 64), (17, 9), (50, 40), (60, 2), (20, 20),
           (63, 1)]
  for i, (h, w) in enumerate(sizes):
    _save(tmp_path / "in" / f"{i}.png", h, w, i)
  jobs, errors = enhance_files.collect_jobs([str(tmp_path / "in")],
                                            str(tmp_path / "out"))
  assert not errors and len(jobs) == 8
  params, arch, _ = weights.load_weights(tiny_weights)
  en = enhance.Enhancer(models.DCENet(**arch), params, batch_size=8)
  ok, failed = enhance_files.enhance_paths(jobs, en, progress=False)
  assert (ok, failed) == (8, 0)
  assert en.traces == 1  # eight sizes, one 64x64 bucket, one batch


@pytest.mark.slow
def test_console_script_sample(tmp_path):
  """The README's main job, as a user runs it (a subprocess)."""
  out = tmp_path / "out"
  r = subprocess.run([sys.executable, "-m", "zerodce_jax", "enhance",
                      "--sample", "-o", str(out)], capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  assert (out / "sample_lowlight.jpg").is_file()
  before_after = Image.open(out / "sample_lowlight_compare.png")
  assert before_after.size[0] > 2 * 500


def test_help_explains():
  r = subprocess.run([sys.executable, "-m", "zerodce_jax", "enhance",
                      "--help"], capture_output=True, text=True, timeout=60)
  assert r.returncode == 0
  for word in ("--weights", "--scale-factor", "--format", "never overwritten"):
    assert word in r.stdout.replace("\n", " ")


def test_a_folder_of_damaged_files_reports_each_and_goes_on(tmp_path,
                                                            tiny_weights,
                                                            capsys):
  """Random, truncated and bit-flipped files of every kind beside good ones:
  one line per bad file, every good file enhanced, exit 1."""
  rng = np.random.default_rng(1)
  src = tmp_path / "in"
  src.mkdir()
  good = []
  for i, ext in enumerate((".png", ".jpg", ".bmp", ".tif")):
    _save(src / f"good{i}{ext}", 12, 10, seed=i)
    good.append(f"good{i}{ext}")
    data = (src / f"good{i}{ext}").read_bytes()
    (src / f"random{i}{ext}").write_bytes(rng.bytes(200))
    (src / f"cut{i}{ext}").write_bytes(data[:len(data) // 3])
  (src / "header_only.jpeg").write_bytes(b"\xff\xd8\xff")
  (src / "png_sig.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
  out = tmp_path / "out"
  rc = cli.main(["enhance", str(src), "-o", str(out), "--weights",
                 tiny_weights, "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  bad = sorted(p.name for p in src.iterdir() if p.name not in good)
  assert rc == 1
  assert sorted(os.path.basename(l.split(": ")[1]) for l in err) == bad, err
  assert sorted(p.name for p in out.iterdir()) == sorted(good)
