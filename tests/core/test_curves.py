import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerodce_jax.core import curves


def test_le_curve_hand_values():
  i = jnp.array([0.0, 0.25, 0.5, 0.8, 1.0])
  np.testing.assert_allclose(curves.le_curve(i, -1.0), i**2, atol=1e-7)
  np.testing.assert_allclose(curves.le_curve(i, 0.0), i, atol=0)
  np.testing.assert_allclose(curves.le_curve(i, 1.0), 1 - (1 - i)**2,
                             atol=1e-7)
  # 0.25 + 0.5 * 0.25 * 0.75 = 0.34375, exactly representable
  assert float(curves.le_curve(jnp.float32(0.25), 0.5)) == 0.34375


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-1, 1), x=st.floats(0, 1), y=st.floats(0, 1))
def test_le_curve_in_range_and_monotonic(a, x, y):
  lo, hi = min(x, y), max(x, y)
  out = np.asarray(curves.le_curve(jnp.array([lo, hi], jnp.float32),
                                   jnp.float32(a)))
  assert 0.0 <= out[0] <= out[1] <= 1.0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_iterated_curve_in_range_and_monotonic(seed):
  rng = np.random.default_rng(seed)
  x = np.sort(rng.uniform(0, 1, size=(1, 1, 64, 3)).astype(np.float32),
              axis=2)
  # the same per-pixel maps for every pixel so the order along W is kept
  a = np.broadcast_to(rng.uniform(-1, 1, size=(1, 1, 1, 24)),
                      (1, 1, 64, 24)).astype(np.float32)
  y = np.asarray(curves.apply_curves(jnp.asarray(x), jnp.asarray(a)))
  assert y.min() >= 0.0 and y.max() <= 1.0
  assert np.all(np.diff(y, axis=2) >= 0)


def _reference_iterate(x, maps, n):
  for k in range(n):
    a = maps[..., 3 * k:3 * k + 3] if maps.shape[-1] > 3 else maps
    x = x + a * x * (1 - x)
  return x


def test_apply_curves_matches_loop_and_intermediates():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(2, 5, 6, 3)).astype(np.float32)
  maps = rng.uniform(-1, 1, size=(2, 5, 6, 24)).astype(np.float32)
  y, inter = curves.apply_curves(x, maps, return_intermediate=(4,))
  np.testing.assert_allclose(y, _reference_iterate(x, maps, 8), atol=1e-6)
  np.testing.assert_allclose(inter[4], _reference_iterate(x, maps, 4),
                             atol=1e-6)
  assert set(inter) == {4}
  _, all_inter = curves.apply_curves(x, maps, return_intermediate=True)
  assert sorted(all_inter) == list(range(1, 9))
  np.testing.assert_array_equal(all_inter[8], y)


def test_shared_map_is_reused_for_every_iteration():
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
  a = rng.uniform(-1, 1, size=(1, 4, 4, 3)).astype(np.float32)
  y = curves.apply_curves(x, a, iterations=8)
  np.testing.assert_allclose(y, _reference_iterate(x, a, 8), atol=1e-6)
  np.testing.assert_allclose(curves.apply_curves(x, np.tile(a, 8)), y,
                             atol=1e-7)


def test_bad_map_counts_raise():
  x = jnp.zeros((1, 2, 2, 3))
  with pytest.raises(ValueError, match="multiple of 3"):
    curves.apply_curves(x, jnp.zeros((1, 2, 2, 4)))
  with pytest.raises(ValueError, match="cannot drive"):
    curves.apply_curves(x, jnp.zeros((1, 2, 2, 6)), iterations=8)
  with pytest.raises(ValueError, match="not in 1..8"):
    curves.apply_curves(x, jnp.zeros((1, 2, 2, 24)), return_intermediate=(9,))


@pytest.mark.parametrize("transform", ["eager", "jit", "vmap"])
def test_transforms_agree(transform):
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(3, 4, 5, 3)).astype(np.float32)
  maps = rng.uniform(-1, 1, size=(3, 4, 5, 24)).astype(np.float32)
  expected = np.stack([_reference_iterate(x[i], maps[i], 8) for i in range(3)])
  fn = curves.apply_curves
  if transform == "jit":
    fn = jax.jit(fn)
  elif transform == "vmap":
    fn = jax.vmap(fn)
  np.testing.assert_allclose(fn(x, maps), expected, atol=1e-6)


def test_bfloat16_stays_bfloat16_and_close():
  rng = np.random.default_rng(3)
  x = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
  maps = rng.uniform(-1, 1, size=(1, 4, 4, 24)).astype(np.float32)
  y16 = curves.apply_curves(jnp.asarray(x, jnp.bfloat16), maps)
  assert y16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y16, np.float32),
                             curves.apply_curves(x, maps), atol=2e-2)


def test_gradient_matches_finite_differences():
  x = jnp.array([[[[0.2, 0.4, 0.7]]]], jnp.float32)
  a = jnp.full((1, 1, 1, 24), 0.3, jnp.float32)
  f = lambda a: curves.apply_curves(x, a).sum()
  g = jax.grad(f)(a)
  x64 = np.array([0.2, 0.4, 0.7])
  eps = 1e-3
  for k in (0, 5, 23):
    ap = np.full(24, 0.3)
    am = ap.copy()
    ap[k] += eps
    am[k] -= eps
    fd = (_reference_iterate(x64, ap, 8).sum()
          - _reference_iterate(x64, am, 8).sum()) / (2 * eps)
    np.testing.assert_allclose(float(g[0, 0, 0, k]), fd, rtol=1e-3)


# ------------------------------------------------ controls beyond the paper --
def _maps(seed, shape=(5, 7, 24), lo=-1.0, hi=1.0):
  return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, shape),
                     jnp.float32)


def test_noise_gain_is_the_derivative_of_the_curves():
  """Closed product == jax.jvp == central finite differences (float64)."""
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (5, 7, 3)))
  a = _maps(1)
  g = curves.noise_gain(x, a)
  _, jvp = jax.jvp(lambda v: curves.apply_curves(v, a), (x,),
                   (jnp.ones_like(x),))
  np.testing.assert_allclose(g, jvp, rtol=1e-5, atol=1e-6)
  x64 = np.asarray(x, np.float64)
  a64 = np.asarray(a, np.float64)
  eps = 1e-6
  fd = (_reference_iterate(x64 + eps, a64, 8)
        - _reference_iterate(x64 - eps, a64, 8)) / (2 * eps)
  np.testing.assert_allclose(np.asarray(g, np.float64), fd, rtol=1e-4,
                             atol=1e-5)
  # Zero-DCE++: one shared map, 8 iterations
  g_pp = curves.noise_gain(x, a[..., :3], iterations=8)
  _, jvp_pp = jax.jvp(lambda v: curves.apply_curves(v, a[..., :3],
                                                    iterations=8),
                      (x,), (jnp.ones_like(x),))
  np.testing.assert_allclose(g_pp, jvp_pp, rtol=1e-5, atol=1e-6)
  # brightening maps amplify the darks: gain > 1 at I = 0 with a > 0
  assert float(curves.noise_gain(jnp.zeros((1, 1, 3)),
                                 jnp.full((1, 1, 24), 0.5)).min()) > 1


def test_strength_zero_is_the_input_and_one_is_the_model():
  x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (5, 7, 3)),
                  jnp.float32)
  a = _maps(3)
  y0, g0 = curves.apply_at_strength(x, a, 0.0, shoulder=(0.6, 0.97))
  np.testing.assert_array_equal(y0, x)
  np.testing.assert_array_equal(g0, jnp.ones_like(x))
  y1, g1 = curves.apply_at_strength(x, a, 1.0)
  np.testing.assert_array_equal(y1, curves.apply_curves(x, a))
  np.testing.assert_allclose(g1, curves.noise_gain(x, a), rtol=1e-6)


@pytest.mark.parametrize("strength", [0.3, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("shoulder", [None, (0.6, 0.97)])
def test_strength_keeps_the_curve_monotone(strength, shoulder):
  a = np.broadcast_to(np.asarray(_maps(4, (1, 1, 24))), (1, 256, 24))
  x = jnp.asarray(np.linspace(0, 1, 256, dtype=np.float32)[None, :, None]
                  .repeat(3, -1))
  y, g = curves.apply_at_strength(x, jnp.asarray(a), strength,
                                  shoulder=shoulder)
  assert bool(jnp.all(jnp.diff(y[0, :, 0]) >= -1e-7))
  assert float(g.min()) >= 0
  assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_shoulder_gain_is_the_derivative_and_keeps_highlights_below():
  x = jnp.asarray(np.random.default_rng(5).uniform(0, 1, (6, 8, 3)))
  a = _maps(6, (6, 8, 24), lo=0.0)
  f = lambda v: curves.apply_at_strength(v, a, 3.0, shoulder=(0.6, 0.97))[0]
  _, g = curves.apply_at_strength(x, a, 3.0, shoulder=(0.6, 0.97))
  _, jvp = jax.jvp(f, (x,), (jnp.ones_like(x),))
  np.testing.assert_allclose(g, jvp, rtol=1e-4, atol=1e-5)
  # brightening never pushes a pixel below the ceiling above it...
  y = f(x)
  below = np.asarray(x) < 0.97
  assert float(np.asarray(y)[below].max()) <= 0.97 + 1e-6
  # ...and it still brightens what is dark
  assert float(y[x < 0.3].min() - x[x < 0.3].min()) >= 0
  w, dw = curves.shoulder_weight(jnp.asarray([0.5, 0.785, 0.99]), knee=0.6,
                                 ceiling=0.97)
  np.testing.assert_allclose(w, [1.0, 0.5, 0.0], atol=1e-6)
  np.testing.assert_allclose(dw, [0.0, -1 / 0.37, 0.0], rtol=1e-6)
