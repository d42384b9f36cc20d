"""``zerodce sweep``: K variants in one vmapped step train as K separate runs;
exact resume after SIGKILL; NaN isolation; devices; bad grids; the report.

Tiny shapes: the smoke config at 16x16, 16 synthetic images, 20 steps.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from zerodce_jax import cli, training
from zerodce_jax.formats import checkpoints, params_io, weights
from zerodce_jax.training import config_utils, sweep

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.py")
SWEEP_SMOKE = str(ROOT / "configs" / "sweep_smoke.py")
TINY = {"num_steps": 20, "data.image_size": 16, "data.num_synthetic": 16,
        "loss.exposure_patch": 8, "log_every": 2, "checkpoint_every": 5,
        "sample_every": 0, "keep_checkpoints": 1}
DEVICE_PIPELINE = {"data.pipeline": "device", "data.crop_size": 12,
                   "data.random_flip": True, "data.exposure_mixing": True,
                   "loss.exposure_patch": 4}
# A: the smoke recipe; B: every traced field changed at once
A = dict(name="a", overrides={})
B = dict(name="b", overrides={
    "seed": 1, "loss.weights.spa": 0.0, "optim.learning_rate": 3e-3,
    "loss.exposure_level": 0.5, "optim.clip_norm": 0.0,
    "optim.weight_decay": 0.0})


@pytest.fixture(autouse=True, scope="module")
def _fast_compiles():
  """XLA's cheap compile (flax models_test.py): ten compiled steps here."""
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations",
                    os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") == "1")


def _config(path=SMOKE, variants=None, **overrides):
  config = config_utils.load_config(path)
  config_utils.apply_overrides(config, [(k, str(v)) for k, v in
                                        {**TINY, **overrides}.items()])
  if variants is not None:
    with config.unlocked():
      config.sweep = {"variants": variants, "seeds": ()}
  return config


def _close(a, b, rtol=1e-5, atol=5e-6):
  # float32 rounding (grouped vs plain convolutions, other reduction
  # orders), amplified by Adam on near-zero gradients over 20 steps: a few
  # 1e-6 on params of ~0.02, where a wrong seed, weight or learning rate
  # moves them by ~1e-3
  jax.tree_util.tree_map(
      lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol),
      a, b)


def _rows(path):
  return [json.loads(line) for line in open(path)]


_RUNS = {}


def _runs(pipeline, tmp_path_factory):
  """Separate ``loop.train`` runs of B (and A) and one sweep of both on the 4
  devices (a 2 x 2 mesh: variants split, each data-parallel), per input
  pipeline; computed once per module."""
  if pipeline not in _RUNS:
    extra = DEVICE_PIPELINE if pipeline == "device" else {}
    work = tmp_path_factory.mktemp(f"runs_{pipeline}")
    config = _config(variants=[A, B], **extra)
    doc, params = sweep.run_sweep(config, str(work / "sweep"),
                                  strategy="vmap", progress=False)
    train = {}
    # host: b alone (it changes every traced field), device: both
    for v in sweep.expand_variants(config)[pipeline == "host":]:
      train[v.name] = training.train(v.config, str(work / v.name),
                                     progress=False).params
    _RUNS[pipeline] = dict(work=work, doc=doc, params=params, train=train)
  return _RUNS[pipeline]


@pytest.mark.parametrize("pipeline", ["host", "device"])
def test_sweep_equals_separate_train_runs(pipeline, tmp_path_factory):
  """Variant k of one vmapped sweep == ``zerodce train`` of its config:
  seeds (init, data order, device-side crops/flips/exposures), loss
  weights (a zero one too), E, learning rate, clip off, no weight decay."""
  r = _runs(pipeline, tmp_path_factory)
  work = r["work"]
  for name in r["train"]:
    _close(r["params"][name], r["train"][name])
    saved, arch, _ = params_io.load_params(
        str(work / "sweep" / name / "weights.msgpack"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, saved,
                           r["params"][name])
    ours = _rows(work / "sweep" / name / "metrics.jsonl")
    theirs = _rows(work / name / "metrics.jsonl")
    assert [x["step"] for x in ours] == [x["step"] for x in theirs]
    assert set(ours[0]) == set(theirs[0])  # b has no spa, as train
    for x, y in zip(ours, theirs):
      for k in set(x) - {"step", "images_per_s"}:
        np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-7)
  assert "spa" not in ours[0]
  # the variants really differ
  diff = jax.tree_util.tree_map(lambda x, y: float(np.abs(x - y).max()),
                                r["params"]["a"], r["params"]["b"])
  assert max(jax.tree_util.tree_leaves(diff)) > 1e-3
  doc = json.loads((work / "sweep" / "variants.json").read_text())
  assert [(v["name"], v["status"], v["weights"]) for v in doc["variants"]] \
      == [("a", "done", "a/weights.msgpack"), ("b", "done",
                                               "b/weights.msgpack")]
  assert doc["variants"][1]["overrides"]["optim.learning_rate"] == 3e-3
  assert len(doc["groups"]) == 1
  # loadable as `zerodce enhance --weights W/<variant>` (file or folder)
  assert weights.load_weights(str(work / "sweep" / "b"))[1]["depth"] == 3


def test_unrolled_on_one_device_equals_vmapped_on_four(tmp_path,
                                                      tmp_path_factory):
  """The variant axis split over 2 x 2 devices (vmap) == both variants on
  one device, one copy of the step each (the CPU strategy)."""
  r = _runs("host", tmp_path_factory)
  _, one = sweep.run_sweep(_config(variants=[A, B]), str(tmp_path),
                           devices=jax.local_devices()[:1],
                           strategy="unroll", progress=False)
  _close(one, r["params"])
  # the same workdir with another learning rate for b: refused, not mixed
  other = dict(B, overrides={**B["overrides"], "optim.learning_rate": 1e-2})
  with pytest.raises(checkpoints.CheckpointError, match="another sweep"):
    sweep.run_sweep(_config(variants=[A, other]), str(tmp_path),
                    progress=False)


def test_nan_in_one_variant_stops_that_variant_only(tmp_path, capsys,
                                                    tmp_path_factory):
  """4 variants, one per device: a NaN exposure level (non-finite at step
  1) and a huge learning rate (at step 2) stop alone; the others train as
  separate runs would."""
  r = _runs("device", tmp_path_factory)
  nan_e = dict(name="nan_e", overrides={"loss.exposure_level": "nan"})
  huge = dict(name="huge_lr", overrides={"optim.learning_rate": 1e30})
  config = _config(variants=[A, nan_e, B, huge], **DEVICE_PIPELINE)
  doc, params = sweep.run_sweep(config, str(tmp_path), strategy="vmap",
                                progress=False)
  err = capsys.readouterr().err
  status = {v["name"]: (v["status"], v["diverged_at_step"], v["weights"])
            for v in doc["variants"]}
  assert status == {"a": ("done", None, "a/weights.msgpack"),
                    "b": ("done", None, "b/weights.msgpack"),
                    "nan_e": ("diverged", 1, None),
                    "huge_lr": ("diverged", 2, None)}
  assert json.loads((tmp_path / "variants.json").read_text())[
      "variants"] == doc["variants"]
  assert "variant nan_e diverged" in err and "variant huge_lr" in err
  for name in ("a", "b"):
    _close(params[name], r["params"][name])
  assert not (tmp_path / "nan_e" / "weights.msgpack").exists()
  # the NaN variant never moved from its initialisation
  init = sweep.init_sweep_state(
      sweep.expand_variants(config)[1:2],
      training.model_from_config(config), sweep.make_sweep_optimizer(
          learning_rate=1e-3, weight_decay=1e-4, clip_norm=0.1))
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_array_equal(x[0], y),
                         init.train.params, params["nan_e"])
  assert all(np.isfinite(x).all()
             for x in jax.tree_util.tree_leaves(params["huge_lr"]))


def test_resume_after_sigkill_is_exact(tmp_path, capsys, tmp_path_factory):
  """SIGKILL a `zerodce sweep` process once it has checkpointed; the
  restarted sweep ends bit-identical to an uninterrupted run of the same
  command, with no duplicate metrics rows.

  The uninterrupted run is a fresh process too: this one has compiled the
  initialisers (``jax.random``) earlier in the session with XLA's full
  optimisations, which round the initial params differently by one ulp.
  """
  env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as here

  def command(work):
    return [sys.executable, "-m", "zerodce_jax", "sweep", "--config",
            SWEEP_SMOKE, "--workdir", str(work), "--no-progress",
            "--strategy", "vmap", f"--config.sweep.variants={[A, B]!r}",
            *(f"--config.{k}={v}" for k, v in TINY.items())]

  ref = tmp_path / "uninterrupted"
  done = subprocess.run(command(ref), capture_output=True, text=True,
                        env=env, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  # the tiny run lasts moments after compiling: on a loaded machine the kill
  # can land after its last checkpoint; then try again in a fresh folder
  for attempt in range(4):
    work = tmp_path / f"killed{attempt}"
    ckpt = work / "groups" / "g0" / "checkpoints"
    proc = subprocess.Popen(command(work), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
      if ckpt.is_dir() and any(n.isdigit() for n in os.listdir(ckpt)):
        break
      time.sleep(0.002)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if finished:
      assert proc.returncode == 0, proc.stderr.read()[-3000:]
      continue
    steps = [int(n) for n in os.listdir(ckpt) if n.isdigit()]
    killed_at = max(steps) if steps else 0
    if 0 < killed_at < TINY["num_steps"]:
      break
  else:
    pytest.fail("every kill landed after the run's last checkpoint")
  capsys.readouterr()
  again, params = sweep.run_sweep(  # what the same command runs
      _config(variants=[A, B]), str(work), strategy="vmap", progress=False)
  assert f"resumed from {work}/groups/g0/checkpoints/{killed_at}" in (
      capsys.readouterr().out)
  assert [v["status"] for v in again["variants"]] == ["done", "done"]
  r = _runs("host", tmp_path_factory)
  for name in ("a", "b"):
    want, _, _ = params_io.load_params(str(ref / name / "weights.msgpack"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params[name], want)
    got, _, _ = params_io.load_params(str(work / name / "weights.msgpack"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, params[name])
    _close(params[name], r["params"][name])  # and the in-process sweep's
    # the same rows, each once (the killed run's rows after its checkpoint
    # were dropped on resume and logged again)
    ours, theirs = (
        [{k: v for k, v in x.items() if k != "images_per_s"}
         for x in _rows(w / name / "metrics.jsonl")]
        for w in (work, ref))
    assert [x["step"] for x in ours] == [x["step"] for x in theirs]
    assert ours == theirs


@pytest.mark.parametrize("args, message", [
    (["--grid", "loss.weights.nope=0,1"], "no such config field"),
    (["--grid", "model.arch=3-32-8,7-16-8"], "shape-changing field"),
    (["--grid", "data.image_size=16,32"], "shape-changing field"),
    (["--grid", "loss.weights.spa="], "an empty list"),
    (["--grid", "optim.learning_rate=fast"], "could not convert"),
    (["--seeds", ","], "an empty list"),
    (["--seeds", "0,x"], "not a list of integers"),
    (["--config.sweep.variants=[{'name': 'a', 'overrides': {'nope': 1}}]"],
     "no config field 'nope'"),
])
def test_bad_grids_are_one_clear_line(args, message, capsys, tmp_path):
  rc = cli.main(["sweep", "--config", SWEEP_SMOKE, "--workdir",
                 str(tmp_path), *args])
  err = capsys.readouterr().err
  assert rc == 2, err
  assert err.count("\n") == 1 and message in err, err
  assert err.startswith("zerodce sweep: ") and not os.listdir(tmp_path)


def test_variants_configs_and_groups():
  """The papers' studies as sweep configs: one group for the loss
  ablation and the seeds, one per shape for the architectures; each
  variant's config is the single-run config it stands for."""
  def load(spec):
    return config_utils.load_config(str(ROOT / "configs" / spec))

  loss = sweep.expand_variants(load("sweep_loss_ablation.py"))
  assert [v.name for v in loss] == ["full", "no_spa", "no_exp", "no_col",
                                    "no_tv"]
  assert len(sweep.group_variants(loss)) == 1
  assert (loss[3].config.to_dict()
          == load("ablation_loss.py:no_col").to_dict())
  arch = sweep.expand_variants(load("sweep_arch_ablation.py"),
                               seeds=[0, 1])
  groups = sweep.group_variants(arch)
  assert [[v.name for v in g] for g in groups][0] == ["3-32-8-seed0",
                                                      "3-32-8-seed1"]
  assert len(groups) == 5
  assert arch[2].config.to_dict() == load("ablation_arch.py:7-16-8").to_dict()
  seeds = sweep.expand_variants(load("sweep_seeds.py"))
  assert [v.config.seed for v in seeds] == [0, 1, 2, 3]
  assert len(sweep.group_variants(seeds)) == 1
  grid = sweep.expand_variants(load("smoke.py"), grid=sweep.parse_grid(
      ["loss.weights.spa=0,1", "optim.learning_rate=1e-3,3e-3",
       "loss.variant=official,paper"]))
  assert len(grid) == 8 and grid[-1].name == (
      "spa=1-learning_rate=3e-3-variant=paper")
  assert grid[-1].overrides == {"loss.weights.spa": 1.0,
                                "optim.learning_rate": 3e-3,
                                "loss.variant": "paper"}
  assert len(sweep.group_variants(grid)) == 2  # the loss formulas differ
  smoke = sweep.expand_variants(load("sweep_smoke.py"))
  assert len(smoke) == 4 and len(sweep.group_variants(smoke)) == 1


@pytest.mark.parametrize("k, devices, shards", [
    (8, 4, (4, 1)), (4, 4, (4, 1)), (2, 4, (2, 2)), (3, 4, (1, 4)),
    (5, 1, (1, 1))])
def test_layout_splits_variants_then_batch(k, devices, shards):
  layout = sweep.SweepLayout(jax.local_devices()[:devices], num_variants=k,
                             batch_size=8)
  assert (layout.variant_shards, layout.batch_shards) == shards
  assert layout.local_variants((k, 8)) == list(range(k))
  with pytest.raises(ValueError, match="must split over 4 devices"):
    sweep.SweepLayout(jax.local_devices()[:4], num_variants=1, batch_size=6)


def _save(path, seed, scale):
  rng = np.random.default_rng(seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray((rng.random((24, 20, 3)) * scale).astype(np.uint8)).save(
      path)


def test_report_scores_every_variant(tmp_path, tmp_path_factory, capsys):
  r = _runs("host", tmp_path_factory)
  work = r["work"] / "sweep"
  for i in range(2):
    _save(tmp_path / "low" / f"{i}.png", i, 60)
    _save(tmp_path / "high" / f"{i}.png", i + 10, 200)
  rc = cli.main(["sweep", "report", str(work), "--paired",
                 str(tmp_path / "low"), str(tmp_path / "high"), "--images",
                 str(tmp_path / "low")])
  out = capsys.readouterr().out
  assert rc == 0
  doc = json.loads((work / "report.json").read_text())
  rows = {row["variant"]: row for row in doc["variants"]}
  assert set(rows) == {"a", "b"}
  for row in rows.values():
    assert row["final"]["step"] == 20 and row["final"]["loss"] > 0
    assert np.isfinite([row["psnr"], row["ssim"], row["mae"],
                        row["brightness"], row["loe"]]).all()
  assert "spa" in rows["a"]["final"] and "spa" not in rows["b"]["final"]
  md = (work / "report.md").read_text()
  assert "| a | done | 20 |" in md and "PSNR" in md and "LOE" in md
  assert "| b | done | 20 |" in out
  grid = np.asarray(Image.open(work / "report_grid.png"))
  assert grid.shape[1] == 3 * 20 + 2 * 4  # input | a | b
  assert cli.main(["sweep", "report", str(tmp_path)]) == 2
  assert "variants.json: not found" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_sweep_like_one_process(tmp_path, tmp_path_factory):
  """`zerodce sweep --coordinator` on 2 local processes (one CPU device
  each, one variant per process) == the sweep of the same variants in one
  process."""
  r = _runs("host", tmp_path_factory)
  import socket
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
  env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  cmd = [sys.executable, "-m", "zerodce_jax", "sweep", "--config",
         SWEEP_SMOKE, "--workdir", str(tmp_path / "multi"), "--no-progress",
         f"--config.sweep.variants={[A, B]!r}", "--coordinator",
         f"127.0.0.1:{port}", "--num-processes", "2",
         *(f"--config.{k}={v}" for k, v in TINY.items())]
  procs = [subprocess.Popen(cmd + ["--process-id", str(i)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for i in range(2)]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
    assert "2 process(es) x 1 cpu device(s)" in out
  for name, params in r["params"].items():
    got, _, _ = params_io.load_params(
        str(tmp_path / "multi" / name / "weights.msgpack"))
    _close(got, params)
  assert sorted(os.listdir(tmp_path / "multi" / "groups" / "g0" /
                           "checkpoints"), key=int) == ["20"]


def test_benchmark_table():
  from benchmarks import sweep as bench_sweep
  base = dict(model="zerodce", height=8, width=8, batch=8, compile_s=1.0)
  doc = {"machine": {}, "records": [
      dict(base, task="train_step", median_s=1.0),
      dict(base, task="sweep_step", strategy="vmap", variants=4,
           median_s=2.0, images_per_s=16.0, load_average=0.5)]}
  table = bench_sweep.markdown_table(doc)
  assert "| zerodce | 8x8 | 8 | vmap | 4 | 2,000 | 500 | 16.0 | 2.00x |" \
      in table
  assert "load average 0.5-0.5" in table
