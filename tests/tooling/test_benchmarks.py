"""The benchmark scripts run end to end in --quick mode, so they never rot."""

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks import harness as bench
from zerodce_jax.core import models
from zerodce_jax.formats import weights

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIELDS = {"model", "framework", "task", "height", "width", "batch", "dtype",
          "device", "threads", "median_s", "min_s", "compile_s"}


def test_flop_counts():
  # 7 convs: 3->32, 3x 32->32, 2x 64->32, 64->24, 3x3: 79,200 MACs/pixel
  assert bench.flops_per_pixel(models.ARCHITECTURES["zerodce"]) == 158_400
  # 1200x900: 171 GFLOP, the figure SPEC section 8 quotes
  assert bench.model_flops(models.ARCHITECTURES["zerodce"], 900, 1200) / 1e9 \
      == pytest.approx(171.07 + 0.10, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("script", [
    "infer.py", "roofline.py", "input_pipeline.py", "enhance_files.py",
    # the train step is timed in CI by `zerodce bench` (test below)
    pytest.param("train_step.py", marks=pytest.mark.full),
    pytest.param("sweep.py", marks=pytest.mark.full)])
def test_script_quick(tmp_path, script):
  extra = ["--vs-onnxruntime"] if script == "infer.py" else []
  r = subprocess.run([sys.executable, "-m", f"benchmarks.{script[:-3]}",
                      "--quick", "--out", str(tmp_path)] + extra,
                     capture_output=True,
                     text=True, timeout=600, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  name = script[:-3]
  doc = json.loads((tmp_path / f"{name}.json").read_text())
  assert doc["machine"]["cores"] >= 1
  if script == "infer.py":
    assert {"jax", "onnxruntime"} <= {r["framework"] for r in doc["records"]}
    assert "fastest peer (onnxruntime)" in r.stdout
  for rec in doc["records"]:
    if rec.get("task") == "enhance_files":
      assert rec["wall_s"] > 0 and rec["peak_rss_bytes"] > 2**20
      continue
    if "stage" in rec:
      assert rec["images_per_s"] > 0
    elif rec["task"] != "matmul_peak":
      assert FIELDS <= set(rec), FIELDS - set(rec)
      assert rec["median_s"] > 0


def test_ratios_pick_the_faster_torch_run():
  base = dict(task="infer", model="zerodce", height=9, width=9, batch=1,
              dtype="float32")
  recs = [dict(base, framework="jax", median_s=1.0),
          dict(base, framework="torch", flush_denormal=False, median_s=30.0),
          dict(base, framework="torch", flush_denormal=True, median_s=2.0)]
  (r,) = bench.ratios(recs)
  assert r["speedup_vs_best_torch"] == 2.0 == r["speedup_vs_best_peer"]
  assert r["best_peer"] == "torch (flush-denormal)"
  assert (r["torch_default_s"], r["torch_ftz_s"]) == (30.0, 2.0)
  # onnxruntime faster still: the fastest peer changes, torch's ratio stays
  (r,) = bench.ratios(recs + [dict(base, framework="onnxruntime",
                                   median_s=0.5)])
  assert r["best_peer"] == "onnxruntime" and r["speedup_vs_best_peer"] == 0.5
  assert r["speedup_vs_best_torch"] == 2.0 and r["onnxruntime_s"] == 0.5


def test_report_fills_the_readme_markers(tmp_path):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "report", ROOT / "benchmarks" / "report.py")
  report = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(report)
  res = tmp_path / "results"
  res.mkdir()
  rec = dict(model="zerodce", framework="jax", task="infer", height=9,
             width=12, batch=1, dtype="float32", device="cpu", threads=2,
             median_s=0.5, min_s=0.4, compile_s=0.1, images_per_s=2.0)
  torch_rec = dict(rec, framework="torch", flush_denormal=True, median_s=1.5)
  machine = {"cpu": "X", "cores": 2, "jax": "0", "backend": "cpu",
             "device_kind": "cpu", "date": "2026-11-25"}
  (res / "infer.json").write_text(json.dumps(
      {"machine": machine, "records": [rec, torch_rec]}))
  readme = tmp_path / "README.md"
  readme.write_text("a\n<!-- bench:start -->\nold\n<!-- bench:end -->\nb\n")
  assert report.main(["--results", str(res), "--readme", str(readme)]) == 0
  text = readme.read_text()
  assert "old" not in text and text.endswith("b\n")
  assert "3.00x (torch (flush-denormal))" in text


def _report_module():
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "report", ROOT / "benchmarks" / "report.py")
  report = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(report)
  return report


def test_report_fills_inline_figures_from_their_json(tmp_path):
  report = _report_module()
  res = tmp_path / "results"
  res.mkdir()
  machine = {"cpu": "X", "cores": 2, "jax": "0", "backend": "cpu",
             "device_kind": "cpu", "date": "2026-12-02T04:00:00"}
  rec = dict(model="zerodce-default", width=1152, height=864,
             first_preview_s=3.0, default_strength_change_s=0.234,
             default_exposure_change_s=0.3, plain_strength_change_s=0.1)
  text = "in <!-- figure:serve_preview -->old<!-- /figure -->."
  # no JSON yet: left as it is
  assert report.fill_inline(text, str(res)) == text
  (res / "serve.json").write_text(json.dumps(
      {"machine": machine, "records": [rec]}))
  assert report.fill_inline(text, str(res)) == (
      "in <!-- figure:serve_preview -->0.23 s with the default denoising, "
      "0.10 s without, for a 1152x864 photo (2-core X, 2026-12-02)"
      "<!-- /figure -->.")
  with pytest.raises(KeyError, match="unknown inline figure"):
    report.fill_inline("<!-- figure:nope -->x<!-- /figure -->", str(res))


def test_the_readme_inline_figures_match_their_json():
  report = _report_module()
  assert not [p for p in report.check() if "inline" in p]


def test_report_train_table_names_the_fastest_peer_mode():
  rec = dict(model="zerodce", framework="jax", task="train_step", height=256,
             width=256, batch=8, dtype="float32", devices=1, median_s=2.0,
             compile_s=3.0, images_per_s=4.0)
  peers = [dict(rec, framework="torch", mode=m, devices=None,
                flush_denormal=True, median_s=t)
           for m, t in (("eager", 4.0), ("channels_last", 3.0),
                        ("compile", 2.5))]
  table = _report_module().train_table({"records": [rec] + peers})
  assert "| torch compile (flush-denormal) | zerodce | 8 x 256 | - |" in table
  assert "1.25x (torch compile (flush-denormal))" in table


@pytest.mark.slow
@pytest.mark.full  # tooling for the profile table (docs/tests.md)
def test_profile_quick_feeds_the_report(tmp_path):
  """benchmarks/op_profile.py at tiny sizes: a trace of inference and both
  train steps, every layer with every algorithm, and the README table."""
  r = subprocess.run([sys.executable, "-m", "benchmarks.op_profile",
                      "--quick", "--out",
                      str(tmp_path)],
                     capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  doc = json.loads((tmp_path / "op_profile.json").read_text())
  assert doc["matmul_peak_gflop_per_s"] > 0
  assert {o["kind"] for o in doc["inference_ops"]} >= {"fusion"}
  assert set(doc["train_step_ops"]) == {"zerodce", "zerodce++"}
  by_layer = {}
  for x in doc["layers"]:
    by_layer.setdefault((x["batch"], x["layer"]), set()).add(x["algorithm"])
  fwd = {"xla", "im2col", "winograd_f2x3"}
  grads = {"xla", "input_grad", "kernel_grad_xla", "kernel_grad_scan"}
  # inference size: every forward algorithm, split on the skip layers,
  # multiply-adds on the RGB layer; training size: the gradients
  assert by_layer[1, 1] == fwd | {"multiply_adds"}
  assert by_layer[1, 4] == fwd and by_layer[1, 5] == fwd | {"split_concat"}
  assert by_layer[2, 1] == by_layer[2, 7] == grads
  first = doc["layers"][0]  # layer 1, 3 -> 32, at 36x24
  assert first["gflop"] == pytest.approx(2 * 9 * 3 * 32 * 36 * 24 / 1e9)
  assert first["gflop_per_s"] == pytest.approx(first["gflop"] /
                                               first["median_s"])
  diffs = [x["max_abs_diff"] for x in doc["layers"]
           if x["max_abs_diff"] is not None]
  assert diffs and max(diffs) < 1e-5
  table = _report_module().profile_table(doc)
  assert "| winograd_f2x3 |" in table and "Zero-DCE inference" in table


@pytest.mark.slow
def test_accelerator_command_quick(tmp_path):
  """The one command for an accelerator, at tiny sizes on the CPU: every
  part writes its JSON, the recipe part trains (device-side pipeline) and
  saves loadable weights, and the equivalence check runs."""
  from zerodce_jax.formats import params_io
  weights_file = tmp_path / "w.msgpack"
  model = models.make_model("zerodce")
  import jax
  import jax.numpy as jnp
  import numpy as np
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
  params_io.save_params(str(weights_file), params, arch=params_io.arch_of(model))
  x = np.random.default_rng(0).random((12, 16, 3)).astype(np.float32)
  want = np.asarray(model.apply({"params": params}, x[None])[0])[0]
  np.savez(tmp_path / "ref.npz", **{"img/input": x,
                                     "img/zerodce_enhanced": want})
  out = tmp_path / "out"
  r = subprocess.run([sys.executable, "-m", "benchmarks.accelerator",
                      "--quick",
                      "--out", str(out), "--check", str(weights_file),
                      str(tmp_path / "ref.npz")],
                     capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  facts = json.loads((out / "facts.json").read_text())
  assert {p["dtype"] for p in facts["peaks"]} == {"float32", "bfloat16"}
  assert all(p["gflop_per_s"] > 0 for p in facts["peaks"])
  assert {e["precision"] for e in facts["equivalence"]} == {"default",
                                                            "highest"}
  assert max(e["max_abs_diff"] for e in facts["equivalence"]) < 1e-5
  infer = json.loads((out / "infer.json").read_text())
  jax_rows = [r for r in infer if r.get("framework") == "jax"]
  assert {r["model"] for r in jax_rows} == {"zerodce", "zerodce++(s=12)"}
  assert all(r["median_s"] > 0 and "error" not in r for r in jax_rows)
  for r in infer:
    if r.get("framework") == "torch" and "error" not in r:
      assert r["max_abs_diff_vs_jax"] < 1e-4
  train = json.loads((out / "train_step.json").read_text())
  assert any(r.get("framework") == "jax" and r["median_s"] > 0
             for r in train)
  roof = json.loads((out / "roofline.json").read_text())
  assert roof and all(0 < r["fraction_of_peak"] for r in roof)
  (recipe,) = json.loads((out / "recipe.json").read_text())
  assert recipe["finished"] and recipe["steps"] == recipe["total_steps"] == 4
  assert recipe["overrides"]["data.pipeline"] == "device"
  _, arch, source = weights.load_weights(str(out / "zerodce_official.msgpack"))
  assert arch["depth"] == 7 and "step 4 of 4" in source


def test_ratios_name_the_fastest_torch_mode():
  base = dict(task="infer", model="zerodce", height=9, width=9, batch=1,
              dtype="float32")
  recs = [dict(base, framework="jax", median_s=1.0),
          dict(base, framework="torch", mode="eager", flush_denormal=True,
               median_s=3.0),
          dict(base, framework="torch", mode="channels_last",
               flush_denormal=True, median_s=1.6),
          dict(base, framework="torch", mode="compile", flush_denormal=False,
               median_s=1.25),
          dict(base, framework="torch", mode="eager", flush_denormal=False,
               median_s=40.0)]
  (r,) = bench.ratios(recs)
  assert r["best_peer"] == "torch compile (default)"
  assert r["speedup_vs_best_peer"] == 1.25
  assert (r["torch_default_s"], r["torch_ftz_s"]) == (1.25, 1.6)


@pytest.mark.slow
def test_zerodce_bench_times_training_as_zerodce_train_runs_it(tmp_path):
  env = {k: v for k, v in __import__("os").environ.items()
         if k != "XLA_FLAGS"}
  out = tmp_path / "b.json"
  r = subprocess.run([sys.executable, "-m", "zerodce_jax", "bench",
                      "--models", "zerodce", "--sizes", "48x32",
                      "--tasks", "infer,train_step", "--train-batch", "2",
                      "--devices", "2", "--repeats", "1", "--scale-factors",
                      "1", "--vs-onnxruntime", "--json", str(out)],
                     capture_output=True, text=True, timeout=600, cwd=ROOT,
                     env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  recs = json.loads(out.read_text())["records"]
  steps = [x for x in recs if x["task"] == "train_step"]
  assert sorted(x["devices"] for x in steps) == [1, 2]
  assert "the fastest peer (onnxruntime)" in r.stdout


def test_zerodce_bench_refuses_unknown_torch_modes(tmp_path, capsys):
  from zerodce_jax import cli
  rc = cli.main(["bench", "--torch-modes", "eager,fast", "--json",
                 str(tmp_path / "b.json")])
  assert rc == 2
  assert "--torch-modes wants some of eager,channels_last,compile" in (
      capsys.readouterr().err)
  assert not (tmp_path / "b.json").exists()


def test_quality_merge_replaces_one_models_rows_in_place():
  from benchmarks import quality
  m_old = {"cpu": "A", "cores": 2, "date": "2026-12-01"}
  m_new = {"cpu": "B", "cores": 2, "date": "2026-12-02"}
  rows = lambda tag, *models: {f"{m} | {mode}": {"psnr": tag}  # noqa: E731
                               for m in models for mode in ("plain", "x")}
  old = {"machine": m_old, "settings": {"every": 2}, "counts": {
      "paired": 50}, "by_hand": {"reachable": 1},
         **{s: rows(1, "a", "pp", "official") for s in quality.SECTIONS}}
  new = {"machine": m_new, "settings": {"every": 2}, "counts": {"paired": 50},
         **{s: rows(2, "pp") for s in quality.SECTIONS}}
  out = quality.merge(old, new, ["pp"])
  for s in quality.SECTIONS:
    assert list(out[s]) == list(old[s])  # the old order
    assert [r["psnr"] for r in out[s].values()] == [1, 1, 2, 2, 1, 1]
  assert out["by_hand"] == {"reachable": 1}  # the main model's, kept
  assert out["counts"] == old["counts"]
  assert out["runs"] == {"a": m_old, "official": m_old, "pp": m_new}
  with pytest.raises(SystemExit, match="settings differ"):
    quality.merge(old, {**new, "settings": {"every": 1}}, ["pp"])
  with pytest.raises(SystemExit, match="counts differ"):
    quality.merge(old, {**new, "counts": {"paired": 100}}, ["pp"])
