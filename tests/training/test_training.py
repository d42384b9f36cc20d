import functools
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.training import input_pipeline as ip
from zerodce_jax import training
from zerodce_jax.core import losses, models
from zerodce_jax.formats import checkpoints, params_io, weights
from zerodce_jax.training import config_utils

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "configs" / "smoke.py")


def _tiny_setup(arch="3-32-8", **opt):
  model = models.make_model(arch, bias_init="torch")
  tx = training.make_optimizer(**opt)
  state = training.create_train_state(model, tx, key=jax.random.key(0),
                                      image_size=16)
  loss_fn = training.make_loss_fn(model, weights="official", color_eps=1e-8,
                                  exposure_patch=8)
  return model, state, loss_fn


def _batch(n=8, size=16, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random(
      (n, size, size, 3)).astype(np.float32) * 0.5)


def test_official_step_matches_hand_computed_adam():
  """clip(0.1) -> g + 1e-4 * p -> Adam(1e-4), written out in NumPy."""
  model, state, loss_fn = _tiny_setup()
  batch = _batch()
  grads = jax.grad(lambda p: loss_fn(p, batch)[0])(state.params)
  new_state, metrics = training.train_step(state, batch, loss_fn=loss_fn)

  g = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), grads)
  p = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64),
                             state.params)
  norm = np.sqrt(sum((x**2).sum() for x in jax.tree_util.tree_leaves(g)))
  assert norm > 0.1  # the clip is active in this test
  np.testing.assert_allclose(metrics["grad_norm"], norm, rtol=1e-5)
  scale = 0.1 / norm
  lr, b1, b2, eps, wd = 1e-4, 0.9, 0.999, 1e-8, 1e-4

  def update(gi, pi):
    gi = gi * scale + wd * pi
    m, v = (1 - b1) * gi, (1 - b2) * gi**2
    mhat, vhat = m / (1 - b1), v / (1 - b2)
    return pi - lr * mhat / (np.sqrt(vhat) + eps)

  expected = jax.tree_util.tree_map(update, g, p)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9),
      new_state.params, expected)
  assert int(new_state.step) == 1


def test_decoupled_weight_decay_differs_from_coupled():
  _, state, loss_fn = _tiny_setup(weight_decay=0.1)
  _, state_w, _ = _tiny_setup(weight_decay=0.1, decoupled_weight_decay=True)
  a, _ = training.train_step(state, _batch(), loss_fn=loss_fn)
  b, _ = training.train_step(state_w, _batch(), loss_fn=loss_fn)
  diff = max(float(jnp.abs(x - y).max()) for x, y in zip(
      jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)))
  assert diff > 1e-6


def _run_pmapped(n_devices, steps=3):
  _, state, loss_fn = _tiny_setup()
  devices = jax.local_devices()[:n_devices]
  p_step = jax.pmap(functools.partial(training.train_step, loss_fn=loss_fn,
                                      axis_name="batch"),
                    axis_name="batch", in_axes=(None, 0),
                    out_axes=(None, None), devices=devices)
  for s in range(steps):
    b = _batch(seed=s).reshape((n_devices, -1, 16, 16, 3))
    state, metrics = p_step(state, b)
  return state, metrics


def test_eager_equals_pmap_on_one_device():
  _, state, loss_fn = _tiny_setup()
  eager, _ = training.train_step(state, _batch(), loss_fn=loss_fn)
  pm, _ = _run_pmapped(1, steps=1)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8),
      eager.params, pm.params)


def _smoke(**overrides):
  config = config_utils.load_config(SMOKE)
  config_utils.apply_overrides(config, [(k, str(v))
                                        for k, v in overrides.items()])
  return config


def test_smoke_config_end_to_end(tmp_path):
  config = _smoke()
  model = training.model_from_config(config)
  images = training.load_training_images(config)
  x = jnp.asarray(images[:16].astype(np.float32) / 255)
  loss_fn = training.loss_fn_from_config(model, config)
  init = training.create_train_state(model, training.optimizer_from_config(
      config), key=jax.random.key(config.seed), image_size=32)
  before = float(loss_fn(init.params, x)[0])
  state = training.train(config, str(tmp_path), progress=False)
  after = float(loss_fn(state.params, x)[0])
  assert int(state.step) == 40
  assert after < 0.8 * before, (before, after)
  for name in ("config.json", "metrics.jsonl", "metrics.csv",
               "weights.msgpack"):
    assert (tmp_path / name).is_file(), name
  assert json.loads((tmp_path / "config.json").read_text())[
      "model"]["arch"] == "3-32-8"
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["30", "40"]
  assert sorted(os.listdir(tmp_path / "samples")) == [
      "step_0000020.png", "step_0000040.png"]
  assert any(p.name.startswith("events.out.tfevents")
             for p in (tmp_path / "tensorboard").iterdir())
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert [r["step"] for r in rows] == list(range(5, 41, 5))
  assert {"loss", "spa", "exp", "col", "tv", "grad_norm",
          "images_per_s"} <= set(rows[0])
  params, arch, _ = weights.load_weights(str(tmp_path / "weights.msgpack"))
  assert arch["depth"] == 3


def test_resume_in_process_is_exact(tmp_path, capsys):
  full = training.train(_smoke(num_steps=20), str(tmp_path / "a"),
                        progress=False)
  training.train(_smoke(num_steps=20), str(tmp_path / "b"),
                 progress=False, stop_after=7)
  capsys.readouterr()
  resumed = training.train(_smoke(num_steps=20),
                           str(tmp_path / "b"), progress=False)
  jax.tree_util.tree_map(np.testing.assert_array_equal, full.params,
                         resumed.params)
  # the second call restored step 7 (the data order depends only on seed
  # and step, so a silent fresh start would give the same params): it says
  # so, and it logged only the steps after 7
  assert "resumed from" in capsys.readouterr().out
  with open(tmp_path / "b" / "metrics.jsonl") as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == sorted(set(steps)) and steps[-1] == 20 and 7 in steps


def test_incompatible_and_corrupt_checkpoints_fail_loudly(tmp_path):
  training.train(_smoke(num_steps=10), str(tmp_path),
                 progress=False)
  with pytest.raises(checkpoints.CheckpointError, match="cannot restore"):
    training.train(_smoke(num_steps=20, **{"model.arch":
                   "7-16-8"}),
                   str(tmp_path), progress=False)
  with pytest.raises(checkpoints.CheckpointError, match="seed"):
    training.train(_smoke(num_steps=20, seed=3), str(tmp_path),
                   progress=False)
  # damage every data file of the newest checkpoint
  for p in (tmp_path / "checkpoints" / "10" / "state").rglob("*"):
    if p.is_file():
      p.write_bytes(b"garbage")
  with pytest.raises(checkpoints.CheckpointError, match="checkpoints/10"):
    training.train(_smoke(num_steps=20), str(tmp_path),
                   progress=False)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
  training.train(_smoke(num_steps=10), str(tmp_path),
                 progress=False)

  def nan_loss(params, batch):
    v = sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(params)) * jnp.nan
    return v, {"nan": v}

  with pytest.raises(FloatingPointError, match="between steps 11 and 15"):
    training.train(_smoke(num_steps=20), str(tmp_path),
                   progress=False, loss_fn=nan_loss)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]


def _train_cmd(workdir, steps):
  return [sys.executable, "-m", "zerodce_jax", "train", "--config", SMOKE,
          "--workdir", str(workdir), "--no-progress",
          f"--config.num_steps={steps}", "--config.checkpoint_every=4",
          "--config.log_every=2", "--config.sample_every=0"]


def _checkpoint_entries(ckpt):
  """(complete steps, names of orbax's unfinished temporary folders)."""
  names = os.listdir(ckpt) if ckpt.is_dir() else []
  steps = sorted(int(n) for n in names if n.isdigit())
  return steps, [n for n in names if not n.isdigit()]


@pytest.mark.slow
def test_resume_after_repeated_sigkills_is_exact(tmp_path, full):
  """SIGKILL a real training process at random moments (a third of them
  while orbax is writing a checkpoint asynchronously), restart it each time;
  after every kill the workdir restores cleanly, and the finished run's
  params are bit-identical to a run that was never interrupted. 12 kills
  with ``--full``, 2 in the default run (one of them mid-write)."""
  steps, kills_wanted = (400, 12) if full else (120, 2)
  ref = subprocess.run(_train_cmd(tmp_path / "ref", steps),
                       capture_output=True, text=True, timeout=600)
  assert ref.returncode == 0, ref.stderr
  work = tmp_path / "killed"
  ckpt = work / "checkpoints"
  rng = np.random.default_rng(0)
  kills = during_write = 0
  while kills < kills_wanted:
    before, _ = _checkpoint_entries(ckpt)
    proc = subprocess.Popen(_train_cmd(work, steps), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    in_write = kills % 3 == 0  # kill the moment a checkpoint is half-written
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      done, tmp = _checkpoint_entries(ckpt)
      started = done and done[-1] > (before[-1] if before else 0)
      if in_write and started and any(
          int(t.split(".")[0]) > done[-1] for t in tmp
          if t.split(".")[0].isdigit()):
        break
      if not in_write and started:
        time.sleep(float(rng.uniform(0, 0.6)))
        break
      time.sleep(0.001)
    if proc.poll() is not None:  # finished (or failed) before the kill
      assert proc.returncode == 0, proc.stderr.read()
      pytest.fail(f"the run finished after {kills} kills; raise `steps`")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
    done, tmp = _checkpoint_entries(ckpt)
    during_write += bool(tmp)
    # what a restart will find must restore: the newest complete checkpoint
    _, _, source = weights.load_weights(str(work))
    assert f"checkpoint step {done[-1]}" in source
  print(f"{kills} kills, {during_write} with a checkpoint being written; "
        f"complete checkpoints then: {done}")
  assert during_write >= max(1, kills_wanted // 3), during_write
  again = subprocess.run(_train_cmd(work, steps), capture_output=True,
                         text=True, timeout=600)
  assert again.returncode == 0, again.stderr
  assert "resumed from" in again.stdout + again.stderr
  a, _, _ = params_io.load_params(str(tmp_path / "ref" / "weights.msgpack"))
  b, _, _ = params_io.load_params(str(work / "weights.msgpack"))
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_custom_loss_term_trains(tmp_path):
  """Research API: an extra term given in Python changes what is learnt."""
  config = _smoke(num_steps=10)
  model = training.model_from_config(config)

  def dark(*, enhanced, original, maps):
    return enhanced.mean(axis=(1, 2, 3))

  loss_fn = training.make_loss_fn(
      model, weights={"exp": 10.0, "dark": 50.0}, exposure_patch=8,
      extra_terms={"dark": dark})
  state = training.train(config, str(tmp_path), progress=False,
                         loss_fn=loss_fn)
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert "dark" in rows[-1] and "spa" not in rows[-1]
  assert int(state.step) == 10


def test_config_overrides():
  c = config_utils.load_config(SMOKE)
  config_utils.apply_overrides(c, config_utils.parse_override_args(
      ["--config.optim.learning_rate=0.5", "--config.data.random_flip", "true",
       "--config.model.arch=7-16-8", "--config.num_steps=3"]))
  assert c.optim.learning_rate == 0.5 and c.data.random_flip is True
  assert c.model.arch == "7-16-8" and c.num_steps == 3
  with pytest.raises(KeyError, match="lerning_rate"):
    config_utils.apply_overrides(c, [("optim.lerning_rate", "1")])
  with pytest.raises(ValueError, match="num_steps"):
    config_utils.apply_overrides(c, [("num_steps", "many")])
  with pytest.raises(ValueError, match="unrecognised"):
    config_utils.parse_override_args(["--lr=3"])


@pytest.mark.parametrize("spec", [
    "zerodce_official.py", "zerodce_paper.py", "zerodce_pp_official.py",
    "ablation_arch.py:3-32-8", "ablation_arch.py:7-16-8",
    "ablation_arch.py:7-32-16", "ablation_loss.py:no_spa",
    "ablation_loss.py:no_exp", "ablation_loss.py:no_col",
    "ablation_loss.py:no_tv", "smoke.py"])
def test_every_config_builds_a_model_and_loss(spec):
  c = config_utils.load_config(str(ROOT / "configs" / spec))
  model = training.model_from_config(c)
  loss_fn = training.loss_fn_from_config(model, c)
  size = 32
  x = _batch(2, size)
  params = model.init(jax.random.key(0), x)["params"]
  loss, terms = loss_fn(params, x) if c.loss.exposure_patch <= size else (
      None, None)
  if loss is not None:
    assert np.isfinite(float(loss))
    assert set(terms) == {k for k, w in c.loss.weights.items() if w}


def test_official_and_paper_configs_say_what_they_are():
  off = config_utils.load_config(str(ROOT / "configs" / "zerodce_official.py"))
  pap = config_utils.load_config(str(ROOT / "configs" / "zerodce_paper.py"))
  pp = config_utils.load_config(str(ROOT / "configs" /
                                    "zerodce_pp_official.py"))
  assert dict(off.loss.weights) == losses.OFFICIAL_WEIGHTS
  assert dict(pap.loss.weights) == losses.PAPER_WEIGHTS
  assert dict(pp.loss.weights) == losses.OFFICIAL_PP_WEIGHTS
  assert (off.loss.variant, pap.loss.variant) == ("official", "paper")
  assert (off.data.image_size, pp.data.image_size) == (256, 512)
  assert (off.num_epochs, pp.num_epochs) == (200, 100)
  assert (off.optim.learning_rate, off.optim.weight_decay,
          off.optim.clip_norm, off.batch_size) == (1e-4, 1e-4, 0.1, 8)


def test_cpu_devices_flag_sets_host_device_count(monkeypatch):
  """``--cpu-devices``: 0 means one per core, capped to a divisor of the
  batch; an explicit XLA_FLAGS count is never overridden."""
  from zerodce_jax.cli import _common
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(os, "cpu_count", lambda: 6)
  _common.set_cpu_devices(0, 8)  # 6 cores, batch 8 -> 4 devices
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_foo=1")
  _common.set_cpu_devices(3, 9)
  assert os.environ["XLA_FLAGS"] == (
      "--xla_cpu_foo=1 --xla_force_host_platform_device_count=3")
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
  _common.set_cpu_devices(2, 8)
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"
  monkeypatch.delenv("XLA_FLAGS")
  _common.set_cpu_devices(1, 8)  # one device: nothing to set
  assert "XLA_FLAGS" not in os.environ


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
  """Multi-host on one machine: 2 processes on localhost
  (``jax.distributed`` with a local coordinator, one CPU device each, gloo
  collectives) training the smoke config end with the same params as one
  process with 2 devices, from the command line; both write one shared
  workdir (checkpoints by orbax across processes)."""
  import socket
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  one_dev = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  procs = [subprocess.Popen(
      _train_cmd(tmp_path / "multi", 12) + [
          "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
          "--process-id", str(i)], env=one_dev, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  single = subprocess.run(_train_cmd(tmp_path / "single", 12) +
                          ["--cpu-devices", "2"], capture_output=True,
                          text=True, timeout=300, env=env)
  outs = [p.communicate(timeout=300)[0] for p in procs]
  assert single.returncode == 0, single.stderr
  assert "1 process(es) x 2 cpu device(s), global batch 8" in single.stdout
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
    assert "2 process(es) x 1 cpu device(s), global batch 8" in out
  multi, _, _ = weights.load_weights(str(tmp_path / "multi" /
                                           "weights.msgpack"))
  one, _, _ = weights.load_weights(str(tmp_path / "single" /
                                         "weights.msgpack"))
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8),
      multi, one)
  assert sorted(os.listdir(tmp_path / "multi" / "checkpoints"),
                key=int) == ["8", "12"]
  rows = (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == len((tmp_path / "single" / "metrics.jsonl")
                          .read_text().splitlines())


def test_coordinator_needs_its_companions(capsys):
  from zerodce_jax import cli
  assert cli.main(["train", "--config", str(SMOKE), "--workdir", "/tmp/x",
                   "--coordinator", "127.0.0.1:1"]) == 2
  assert "--num-processes and --process-id" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A smoke run with checkpoints at steps 10 and 20 (copied per case)."""
  work = tmp_path_factory.mktemp("run")
  training.train(_smoke(num_steps=20), str(work), progress=False)
  return work


def _garbage(path):
  path.write_bytes(b"\x00garbage{not json")


def _damage_cases():
  """name -> (function damaging checkpoints/20, what the error must say)."""
  import shutil
  return {
      # orbax treats this file as optional (it logs and reads on): the data
      # is intact, so resuming from it is right
      "checkpoint metadata": (lambda c: _garbage(c / "_CHECKPOINT_METADATA"),
                              None),
      "meta json": (lambda c: _garbage(c / "meta" / "metadata"),
                    "checkpoints/20"),
      "meta not a dict": (lambda c: (c / "meta" / "metadata").write_text(
          "[1, 2]"), "checkpoints/20"),
      "tree metadata": (lambda c: _garbage(c / "state" / "_METADATA"),
                        "checkpoints/20"),
      "array manifest": (lambda c: _garbage(c / "state" / "manifest.ocdbt"),
                         "checkpoints/20"),
      "array data": (lambda c: [_garbage(p) for p in (c / "state").rglob("*")
                                if p.is_file() and p.parent.name == "d"],
                     "checkpoints/20"),
      "state folder gone": (lambda c: shutil.rmtree(c / "state"),
                            "checkpoints/20"),
  }


@pytest.mark.parametrize("case", sorted(_damage_cases()))
def test_damaged_checkpoint_in_a_strangers_workdir(tmp_path, finished_run,
                                                   case, capsys):
  """Each kind of damage is a clear error naming the checkpoint, for both
  readers of a workdir: resuming training and `enhance --weights WORKDIR`."""
  import shutil
  from zerodce_jax import cli
  work = tmp_path / "w"
  shutil.copytree(finished_run, work)
  (work / "weights.msgpack").unlink()  # make `--weights WORKDIR` read ckpts
  damage, match = _damage_cases()[case]
  damage(work / "checkpoints" / "20")
  if match is None:
    assert "step 20" in weights.load_weights(str(work))[2]
    state = training.train(_smoke(num_steps=30), str(work),
                           progress=False)
    assert int(state.step) == 30
    return
  with pytest.raises(checkpoints.CheckpointError, match=match):
    training.train(_smoke(num_steps=30), str(work),
                   progress=False)
  with pytest.raises(params_io.WeightsError, match=match):
    weights.load_weights(str(work))
  img = tmp_path / "x.png"
  from PIL import Image
  Image.new("RGB", (8, 8), (20, 20, 20)).save(img)
  capsys.readouterr()
  assert cli.main(["enhance", str(img), "-o", str(tmp_path / "o"),
                   "--weights", str(work), "--no-progress"]) == 2
  err = capsys.readouterr().err
  assert "checkpoints/20" in err and "Traceback" not in err
  # deleting the damaged step falls back to the older, complete one
  shutil.rmtree(work / "checkpoints" / "20")
  params, arch, source = weights.load_weights(str(work))
  assert "step 10" in source and arch["depth"] == 3


def test_wrong_tree_and_hostile_config_in_a_workdir(tmp_path, finished_run):
  import shutil
  work = tmp_path / "w"
  shutil.copytree(finished_run, work)
  (work / "weights.msgpack").unlink()
  config = json.loads((work / "config.json").read_text())
  config["model"]["arch"] = "zerodce"  # checkpoints hold a 3-32-8 tree
  (work / "config.json").write_text(json.dumps(config))
  with pytest.raises(params_io.WeightsError, match="cannot restore"):
    weights.load_weights(str(work))
  config["model"]["arch"] = "no-such-net"
  (work / "config.json").write_text(json.dumps(config))
  with pytest.raises(params_io.WeightsError, match="not a usable training"):
    weights.load_weights(str(work))
  (work / "config.json").write_text("[]")
  with pytest.raises(params_io.WeightsError, match="not a usable training"):
    weights.load_weights(str(work))


def _parallel_run(devices, *, parallel="auto", device_pipeline=False,
                  steps=2):
  model, state, loss_fn = _tiny_setup()
  images = (np.random.default_rng(0).random((12, 16, 16, 3)) * 255).astype(
      np.uint8)
  make_batch = None
  if device_pipeline:
    make_batch = functools.partial(
        ip.device_batch, seed=1, crop_size=12, random_flip=True,
        exposure_mixing=True)
  step = training.make_parallel_step(loss_fn, devices=devices,
                                     parallel=parallel, make_batch=make_batch)
  resident = training.place_images(images, devices) if make_batch else None
  idx = ip.index_batches(len(images), batch_size=8, seed=1,
                         num_devices=len(devices))
  host = ip.batches(images, batch_size=8, seed=1, num_devices=len(devices))
  for _ in range(steps):
    data = next(idx) if make_batch else next(host)
    state, metrics = step(state, data, resident)
  return training.local_copy(state.params), training.local_copy(metrics)


@pytest.mark.parametrize("device_pipeline", [False, True])
def test_parallel_step_same_on_one_and_four_devices(device_pipeline):
  """shard_map over 4 devices == one device, for host batches and for the
  device-side pipeline (whose draws do not depend on the split)."""
  one, m1 = _parallel_run(jax.local_devices()[:1],
                          device_pipeline=device_pipeline)
  four, m4 = _parallel_run(jax.local_devices()[:4],
                           device_pipeline=device_pipeline)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7),
      one, four)
  np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)


def test_pmap_and_shard_map_steps_agree():
  pm, mp = _parallel_run(jax.local_devices()[:2], parallel="pmap")
  sm, ms = _parallel_run(jax.local_devices()[:2], parallel="shard_map")
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7),
      pm, sm)
  with pytest.raises(ValueError, match="parallel must be one of"):
    _parallel_run(jax.local_devices()[:2], parallel="xmap")
  with pytest.raises(ValueError, match="use 'shard_map' for the device"):
    _parallel_run(jax.local_devices()[:2], parallel="pmap",
                  device_pipeline=True)


def test_device_pipeline_training_resumes_exactly(tmp_path):
  """Gather, crops, flips and exposure mixing inside the step, keyed by
  (seed, state.step): an interrupted run resumes bit-exactly."""
  kw = {"num_steps": 12, "data.pipeline": "device", "data.crop_size": 24,
        "data.random_flip": True, "data.exposure_mixing": True,
        "checkpoint_every": 5}
  full = training.train(_smoke(**kw), str(tmp_path / "a"),
                        progress=False)
  training.train(_smoke(**kw), str(tmp_path / "b"),
                 progress=False, stop_after=5)
  resumed = training.train(_smoke(**kw), str(tmp_path / "b"),
                           progress=False)
  jax.tree_util.tree_map(np.testing.assert_array_equal, full.params,
                         resumed.params)


@pytest.mark.slow
def test_a_checkpoint_written_on_two_devices_loads_as_weights(tmp_path):
  """`--weights WORKDIR` of a run still training (no weights.msgpack yet),
  read by a process with fewer devices than wrote it (2 -> 1)."""
  def env(devices):
    return {**os.environ, "XLA_FLAGS":
            f"--xla_force_host_platform_device_count={devices}"}
  r = subprocess.run(_train_cmd(tmp_path, 4), capture_output=True, text=True,
                     timeout=600, env=env(2))
  assert r.returncode == 0, r.stderr[-2000:]
  final, _, _ = weights.load_weights(str(tmp_path))
  (tmp_path / "weights.msgpack").unlink()
  out = tmp_path / "restored.msgpack"
  read = ("import sys; from zerodce_jax.formats import params_io, weights; "
          "p, arch, src = weights.load_weights(sys.argv[1]); "
          "params_io.save_params(sys.argv[2], p, arch=arch); print(src)")
  r = subprocess.run([sys.executable, "-c", read, str(tmp_path), str(out)],
                     capture_output=True, text=True, timeout=300, env=env(1))
  assert r.returncode == 0, r.stderr[-2000:]
  assert "checkpoint step 4" in r.stdout
  params, _, _ = weights.load_weights(str(out))
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, final)


@pytest.mark.slow
def test_resume_on_another_number_of_devices(tmp_path):
  """A run checkpointed on one device resumes on two (and its data order
  does not depend on the device count): the same params as an
  uninterrupted two-device run, to float32 rounding."""
  def run(workdir, steps, devices):
    env = {**os.environ, "XLA_FLAGS":
           f"--xla_force_host_platform_device_count={devices}"}
    r = subprocess.run(_train_cmd(workdir, steps), capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r

  run(tmp_path / "a", 8, 1)
  resumed = run(tmp_path / "a", 16, 2)
  assert "resumed from" in resumed.stdout + resumed.stderr
  run(tmp_path / "b", 16, 2)
  a, _, _ = weights.load_weights(str(tmp_path / "a"))
  b, _, _ = weights.load_weights(str(tmp_path / "b"))
  jax.tree_util.tree_map(
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6),
      a, b)
