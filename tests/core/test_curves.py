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
