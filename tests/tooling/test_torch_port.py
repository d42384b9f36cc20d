"""The PyTorch port of the official training script (benchmarks/torch_port.py)
against our train step, and the official loader's epoch structure against
ours (``input_pipeline`` with ``last_batch="keep"``).

The step-for-step checks need torch (a benchmark extra, not a dependency):
without it they skip, saying so; the epoch-structure checks of our own
pipeline run regardless.
"""

import functools

import jax
import numpy as np
import pytest
from _support import STRICT

from zerodce_jax.core import models
from zerodce_jax.training import input_pipeline as ip
from zerodce_jax.training import step as st

TORCH_REASON = ("the PyTorch port needs torch (pip install torch==2.13.0, "
                "the CPU build); the step-for-step checks are skipped")


@pytest.fixture(scope="module")
def tp():
  """benchmarks.torch_port with torch importable, else the test skips."""
  try:
    import torch
  except ImportError:
    if STRICT:  # CI installs torch: its absence is a failure there
      raise
    pytest.skip(TORCH_REASON)
  torch.set_num_threads(1)
  from benchmarks import torch_port
  return torch_port


def _batches(n_steps, batch, size, seed=0):
  """Smooth multi-exposure scenes, float32 NHWC, one array per step."""
  x = ip.synthetic_images(n_steps * batch, size, seed=seed)
  return [x[i * batch:(i + 1) * batch].astype(np.float32) / 255.0
          for i in range(n_steps)]


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(v)) for v in
                         jax.tree_util.tree_leaves(tree)])


@pytest.mark.parametrize("arch,weights", [("zerodce", "official"),
                                          ("zerodce++", "official_pp")])
def test_twenty_steps_agree_with_the_official_script(tp, arch, weights):
  """Same initial params, same batches: our step (official loss, coupled-L2
  Adam after clipping at 0.1) and the official script's step give the same
  loss at every step and the same params after 20 steps.

  Tolerance: float32 rounding. Our gradients are within 3e-7 (relative) of
  torch's float64 ones at every step, torch's float32 ones within 9e-7;
  Adam divides each component by its own running RMS, which magnifies the
  rounding of small components, so after 20 steps the params end ~1.4e-5
  (relative) apart -- as far as torch's own float32 and float64 gradients
  end apart under one optimiser. Torch's clip divides by ``norm + 1e-6``
  where optax divides by ``norm`` (every step here is clipped): ~6e-7."""
  torch = pytest.importorskip("torch", reason=TORCH_REASON)
  size, batch, n = 32, 4, 20
  a = models.ARCHITECTURES[arch]
  model = models.make_model(arch, bias_init="torch")
  state = st.create_train_state(model, st.make_optimizer(),
                                key=jax.random.key(3), image_size=size)
  init = jax.device_get(state.params)
  loss_fn = st.make_loss_fn(model, weights=weights, variant="official")
  step = jax.jit(functools.partial(st.train_step, loss_fn=loss_fn))
  net = tp.from_params(init, a)
  trainer = tp.OfficialTrainer(net, tv_weight=1600.0 if a["separable"]
                               else 200.0, color_eps=0.0)
  ours, theirs, clipped = [], [], []
  for x in _batches(n, batch, size):
    state, m = step(state, x)
    ours.append(float(m["loss"]))
    t = trainer.step(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    theirs.append(t["loss"])
    clipped.append(t["grad_norm"] > 0.1)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5)
  assert all(clipped)  # the clip (and its +1e-6) is exercised every step
  p_ours = _flat(jax.device_get(state.params))
  p_torch = _flat(tp.to_params(net, a))
  p0 = _flat(init)
  moved = np.linalg.norm(p_torch - p0)
  assert moved > 1e-3  # training moved the params
  assert np.linalg.norm(p_ours - p_torch) / np.linalg.norm(p_torch) < 3e-5
  assert np.linalg.norm(p_ours - p_torch) / moved < 1e-3


def test_to_params_inverts_from_params(tp):
  for arch in ("zerodce", "zerodce++"):
    a = models.ARCHITECTURES[arch]
    net = tp.make_official_net(arch, seed=0)
    back = tp.from_params(tp.to_params(net, a), a)
    for p, q in zip(net.parameters(), back.parameters()):
      np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_official_init(tp):
  """Zero-DCE: conv weights N(0, 0.02), PyTorch's default biases; Zero-DCE++:
  PyTorch's defaults throughout (U(+-1/sqrt(fan_in)))."""
  net = tp.make_official_net("zerodce", seed=0)
  w = np.concatenate([c.weight.detach().numpy().ravel() for c in net.convs])
  assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001
  b = net.convs[0].bias.detach().numpy()
  assert np.abs(b).max() <= 1 / np.sqrt(27) and np.abs(b).max() > 0.05
  pp = tp.make_official_net("zerodce++", seed=0)
  dw = pp.convs[1].depth_conv.weight.detach().numpy()
  assert np.abs(dw).max() <= 1 / 3 and dw.std() > 0.1  # fan_in 9
  again = tp.make_official_net("zerodce", seed=0)
  assert all(np.array_equal(p.detach().numpy(), q.detach().numpy())
             for p, q in zip(net.parameters(), again.parameters()))


def _epoch_checks(batches, n, batch_size):
  epochs = [batches[:251], batches[251:502]]
  for e in epochs:
    assert [len(b) for b in e] == [batch_size] * 250 + [n % batch_size]
    assert sorted(np.concatenate(e).tolist()) == list(range(n))
  assert not np.array_equal(np.concatenate(epochs[0]),
                            np.concatenate(epochs[1]))  # reshuffled


def test_official_loader_epochs(tp):
  """2,002 images at batch 8: 251 steps per epoch, the last of 2 images,
  every image once per epoch, a new order each epoch; resumable by step;
  a torch.Generator seed fixes the order."""
  n, b = 2002, 8
  assert tp.official_steps_per_epoch(n, b) == 251
  it = tp.official_batches(n, batch_size=b, seed=5)
  got = [next(it) for _ in range(502)]
  _epoch_checks(got, n, b)
  resumed = tp.official_batches(n, batch_size=b, seed=5, start_step=250)
  for want in got[250:255]:
    np.testing.assert_array_equal(next(resumed), want)
  other = next(tp.official_batches(n, batch_size=b, seed=6))
  assert not np.array_equal(other, got[0])


def test_our_pipeline_keeps_the_last_batch_as_the_official_loader():
  n, b = 2002, 8
  assert ip.steps_per_epoch(n, batch_size=b, last_batch="keep") == 251
  assert ip.steps_per_epoch(n, batch_size=b) == 250  # "drop", the default
  it = ip.batch_indices(n, batch_size=b, seed=5, last_batch="keep")
  got = [next(it) for _ in range(502)]
  _epoch_checks(got, n, b)
  resumed = ip.batch_indices(n, batch_size=b, seed=5, start_step=250,
                             last_batch="keep")
  for want in got[250:255]:
    np.testing.assert_array_equal(next(resumed), want)
  # the default stays as it was: whole batches, the remainder left over
  drop = ip.batch_indices(n, batch_size=b, seed=5)
  assert all(len(next(drop)) == b for _ in range(300))


def test_kept_last_batch_through_the_host_and_device_pipelines():
  images = (np.arange(10 * 4 * 4 * 3) % 256).astype(np.uint8).reshape(
      10, 4, 4, 3)
  host = ip.batches(images, batch_size=4, seed=0, last_batch="keep",
                    num_devices=2, random_flip=True, crop_size=2)
  shapes = [next(host).shape for _ in range(4)]
  assert shapes == [(2, 2, 2, 2, 3), (2, 2, 2, 2, 3), (2, 1, 2, 2, 3),
                    (2, 2, 2, 2, 3)]
  idx = ip.index_batches(10, batch_size=4, seed=0, last_batch="keep",
                         num_devices=2)
  got = [next(idx) for _ in range(3)]
  assert [g.shape for g in got] == [(2, 2), (2, 2), (2, 1)]
  assert sorted(np.concatenate([g.ravel() for g in got]).tolist()) == list(
      range(10))
  # two processes take halves of the short batch as of the full ones
  parts = []
  for p in range(2):
    it = ip.index_batches(10, batch_size=4, seed=0, last_batch="keep",
                          process_index=p, process_count=2)
    parts.append([next(it) for _ in range(3)][2])
  np.testing.assert_array_equal(np.concatenate(parts).ravel(),
                                got[2].ravel())
  with pytest.raises(ValueError, match="last batch of 2"):
    next(ip.index_batches(10, batch_size=4, seed=0, last_batch="keep",
                          num_devices=4))
  with pytest.raises(ValueError, match="last_batch must be"):
    ip.steps_per_epoch(10, batch_size=4, last_batch="pad")


def test_official_images_match_our_loader(tp, shared):
  """The official loader's Lanczos resize and ours give the same uint8."""
  from zerodce_jax.formats import image_io
  paths = image_io.list_images(str(shared / "train_images"))[:3]
  ours, _ = ip.load_resized(paths, 64)
  np.testing.assert_array_equal(tp.official_images(paths, 64), ours)


def test_train_official_resumes_exactly(tp, tmp_path):
  """Interrupted and resumed, the official trainer ends where an
  uninterrupted run does (net, optimiser and loader position restored)."""
  images = ip.synthetic_images(10, 16, seed=0)
  kw = dict(arch="3-32-8", seed=1, batch_size=4, checkpoint_every=2,
            report=None, threads=1)
  whole = tp.train_official(images, str(tmp_path / "a"), num_steps=6, **kw)
  tp.train_official(images, str(tmp_path / "b"), num_steps=4, **kw)
  resumed = tp.train_official(images, str(tmp_path / "b"), num_steps=6, **kw)
  for p, q in zip(whole.parameters(), resumed.parameters()):
    np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
  a = tp.load_official_run(str(tmp_path / "a"))
  np.testing.assert_array_equal(
      a["conv1"]["kernel"],
      tp.to_params(whole, models.ARCHITECTURES["3-32-8"])["conv1"]["kernel"])


def test_official_config_has_the_official_epoch_structure(tmp_path):
  """configs/zerodce_official.py keeps the last batch (251 steps per epoch
  on the 2,002 images), ``:released`` is the shipped snapshot's 100
  epochs, and a run of whole epochs counts the short batch."""
  import pathlib

  from zerodce_jax.training import config_utils, loop
  root = pathlib.Path(__file__).resolve().parents[2] / "configs"
  c = config_utils.load_config(str(root / "zerodce_official.py"))
  assert (c.data.last_batch, c.num_epochs) == ("keep", 200)
  assert config_utils.load_config(
      str(root / "zerodce_official.py:released")).num_epochs == 100
  with pytest.raises(ValueError, match="unknown ARG"):
    config_utils.load_config(str(root / "zerodce_official.py:relased"))
  s = config_utils.load_config(str(root / "smoke.py"))
  s.data.num_synthetic, s.data.image_size, s.batch_size = 12, 16, 8
  s.num_steps, s.num_epochs, s.loss.exposure_patch = -1, 2, 4
  s.sample_every = 0
  # (4 fake devices here: the short batch of 4 splits, 1 image each)
  state = loop.train(s, str(tmp_path / "run"), progress=False)
  assert int(state.step) == 4  # 2 epochs of 8 + 4 images
  s.data.num_synthetic = 10   # a last batch of 2 cannot split over 4
  with pytest.raises(ValueError, match="last_batch='drop'"):
    loop.train(s, str(tmp_path / "run2"), progress=False)
