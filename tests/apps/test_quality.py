"""Controls beyond the paper through the Enhancer, the CLI and the API:
strength, exposure, highlight protection (denoising: test_denoise.py)."""

import subprocess
import sys

import numpy as np
import pytest

from zerodce_jax import cli
from zerodce_jax.apps import enhance, quality
from zerodce_jax.core import metrics, models
from zerodce_jax.formats import image_io, weights


@pytest.fixture(scope="module", params=["zerodce-default",
                                        "zerodce-pp-default"])
def bundled(request):
  params, arch, _ = weights.load_weights(request.param)
  model = models.model_from_arch(arch, scale_factor=12)
  return enhance.Enhancer(model, params)


@pytest.fixture(scope="module")
def dark():
  x, _ = image_io.read_image(weights.asset_path(weights.SAMPLE_IMAGE))
  return [x[:200, :264], x[300:, 200:]]   # 200x264 and 212x312


def test_controls_check_their_values():
  for bad in (dict(strength=-1), dict(strength=float("nan")),
              dict(exposure=0.0), dict(exposure=1.5), dict(exposure="most"),
              dict(denoise=2), dict(colour=-0.1), dict(colour=1.5)):
    with pytest.raises(quality.ControlError):
      quality.Controls(**bad)
  assert quality.PLAIN.plain and not quality.Controls(strength=0.5).plain
  assert not quality.Controls(colour=0.5).plain
  assert quality.PLAIN.shoulder is None
  assert quality.Controls(colour=0.5).shoulder == quality.HIGHLIGHT_SHOULDER
  assert quality.parse_exposure("off") is None
  assert quality.parse_exposure("auto") == "auto"
  assert quality.parse_exposure("MEAN") == "mean"
  assert quality.parse_exposure("0.4") == 0.4
  assert quality.parse_denoise("auto") == quality.AUTO_DENOISE
  assert quality.parse_colour("auto") == quality.AUTO_COLOUR
  assert quality.parse_colour("off") == 0.0
  with pytest.raises(quality.ControlError, match="--colour wants"):
    quality.parse_colour("blue")
  # the rules: (rule, target, most strength)
  assert quality.Controls(exposure="auto").exposure_rule() == (
      "scene", None, quality.AUTO_MAX_STRENGTH)
  assert quality.Controls(exposure="mean").exposure_rule() == (
      "target", quality.MEAN_EXPOSURE, quality.AUTO_MAX_STRENGTH)
  assert quality.Controls(exposure=0.5).exposure_rule() == (
      "target", 0.5, quality.MAX_STRENGTH)
  assert quality.Controls(denoise=0.3).needs_noise
  assert quality.Controls(exposure="auto").needs_noise
  assert not quality.Controls(exposure=0.5, colour=1).needs_noise
  # the bundled defaults, for photos and for videos (no denoising)
  assert quality.resolve(bundled=True) == quality.BUNDLED_DEFAULT
  assert quality.resolve(bundled=True, video=True).denoise == 0
  assert quality.resolve(bundled=True, video=True).exposure == "auto"
  with pytest.raises(quality.ControlError, match="off, auto"):
    quality.parse_denoise("banana")
  with pytest.raises(quality.ControlError, match="--plain"):
    quality.resolve(plain=True, exposure="0.4")
  # converted official weights: nothing but the paper, whatever the defaults
  assert quality.resolve(bundled=False) == quality.PLAIN


def test_plain_controls_take_the_exact_path(bundled, dark):
  plain = bundled(dark)
  for c in (quality.PLAIN, quality.Controls(strength=1.0)):
    for a, b in zip(plain, bundled(dark, controls=c)):
      np.testing.assert_array_equal(a, b)


def test_strength_zero_is_the_input_and_one_the_model(bundled, dark):
  zero = bundled(dark, controls=quality.Controls(strength=0.0))
  for x, y in zip(dark, zero):
    np.testing.assert_allclose(y, x, atol=1e-7)
  # strength 1 through the controlled path (denoise asks for it): the model
  one = bundled(dark, controls=quality.Controls(strength=1.0,
                                                protect_highlights=False))
  for a, b in zip(bundled(dark), one):
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_strength_orders_the_brightness(bundled, dark):
  means = [float(metrics.brightness(bundled(dark[:1], controls=quality
                                            .Controls(strength=s))[0]))
           for s in (0.0, 0.5, 1.0, 2.0)]
  assert means == sorted(means) and means[0] < means[-1]


@pytest.mark.parametrize("target", [0.35, 0.5])
def test_exposure_lands_on_the_target(bundled, dark, target):
  out = bundled(dark, controls=quality.Controls(exposure=target))
  for y in out:
    assert abs(float(metrics.brightness(y)) - target) < 0.02


def test_render_of_estimated_maps_equals_the_call(bundled, dark):
  c = quality.Controls(exposure=0.45)
  maps = bundled.estimate(dark)
  for a, b in zip(bundled(dark, controls=c),
                  bundled.render(dark, maps, controls=c)):
    np.testing.assert_allclose(a, b, atol=2e-6)
  c = quality.Controls(strength=2.5)
  for a, b in zip(bundled(dark, controls=c),
                  bundled.render(dark, maps, controls=c)):
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_controlled_tiles_equal_the_whole_image(dark):
  params, arch, _ = weights.load_weights("zerodce-default")
  model = models.model_from_arch(arch)
  c = quality.Controls(exposure=0.45)
  whole = enhance.Enhancer(model, params)(dark, controls=c)
  tiled = enhance.Enhancer(model, params, max_pixels=4096, tile=64)(
      dark, controls=c)
  for a, b in zip(whole, tiled):
    np.testing.assert_allclose(a, b, atol=2e-6)


def test_exposure_by_hand_goes_past_the_automatic_cap():
  """``--exposure E`` is reached wherever the curves can reach it
  (strength 4); ``auto`` and ``mean`` stop at strength 2."""
  params, arch, _ = weights.load_weights("zerodce-default")
  en = enhance.Enhancer(models.model_from_arch(arch), params)
  x, _ = image_io.read_image(weights.asset_path(weights.SAMPLE_IMAGE))
  x = x[:160, :192] * 0.05  # darker still: strength 2 falls far short
  short = en([x], controls=quality.Controls(strength=2.0))[0]
  assert float(metrics.brightness(short)) < 0.5
  y = en([x], controls=quality.Controls(exposure=0.55))[0]
  assert abs(float(metrics.brightness(y)) - 0.55) < 0.02
  mean = en([x], controls=quality.Controls(exposure="mean"))[0]
  assert float(metrics.brightness(mean)) < quality.MEAN_EXPOSURE - 0.02


def test_defaults_estimate_zerodce_maps_at_the_map_scale(dark):
  params, arch, _ = weights.load_weights("zerodce-default")
  en = enhance.Enhancer(models.model_from_arch(arch), params)
  assert en.map_scale_for(quality.PLAIN) == 1
  assert en.map_scale_for(quality.BUNDLED_DEFAULT) == \
      enhance.DEFAULT_MAP_SCALE == 2
  maps = en.estimate(dark[:1])[0]
  assert maps.shape == (100, 132, 24)  # 200x264 at 1/2
  full = en.estimate(dark[:1], map_scale=1)[0]
  assert full.shape == (200, 264, 24) and full.dtype == np.float16
  # the maps of 2x2 block means, up-sampled, against every pixel's maps
  c = quality.Controls(strength=1.5)
  fast = en(dark[:1], controls=c)[0]
  exact = enhance.Enhancer(models.model_from_arch(arch), params,
                           map_scale=1)(dark[:1], controls=c)[0]
  assert float(metrics.psnr(fast, exact)) > 30


def test_one_call_api_takes_the_controls():
  params, arch, _ = weights.load_weights("zerodce-default")
  from PIL import Image
  x = np.asarray(Image.open(weights.asset_path(weights.SAMPLE_IMAGE)))
  y = enhance.enhance(x, params, arch=arch, exposure=0.5)
  assert y.dtype == np.uint8 and abs(y.mean() / 255 - 0.5) < 0.02
  with pytest.raises(quality.ControlError):
    enhance.enhance(x, params, arch=arch, strength=-1)


@pytest.mark.parametrize("argv,match", [
    (["--strength", "-1"], "--strength must be in"),
    (["--exposure", "7"], "--exposure wants off, auto"),
    (["--denoise", "banana"], "--denoise wants off, auto"),
    (["--plain", "--denoise", "auto"], "--plain takes no --denoise"),
])
def test_bad_control_values_are_one_line(tmp_path, capsys, argv, match):
  assert cli.main(["enhance", "--sample", "-o", str(tmp_path / "o"),
                   "--no-progress"] + argv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and match in err and "Traceback" not in err
  assert not (tmp_path / "o").exists()


def test_cli_exposure_writes_the_brightness_asked(tmp_path):
  out = tmp_path / "o"
  r = subprocess.run([sys.executable, "-m", "zerodce_jax", "enhance",
                      "--sample", "-o", str(out), "--exposure", "0.5",
                      "--no-progress"], capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr
  y, _ = image_io.read_image(str(out / "sample_lowlight.jpg"))
  assert abs(float(metrics.brightness(y)) - 0.5) < 0.02


def test_denoised_tiles_and_strips_equal_the_whole_image(dark):
  """The denoiser reads beyond each tile and strip (its halo): the result
  is the whole image's, for Zero-DCE tiles and Zero-DCE++ strips alike."""
  c = quality.Controls(exposure=0.45, denoise=0.5)
  for name in ("zerodce-default", "zerodce-pp-default"):
    params, arch, _ = weights.load_weights(name)
    model = models.model_from_arch(arch, scale_factor=12)
    whole = enhance.Enhancer(model, params)(dark, controls=c)
    cut = enhance.Enhancer(model, params, max_pixels=4096, tile=64,
                           strip_rows=64)(dark, controls=c)
    for a, b in zip(whole, cut):
      np.testing.assert_allclose(a, b, atol=2e-6)
    maps = enhance.Enhancer(model, params).estimate(dark)
    rendered = enhance.Enhancer(model, params).render(dark, maps, controls=c)
    for a, b in zip(whole, rendered):
      np.testing.assert_allclose(a, b, atol=1e-5)


def _flat_patch_noise(x, y, *, size=16):
  """High-pass residual of ``y`` (minus its 5x5 mean) in the flattest dark
  patches of the input ``x``."""
  import jax.numpy as jnp
  from zerodce_jax.core import guided
  planes = jnp.moveaxis(jnp.asarray(y), -1, 0)
  hp = np.moveaxis(np.asarray(planes - guided.box_mean(
      planes, radius=2, mask=jnp.ones(y.shape[:2]))), 0, -1)
  h, w = x.shape[:2]
  patches = [(x[i:i + size, j:j + size].std(), i, j)
             for i in range(0, h - size, size) for j in range(0, w - size, size)
             if x[i:i + size, j:j + size].mean() < 0.2]
  patches.sort()
  return float(np.mean([hp[i:i + size, j:j + size].std()
                        for _, i, j in patches[:8]]))


def test_denoise_lowers_the_noise_the_curves_amplify(bundled):
  """A dark, noisy synthetic photo (smooth scene, linear exposure x0.1, shot
  and read noise): at the same brightness, the flat patches' noise drops
  to well under half."""
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:192, :256]
  scene = 0.5 + 0.3 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
  clean = 0.1 * np.stack([scene, 0.9 * scene, 0.7 * scene], -1)
  x = np.clip(clean + rng.standard_normal(clean.shape)
              * np.sqrt(0.002 * clean + 0.0001), 0, 1).astype(np.float32)
  plain = bundled([x], controls=quality.Controls(exposure=0.4))[0]
  den = bundled([x], controls=quality.Controls(
      exposure=0.4, denoise=quality.AUTO_DENOISE))[0]
  assert abs(float(metrics.brightness(den) - metrics.brightness(plain))) \
      < 0.01
  assert _flat_patch_noise(x, den) < _flat_patch_noise(x, plain) / 2.5


def test_converted_official_weights_default_to_the_official_path(
    shared, official_zerodce, tmp_path):
  """No flag with converted official weights: exactly the plain Enhancer
  (the official outputs), not the bundled models' defaults."""
  from zerodce_jax.formats import params_io
  params, arch, _ = official_zerodce
  w = tmp_path / "official.msgpack"
  params_io.save_params(str(w), params, arch=arch)
  src = shared / "test_images" / "DICM" / "01.jpg"
  assert cli.main(["enhance", str(src), "-o", str(tmp_path / "o"),
                   "--weights", str(w), "--format", "png",
                   "--no-progress"]) == 0
  got, _ = image_io.read_image(str(tmp_path / "o" / "01.png"))
  x, _ = image_io.read_image(str(src))
  want = enhance.Enhancer(models.model_from_arch(arch), params)([x])[0]
  np.testing.assert_array_equal(image_io.from_float(got, 8),
                                image_io.from_float(want, 8))
