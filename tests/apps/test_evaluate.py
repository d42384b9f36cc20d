import json

import numpy as np
from PIL import Image

from zerodce_jax import cli


def _save(path, arr):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(arr).save(path)


def test_eval_paired_and_unpaired(tmp_path, capsys):
  rng = np.random.default_rng(0)
  for name in ("a", "b"):
    high = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    _save(tmp_path / "high" / f"{name}.png", high)
    _save(tmp_path / "low" / f"{name}.jpg", (high * 0.2).astype(np.uint8))
  rc = cli.main(["eval", "--low", str(tmp_path / "low"), "--high",
                 str(tmp_path / "high"), "--json", str(tmp_path / "r.json"),
                 "--csv", str(tmp_path / "r.csv")])
  assert rc == 0
  out = capsys.readouterr().out
  assert "psnr" in out and "mean of 2" in out
  res = json.loads((tmp_path / "r.json").read_text())
  assert [r["image"] for r in res["images"]] == ["a", "b"]
  for r in res["images"]:
    assert r["brightness_out"] > r["brightness_in"]
    assert 0 < r["ssim"] <= 1 and r["mae"] > 0
  assert res["mean"]["psnr"] == np.mean([r["psnr"] for r in res["images"]])
  assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
  # both SSIM protocols by default: "ssim" (Gaussian, as before) and
  # "ssim_paper" (scikit-image's default); --ssim picks one
  assert all(0 < r["ssim_paper"] <= 1 and r["ssim_paper"] != r["ssim"]
             for r in res["images"])
  for proto, keys in (("paper", {"ssim_paper"}), ("gaussian", {"ssim"})):
    rc = cli.main(["eval", "--low", str(tmp_path / "low"), "--high",
                   str(tmp_path / "high"), "--ssim", proto, "--json",
                   str(tmp_path / f"{proto}.json")])
    one = json.loads((tmp_path / f"{proto}.json").read_text())
    assert rc == 0 and {"ssim", "ssim_paper"} & set(one["mean"]) == keys
    assert one["meta"]["ssim"] == proto
  rc = cli.main(["eval", "--low", str(tmp_path / "low")])
  assert rc == 0 and "loe" in capsys.readouterr().out


def test_eval_reports_unmatched_and_mismatched(tmp_path, capsys):
  img = np.zeros((8, 8, 3), np.uint8)
  _save(tmp_path / "low" / "a.png", img)
  _save(tmp_path / "low" / "only_low.png", img)
  _save(tmp_path / "high" / "a.png", img)
  _save(tmp_path / "high" / "only_high.png", img)
  assert cli.main(["eval", "--low", str(tmp_path / "low"), "--high",
                   str(tmp_path / "high")]) == 2
  err = capsys.readouterr().err
  assert "only_low.png" in err and "only_high.png" in err
  (tmp_path / "low" / "only_low.png").unlink()
  (tmp_path / "high" / "only_high.png").unlink()
  _save(tmp_path / "high" / "a.png", np.zeros((8, 9, 3), np.uint8))
  assert cli.main(["eval", "--low", str(tmp_path / "low"), "--high",
                   str(tmp_path / "high")]) == 2
  err = capsys.readouterr().err
  assert "a.png is 8x8" in err and "9x8" in err


def test_compare_models_identical_and_different(tmp_path):
  import jax
  import jax.numpy as jnp

  from zerodce_jax.apps import enhance, evaluate
  from zerodce_jax.core import models
  rng = np.random.default_rng(0)
  _save(tmp_path / "x.png", (rng.random((16, 20, 3)) * 60).astype(np.uint8))
  model = models.make_model("3-32-8", bias_init="torch")
  p1 = model.init(jax.random.key(1), jnp.zeros((1, 8, 8, 3)))["params"]
  p2 = model.init(jax.random.key(2), jnp.zeros((1, 8, 8, 3)))["params"]
  a, b = enhance.Enhancer(model, p1), enhance.Enhancer(model, p2)
  paths = [("x.png", str(tmp_path / "x.png"))]
  same, triples = evaluate.compare_models(a, a, paths)
  assert same[0]["psnr_vs_ref"] == np.inf and same[0]["ssim_vs_ref"] > 0.999
  assert len(triples) == 1 and triples[0][0].shape == (16, 20, 3)
  diff, _ = evaluate.compare_models(a, b, paths)
  assert np.isfinite(diff[0]["psnr_vs_ref"])
