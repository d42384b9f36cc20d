import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from zerodce_jax.core import metrics


@pytest.fixture
def pair():
  rng = np.random.default_rng(0)
  a = rng.random((40, 52, 3)).astype(np.float32)
  b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
  return a, b


def test_identical_images():
  a = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
  assert metrics.psnr(a, a) == np.inf
  assert float(metrics.ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
  assert metrics.mae_255(a, a) == 0.0
  assert metrics.loe(a, a) == 0.0


def test_constant_offset_known_values():
  a = np.full((16, 16, 3), 0.25, np.float32)
  b = a + 0.1
  # MSE 0.01 -> PSNR 20 dB; MAE 0.1 * 255 = 25.5
  assert float(metrics.psnr(a, b)) == pytest.approx(20.0, abs=1e-4)
  assert float(metrics.mae_255(a, b)) == pytest.approx(25.5, abs=1e-4)
  assert float(metrics.brightness(b)) == pytest.approx(0.35, abs=1e-6)


def test_dm_pix_agrees_with_scikit_image(pair):
  a, b = pair
  ref_ssim = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False,
                                   data_range=1.0)
  assert float(metrics.ssim(a, b)) == pytest.approx(ref_ssim, abs=1e-5)
  assert float(metrics.psnr(a, b)) == pytest.approx(
      peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-4)


def test_loe_orders():
  # a smooth ramp: a monotonic tone curve keeps the order (LOE 0), an
  # inversion breaks every pair with different lightness
  x = np.linspace(0, 1, 100 * 120, dtype=np.float32).reshape(100, 120)
  img = np.stack([x, x * 0.5, x * 0.2], axis=-1)
  assert metrics.loe(img, np.sqrt(img)) == 0.0
  inverted = metrics.loe(img, 1 - img)
  assert inverted > 0.9 * (100 * 120 - 1)
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.loe(img, img[:50])


def test_ssim_paper_is_scikit_image_default(pair):
  """``ssim_paper``: scikit-image's default SSIM (7x7 uniform window,
  sample covariances, per channel), the protocol of the quoted LOL figures;
  it differs from the Gaussian (dm-pix) one."""
  a, b = pair
  ref = structural_similarity(a, b, channel_axis=-1, data_range=1.0)
  # scikit-image filters float32 inputs in float32; ours is float64
  assert float(metrics.ssim_paper(a, b)) == pytest.approx(ref, abs=1e-6)
  both = metrics.ssim_paper(np.stack([a, a]), np.stack([b, a]))
  assert both.shape == (2,) and both[1] == pytest.approx(1.0)
  assert both[0] == pytest.approx(ref, abs=1e-6)
  assert abs(float(metrics.ssim(a, b)) - ref) > 1e-4
  flat = np.full((16, 16, 3), 0.3)
  assert float(metrics.ssim_paper(flat, flat * 0.5)) == pytest.approx(
      structural_similarity(flat, flat * 0.5, channel_axis=-1,
                            data_range=1.0), abs=1e-9)
  with pytest.raises(ValueError, match="win_size"):
    metrics.ssim_paper(a[:5], b[:5])


def test_colour_angle_hand_values():
  grey = np.full((8, 8, 3), 0.3, np.float32)
  red = np.zeros((8, 8, 3), np.float32)
  red[..., 0] = 0.5
  green = np.roll(red, 1, axis=-1)
  assert float(metrics.colour_angle(grey, 2 * grey)) == pytest.approx(
      0.0, abs=1e-3)  # brightness does not count
  assert float(metrics.colour_angle(red, green)) == pytest.approx(90.0)
  # grey against pure red: arccos(1 / sqrt(3)) = 54.7356 degrees
  assert float(metrics.colour_angle(grey, red)) == pytest.approx(
      54.7356, abs=1e-3)
  # only the means count: a checkerboard of red and green is yellow
  board = np.where((np.indices((8, 8)).sum(0) % 2 == 0)[..., None], red,
                   green)
  yellow = (red + green) / 2
  assert float(metrics.colour_angle(board, yellow)) == pytest.approx(
      0.0, abs=1e-3)
