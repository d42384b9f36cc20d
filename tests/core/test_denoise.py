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
                                   amount=1.0))
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
  # at an even offset (the 2x2 blocks of the coarse stages keep their
  # grid, as tiles and strips do)
  canvas = np.zeros((64, 64, 3), np.float32)
  canvas[6:46, 4:60] = x
  s_canvas = np.zeros_like(canvas)
  s_canvas[6:46, 4:60] = sigma
  mask = np.zeros((64, 64, 1), np.float32)
  mask[6:46, 4:60] = 1
  out = denoise.denoise(jnp.asarray(canvas), jnp.asarray(s_canvas),
                        amount=0.7, mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(out)[6:46, 4:60], whole, atol=2e-6)


def test_the_halo_covers_what_the_filters_read():
  """The result at a pixel depends on nothing farther than HALO: a change
  just beyond it leaves the pixel alone, one just inside changes it."""
  rng = np.random.default_rng(7)
  x = rng.uniform(0.1, 0.5, (96, 96, 3)).astype(np.float32)
  sigma = np.full_like(x, 0.05)
  run = lambda v: np.asarray(denoise.denoise(jnp.asarray(v),
                                             jnp.asarray(sigma), amount=1.0))
  base = run(x)
  h = denoise.HALO
  far = x.copy()
  far[48 + h + 1, 48] += 0.3
  np.testing.assert_allclose(run(far)[48, 48], base[48, 48], atol=1e-6)
  near = x.copy()
  near[48 + 2, 48] += 0.3
  assert np.abs(run(near)[48, 48] - base[48, 48]).max() > 1e-4
  assert h % 4 == 0


def test_noise_below_the_visible_is_left_alone():
  """A clean photo whose amplified noise is invisible keeps its texture."""
  rng = np.random.default_rng(8)
  x = rng.uniform(0.1, 0.9, (48, 64, 3)).astype(np.float32)  # all texture
  sigma = np.full_like(x, 0.5 * denoise.NOISE_VISIBLE)
  out = denoise.denoise(jnp.asarray(x), jnp.asarray(sigma), amount=1.0)
  np.testing.assert_allclose(out, x, atol=1e-4)


def test_the_coarse_stages_alone_keep_the_grain_and_take_the_blotches():
  rng = np.random.default_rng(9)
  h, w = 128, 128
  grain = rng.normal(0, 0.02, (h, w, 1))
  blotch = np.kron(rng.normal(0, 0.02, (h // 4, w // 4, 1)),
                   np.ones((4, 4, 1)))
  x = np.clip(0.3 + grain + blotch, 0, 1).astype(np.float32) * np.ones(3)
  x = x.astype(np.float32)
  var = jnp.full((h, w), 0.02 ** 2)
  run = lambda fine: np.asarray(denoise.denoise_planes(
      jnp.moveaxis(jnp.asarray(x), -1, 0), var, var, amount=1.0,
      mask=jnp.ones((h, w)), fine=fine))[0]
  coarse, full = run(False), run(True)
  std = lambda v: float(np.std(v[8:-8, 8:-8]))
  assert std(full) < std(coarse) < std(x[..., 0])


def test_opponent_space_is_orthonormal():
  rgb = jnp.asarray(np.random.default_rng(0).random((7, 3)), jnp.float32)
  np.testing.assert_allclose(denoise.from_opponent(denoise.to_opponent(rgb)),
                             rgb, atol=1e-6)
  opp = np.asarray(denoise._OPP)
  np.testing.assert_allclose(opp @ opp.T, np.eye(3), atol=1e-6)


def _reference_noise(image, bins=8, scale=2):
  """``estimate_noise`` by sorting (quantile edges, per-bin medians)."""
  h, w, c = image.shape
  if scale > 1:
    h, w = h // scale, w // scale
    image = image[:h * scale, :w * scale].reshape(
        h, scale, w, scale, c).mean(axis=(1, 3))
  xp = np.pad(image, ((1, 1), (1, 1), (0, 0)))
  k = ((1, -2, 1), (-2, 4, -2), (1, -2, 1))
  r = sum(k[i][j] * xp[i:i + h, j:j + w] for i in range(3)
          for j in range(3)) / 6
  mu = sum(xp[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
  r, mu = np.abs(r[1:-1, 1:-1]).ravel(), mu[1:-1, 1:-1].ravel()
  edges = np.quantile(mu, np.linspace(0.02, 0.98, bins + 1))
  v, m = [], []
  for lo, hi in zip(edges[:-1], edges[1:]):
    sel = (mu >= lo) & (mu < hi)
    v.append((1.4826 * np.median(r[sel])) ** 2)
    m.append(mu[sel].mean())
  slope, icpt = np.polyfit(m, v, 1)
  return max(slope, 0) * scale ** 2, max(icpt, 0) * scale ** 2


@pytest.mark.parametrize("scale", [1, 2])
def test_histogram_estimate_agrees_with_sorting(scale):
  x = _noisy(_scene(192, 256), 0.003, 0.0005, seed=4)
  a, b = denoise.estimate_noise(jnp.asarray(x), scale=scale)
  ra, rb = _reference_noise(x, scale=scale)
  for level in (0.1, 0.3, 0.5):
    assert float(a) * level + float(b) == pytest.approx(
        ra * level + rb, rel=0.05)
