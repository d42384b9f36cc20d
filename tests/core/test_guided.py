import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import guided


def _plane(h=48, w=64, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.random((h, w)), jnp.float32)


def test_box_mean_counts_valid_pixels_only():
  x = jnp.arange(1, 26, dtype=jnp.float32).reshape(5, 5)
  mask = jnp.ones((5, 5))
  m = guided.box_mean(x, radius=1, mask=mask)
  assert float(m[0, 0]) == pytest.approx((1 + 2 + 6 + 7) / 4)
  assert float(m[2, 2]) == pytest.approx(13.0)
  # a masked-out column counts for nothing
  mask = mask.at[:, 0].set(0)
  m = guided.box_mean(x, radius=1, mask=mask)
  assert float(m[2, 1]) == pytest.approx((8 + 13 + 18 + 7 + 12 + 17) / 6)


def test_window_sum_equals_a_direct_sum():
  x = _plane(9, 11)
  got = np.asarray(guided.window_sum(x, 2))
  xp = np.pad(np.asarray(x), 2)
  want = sum(xp[i:i + 9, j:j + 11] for i in range(5) for j in range(5))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_self_guided_filter_keeps_edges_and_averages_flat_noise():
  rng = np.random.default_rng(1)
  clean = np.zeros((64, 64), np.float32)
  clean[:, 32:] = 0.8
  noisy = jnp.asarray(clean + rng.normal(0, 0.02, clean.shape), jnp.float32)
  eps = jnp.full((64, 64), 0.02 ** 2 * 4)
  out = np.asarray(guided.guided_filter(noisy, noisy, eps, radius=2,
                                        mask=jnp.ones((64, 64))))
  flat = (slice(8, 56), slice(4, 26))
  assert out[flat].std() < np.asarray(noisy)[flat].std() / 2
  step = out[:, 34:40].mean() - out[:, 24:30].mean()
  assert step == pytest.approx(0.8, abs=0.02)
  # no regulariser to speak of: the filter is (almost) the identity
  tiny = guided.guided_filter(noisy, noisy, jnp.zeros((64, 64)), radius=2,
                              mask=jnp.ones((64, 64)))
  np.testing.assert_allclose(tiny, noisy, atol=2e-3)


def test_down_and_up_by_hand():
  x = jnp.asarray([[1., 3., 5., 7.], [1., 3., 5., 7.]])
  m = jnp.ones((2, 4))
  lo, m_lo = guided.down(x, m, 2)
  np.testing.assert_allclose(lo, [[2., 6.]])
  np.testing.assert_allclose(m_lo, [[1., 1.]])
  # half-pixel centres: 0.75 of the nearer sample, 0.25 of the other; the
  # edge sample repeated beyond the array
  up = np.asarray(guided.up(lo, m_lo, 2))
  np.testing.assert_allclose(up[0], [2., 3., 5., 6.])
  np.testing.assert_allclose(up, guided.up_linear(lo, 2))
  # beside a block outside the mask, the valid neighbour's value (in the
  # invalid block itself, whatever: nothing reads it)
  up = np.asarray(guided.up(lo, jnp.asarray([[1., 0.]]), 2))
  np.testing.assert_allclose(up[0, :3], [2., 2., 2.])


@pytest.mark.parametrize("f", [2, 3, 12])
def test_up_linear_is_linear_interpolation(f):
  lo = _plane(5, 7)
  got = np.asarray(guided.up_linear(lo, f))
  pos = (np.arange(5 * f) + 0.5) / f - 0.5  # low-resolution coordinates
  posc = (np.arange(7 * f) + 0.5) / f - 0.5
  rows = np.stack([np.interp(pos, np.arange(5), np.asarray(lo)[:, j])
                   for j in range(7)], -1)
  want = np.stack([np.interp(posc, np.arange(7), rows[i])
                   for i in range(5 * f)], 0)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_guided_upsample_follows_the_guides_edge():
  # a step edge in the guide, a step in the values of the same blocks
  guide = np.zeros((32, 32), np.float32)
  guide[:, 16:] = 1.0
  low = np.where(np.arange(16) < 8, 0.2, 0.6)[None].repeat(16, 0)
  args = dict(factor=2, radius=1, mask=jnp.ones((32, 32)))
  up = np.asarray(guided.guided_upsample(
      jnp.asarray(guide), jnp.asarray(low, jnp.float32), eps=1e-4, **args))
  lin = np.asarray(guided.up_linear(jnp.asarray(low, jnp.float32), 2))
  # the linear interpolation blurs over the edge, the guided one much less
  for col, want in ((15, 0.2), (16, 0.6)):
    assert abs(up[8, col] - want) < 0.4 * abs(lin[8, col] - want)
  assert up[8, 12] == pytest.approx(0.2, abs=1e-3)
  assert up[8, 20] == pytest.approx(0.6, abs=1e-3)
  # a flat guide: the linear up-sampling of the window means (b = mean p)
  low = jnp.asarray(low, jnp.float32)
  flat = guided.guided_upsample(jnp.full((32, 32), 0.5), low, eps=1e-4,
                                **args)
  ones = jnp.ones((16, 16))
  smooth = guided.box_mean(guided.box_mean(low, radius=1, mask=ones),
                           radius=1, mask=ones)
  np.testing.assert_allclose(flat, guided.up_linear(smooth, 2), atol=1e-5)


def test_a_masked_canvas_gives_the_whole_images_result():
  """A strip or tile (the image placed on a larger canvas at an even
  offset, masked) computes what the whole image computes."""
  x = _plane(20, 28, seed=3)
  eps = jnp.full(x.shape, 1e-3)

  def run(v, e, m):
    lo, m_lo = guided.down(v, m, 2)
    smooth = guided.guided_filter(lo, lo, guided.down(e, m, 2)[0], radius=2,
                                  mask=m_lo)
    return guided.guided_filter(v, v, e, radius=2, mask=m) + guided.up(
        smooth - lo, m_lo, 2)

  whole = run(x, eps, jnp.ones(x.shape))
  canvas = jnp.zeros((32, 40)).at[4:24, 6:34].set(x)
  ce = jnp.zeros((32, 40)).at[4:24, 6:34].set(eps)
  cm = jnp.zeros((32, 40)).at[4:24, 6:34].set(1.0)
  out = jax.jit(run)(canvas, ce, cm)
  np.testing.assert_allclose(np.asarray(out)[4:24, 6:34], whole, atol=2e-6)
