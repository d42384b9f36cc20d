import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import denoise


def _scene(h=96, w=128, seed=0):
  """A smooth scene with one sharp edge, in [0.05, 0.6]."""
  yy, xx = np.mgrid[:h, :w]
  base = 0.3 + 0.15 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
  base[:, w // 2:] += 0.15
  rgb = np.stack([base, 0.9 * base, 0.8 * base], -1)
  return np.clip(rgb, 0.05, 0.6).astype(np.float32)


def _noisy(clean, a, b, seed=1):
  rng = np.random.default_rng(seed)
  sigma = np.sqrt(a * clean + b)
  return np.clip(clean + sigma * rng.standard_normal(clean.shape),
                 0, 1).astype(np.float32)


@pytest.mark.parametrize("a,b", [(0.002, 0.0004), (0.0, 0.001),
                                 (0.004, 0.0)])
def test_estimate_noise_recovers_shot_and_read_noise(a, b):
  clean = _scene(192, 256)
  x = jnp.asarray(_noisy(clean, a, b))
  ea, eb = jax.jit(denoise.estimate_noise)(x)
  var = lambda i, p, q: p * i + q
  for level in (0.1, 0.3, 0.5):  # the variance it predicts, within 25%
    assert var(level, float(ea), float(eb)) == pytest.approx(
        var(level, a, b), rel=0.25)


def test_estimate_noise_ignores_padding():
  x = _noisy(_scene(), 0.002, 0.0004)
  canvas = np.zeros((128, 192, 3), np.float32)
  canvas[:96, :128] = x
  mask = np.zeros((128, 192, 1), np.float32)
  mask[:96, :128] = 1
  whole = denoise.estimate_noise(jnp.asarray(x))
  padded = denoise.estimate_noise(jnp.asarray(canvas), mask=jnp.asarray(mask))
  np.testing.assert_allclose(whole, padded, rtol=1e-5)


def test_denoise_removes_noise_and_keeps_the_edge():
  clean = _scene()
  x = _noisy(clean, 0.002, 0.0004)
  sigma = np.sqrt(0.002 * clean + 0.0004)
  out = np.asarray(denoise.denoise(jnp.asarray(x), jnp.asarray(sigma),
                                   amount=0.5))
  rmse = lambda v: float(np.sqrt(np.mean((v - clean) ** 2)))
  assert rmse(out) < rmse(x) / 2.5
  # the step at the middle column survives (contrast within 20%)
  step = lambda v: float(v[:, 66:70].mean() - v[:, 58:62].mean())
  assert step(out) == pytest.approx(step(clean), rel=0.2)
  # amount 0 changes nothing
  np.testing.assert_array_equal(
      denoise.denoise(jnp.asarray(x), jnp.asarray(sigma), amount=0.0), x)


def test_masked_canvas_equals_the_whole_image():
  """Inside the image, a padded canvas gives the whole image's result."""
  clean = _scene(40, 56)
  x = _noisy(clean, 0.002, 0.0004)
  sigma = np.full_like(x, 0.03)
  whole = denoise.denoise(jnp.asarray(x), jnp.asarray(sigma), amount=0.7)
  canvas = np.zeros((64, 64, 3), np.float32)
  canvas[5:45, 3:59] = x
  s_canvas = np.zeros_like(canvas)
  s_canvas[5:45, 3:59] = sigma
  mask = np.zeros((64, 64, 1), np.float32)
  mask[5:45, 3:59] = 1
  out = denoise.denoise(jnp.asarray(canvas), jnp.asarray(s_canvas),
                        amount=0.7, mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(out)[5:45, 3:59], whole, atol=2e-6)


def test_box_mean_counts_valid_pixels_only():
  x = jnp.arange(1, 26, dtype=jnp.float32).reshape(5, 5, 1)
  mask = jnp.ones((5, 5, 1))
  m = denoise.box_mean(x, radius=1, mask=mask)
  assert float(m[0, 0, 0]) == pytest.approx((1 + 2 + 6 + 7) / 4)
  assert float(m[2, 2, 0]) == pytest.approx(13.0)
  assert denoise.HALO == 2 * denoise.LUMA_RADIUS + 2 * denoise.CHROMA_RADIUS


def test_opponent_space_is_orthonormal():
  rgb = jnp.asarray(np.random.default_rng(0).random((7, 3)), jnp.float32)
  np.testing.assert_allclose(denoise.from_opponent(denoise.to_opponent(rgb)),
                             rgb, atol=1e-6)
  opp = np.asarray(denoise._OPP)
  np.testing.assert_allclose(opp @ opp.T, np.eye(3), atol=1e-6)
