import jax.numpy as jnp
import numpy as np
import pytest

from zerodce_jax.core import resize


def test_downscale_half_pixel_centres():
  # src = (dst + 0.5) * 2 - 0.5 = 0.5, 2.5: averages of neighbouring pairs
  w = resize.interp_matrix(4, 2, align_corners=False)
  np.testing.assert_allclose(w, [[.5, .5, 0, 0], [0, 0, .5, .5]])


def test_upscale_align_corners():
  w = resize.interp_matrix(2, 4, align_corners=True)
  np.testing.assert_allclose(
      w, [[1, 0], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [0, 1]], atol=1e-12)


@pytest.mark.parametrize("n_in,n_out,ac", [(37, 3, False), (3, 37, True),
                                           (12, 1, False), (1, 5, True)])
def test_rows_are_convex_weights(n_in, n_out, ac):
  w = resize.interp_matrix(n_in, n_out, align_corners=ac)
  assert w.shape == (n_out, n_in)
  np.testing.assert_allclose(w.sum(axis=1), 1.0)
  assert w.min() >= 0


def test_torch_downscaled_size():
  assert resize.torch_downscaled_size(192, 12) == 16
  assert resize.torch_downscaled_size(50, 12) == 4
  assert resize.torch_downscaled_size(11, 12) == 0


def test_resize_bilinear_separable():
  x = np.arange(2 * 4 * 6 * 1, dtype=np.float32).reshape(2, 4, 6, 1)
  y = resize.resize_bilinear(jnp.asarray(x), 2, 3, align_corners=False)
  # each output is the mean of a 2x2 block of a linear ramp
  expected = x.reshape(2, 2, 2, 3, 2, 1).mean(axis=(2, 4))
  np.testing.assert_allclose(y, expected, rtol=1e-6)
