import numpy as np
import pytest

from zerodce_jax.core import colour


def test_cast_angle_by_hand():
  assert float(colour.cast_angle(np.asarray([0.4, 0.4, 0.4]))) == \
      pytest.approx(0.0, abs=1e-3)
  # pure red against grey: arccos(1 / sqrt(3))
  assert float(colour.cast_angle(np.asarray([1.0, 0.0, 0.0]))) == \
      pytest.approx(np.degrees(np.arccos(1 / np.sqrt(3))), rel=1e-5)


def test_correction_fades_with_the_cast():
  a = lambda deg: float(colour.correction_amount(np.float32(deg),
                                                 amount=0.8))
  assert a(0) == pytest.approx(0.8)
  assert a(colour.FULL_BELOW) == pytest.approx(0.8)
  assert a(colour.KEEP_ABOVE) == pytest.approx(0.8 * colour.KEEP_SHARE)
  assert a(40) == pytest.approx(0.8 * colour.KEEP_SHARE)
  mid = (colour.FULL_BELOW + colour.KEEP_ABOVE) / 2
  assert a(mid) == pytest.approx(0.8 * (1 + colour.KEEP_SHARE) / 2)


def test_balance_targets_keep_brightness_and_reduce_the_cast():
  small = np.asarray([0.42, 0.40, 0.36], np.float32)  # a few degrees
  assert float(colour.cast_angle(small)) < colour.FULL_BELOW
  np.testing.assert_allclose(colour.balance_targets(small, amount=0.0),
                             small, rtol=1e-6)
  grey = np.asarray(colour.balance_targets(small, amount=1.0))
  np.testing.assert_allclose(grey, small.mean(), rtol=1e-5)
  half = np.asarray(colour.balance_targets(small, amount=0.5))
  assert half.mean() == pytest.approx(small.mean(), rel=1e-5)
  assert 0 < float(colour.cast_angle(half)) < float(colour.cast_angle(small))
  # a sodium lamp's strong cast is mostly kept
  sodium = np.asarray([0.6, 0.4, 0.15], np.float32)
  kept = np.asarray(colour.balance_targets(sodium, amount=1.0))
  assert float(colour.cast_angle(kept)) > 0.6 * float(
      colour.cast_angle(sodium))
