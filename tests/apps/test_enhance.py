import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.apps import enhance
from zerodce_jax.core import models
from zerodce_jax.formats import params_io, weights


def _params(model):
  return model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]


@pytest.fixture(scope="module")
def zerodce():
  model = models.make_model("3-32-8", bias_init="torch")
  return model, _params(model)


def _rand(h, w, seed=0):
  return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def test_bucketed_equals_direct(zerodce):
  model, params = zerodce
  en = enhance.Enhancer(model, params, bucket=32)
  images = [_rand(20, 30, 1), _rand(37, 11, 2), _rand(32, 32, 3)]
  for x, y in zip(images, en(images)):
    direct = model.apply({"params": params}, x[None])[0][0]
    assert y.shape == x.shape
    np.testing.assert_allclose(y, direct, atol=2e-6)


def test_tiled_equals_whole_image():
  model = models.ZeroDCE(bias_init="torch")
  params = _params(model)
  x = _rand(70, 53, 4)
  whole = enhance.Enhancer(model, params)([x])[0]
  tiled_en = enhance.Enhancer(model, params, tile=16, max_pixels=100,
                              batch_size=4)
  tiled = tiled_en([x])[0]
  np.testing.assert_allclose(tiled, whole, atol=1e-6)
  # tiles are one shape: one compilation however many tiles
  assert tiled_en.traces == 1


def test_mixed_sizes_compile_once_per_bucket(zerodce):
  model, params = zerodce
  en = enhance.Enhancer(model, params, bucket=64, batch_size=4)
  sizes = [(40, 50), (33, 61), (64, 64), (17, 9), (50, 40), (60, 2)]
  en([_rand(h, w, i) for i, (h, w) in enumerate(sizes)])
  # all six fall in the 64x64 bucket: batches of 4 and 2 -> two traces
  assert en.traces == 2
  en([_rand(h, w, i) for i, (h, w) in enumerate(sizes[:4])])
  assert en.traces == 2  # nothing new


def test_zerodce_pp_any_size(zerodce):
  model = models.ZeroDCEpp(scale_factor=12, bias_init="torch")
  params = _params(models.ZeroDCEpp(bias_init="torch"))
  en = enhance.Enhancer(model, params, strip_rows=16)
  for h, w in [(101, 77), (24, 36)]:
    x = _rand(h, w, h)
    y = en([x])[0]
    direct = model.apply({"params": params}, x[None])[0][0]
    assert y.shape == x.shape
    np.testing.assert_allclose(y, direct, atol=2e-6)


def test_enhance_array_api_dtypes_and_alpha(zerodce):
  model, params = zerodce
  arch = params_io.arch_of(model)
  rng = np.random.default_rng(0)
  rgba = (rng.random((9, 10, 4)) * 255).astype(np.uint8)
  out = enhance.enhance(rgba, params, arch=arch)
  assert out.dtype == np.uint8 and out.shape == rgba.shape
  np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
  g16 = (rng.random((9, 10)) * 65535).astype(np.uint16)
  out16 = enhance.enhance(g16, params, arch=arch)
  assert out16.dtype == np.uint16 and out16.shape == g16.shape
  f = rng.random((9, 10, 3)).astype(np.float32)
  np.testing.assert_allclose(enhance.enhance(f, params, arch=arch),
                             model.apply({"params": params}, f[None])[0][0],
                             atol=2e-6)
  with pytest.raises(ValueError, match="NaN"):
    enhance.enhance(np.full((4, 4, 3), np.nan, np.float32), params, arch=arch)
  with pytest.raises(ValueError, match=r"\[H, W\]"):
    enhance.enhance(np.zeros((4, 4, 5), np.float32), params, arch=arch)


def test_bundled_model_brightens_the_sample():
  from zerodce_jax.formats import image_io
  params, arch, source = weights.load_weights("zerodce-default")
  assert "zerodce-jax" in source  # trained by this project, not official
  x, _ = image_io.read_image(weights.asset_path(weights.SAMPLE_IMAGE))
  y = enhance.enhance(x, params, arch=arch)
  assert y.min() >= 0 and y.max() <= 1
  assert y.mean() > x.mean() + 0.1


@pytest.mark.slow
def test_official_weights_reproduce_official_outputs(shared, official_zerodce):
  """Whole test images through the Enhancer vs the official per-image means."""
  import json
  from zerodce_jax.formats import image_io
  summary = json.loads((shared / "reference" /
                        "zerodce_official_summary.json").read_text())
  params, fields, _ = official_zerodce
  en = enhance.Enhancer(models.DCENet(**fields), params)
  names = ["DICM/01.jpg", "DICM/66.jpg", "LIME/3.bmp", "LIME/7.bmp"]
  images = [image_io.read_image(str(shared / "test_images" / n))[0]
            for n in names]
  for name, y in zip(names, en(images)):
    ref = summary["per_image"][name]
    np.testing.assert_allclose(y.mean(axis=(0, 1)), ref["zerodce_mean_rgb"],
                               atol=1e-5)
    np.testing.assert_allclose(y.std(), ref["zerodce_std"], atol=1e-5)


def test_memory_budget_per_pixel_from_xla():
  """The per-pixel working memory is read from XLA's analysis: Zero-DCE++
  (depthwise temporaries) needs more than Zero-DCE, bfloat16 less."""
  base = enhance.bytes_per_pixel((7, 32, 8, False), "float32",
                                 enhance_too=True, backend="cpu")
  assert 300 < base < 4096
  assert enhance.bytes_per_pixel((7, 32, 8, True), "float32",
                                 enhance_too=True, backend="cpu") > base
  assert enhance.bytes_per_pixel((7, 32, 8, False), "bfloat16",
                                 enhance_too=True, backend="cpu") < base


def test_memory_budget_shrinks_batch_and_tiles_and_stays_exact():
  model = models.ZeroDCE(bias_init="torch")
  params = _params(model)
  images = [_rand(150, 130, 5), _rand(40, 60, 6), _rand(50, 50, 7)]
  free = enhance.Enhancer(model, params, max_memory=None, bucket=32)
  want = free(images)
  per_px = enhance.bytes_per_pixel((7, 32, 8, False), "float32",
                                   enhance_too=True, backend="cpu")
  # room for ~80x80 canvas pixels: the 150x130 image must be tiled (tile
  # side <= 80 - 2 * 7 -> 64), the small ones go one canvas per call
  tight = enhance.Enhancer(model, params, max_memory=int(6400 * per_px),
                           bucket=32, batch_size=8)
  assert tight.call_pixels(tight._enhance_fn) in range(6300, 6500)
  assert tight._limits(tight._enhance_fn) == (
      tight.call_pixels(tight._enhance_fn), 64)
  got = tight(images)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # the unbudgeted enhancer batched the two small images in one call
  assert free.traces == 2 and tight.traces == 2


def test_read_chunks_keep_big_photos_alone(tmp_path):
  from PIL import Image
  from zerodce_jax.apps import enhance_files
  jobs = []
  for i, side in enumerate([10, 10, 30, 10, 10, 10]):
    p = tmp_path / f"{i}.png"
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(p)
    jobs.append(enhance_files.Job(str(p), str(tmp_path / f"o{i}.png")))
  (tmp_path / "bad.png").write_bytes(b"not an image")
  jobs.insert(1, enhance_files.Job(str(tmp_path / "bad.png"), "x.png"))

  class Budget:
    batch_size, max_pixels = 2, 400

  chunks = list(enhance_files._read_chunks(jobs, Budget, lambda m: None))
  sizes = [[item[1].shape[0] for item in loaded] for loaded, _ in chunks]
  assert sizes == [[10, 10], [30], [10, 10], [10]]
  assert sum(bad for _, bad in chunks) == 1


def test_cli_memory_sizes():
  import argparse
  from zerodce_jax import cli
  from zerodce_jax.cli import _common
  assert _common.memory_size("1.5G") == enhance.DEFAULT_MAX_MEMORY
  assert _common.memory_size("800M") == 800 * 2**20
  assert _common.memory_size("none") is None
  assert _common.memory_size("auto") == "auto"
  for bad in ("10M", "lots"):
    with pytest.raises(argparse.ArgumentTypeError):
      _common.memory_size(bad)
  args = cli.build_parser().parse_args(["enhance", "x.jpg"])
  assert args.max_memory == "auto"
  # sized from the device: the CPU budget here, a share of an accelerator's
  # memory elsewhere
  assert enhance.default_max_memory() == enhance.DEFAULT_MAX_MEMORY

  class FakeGPU:
    platform = "gpu"

    def memory_stats(self):
      return {"bytes_limit": 80 * 2**30}

  assert enhance.default_max_memory(FakeGPU()) == 40 * 2**30
