"""NIQE against BasicSR's implementation (XPixelGroup/BasicSR@8d56e3a,
``calculate_niqe(img, 0, convert_to='y')``, run on the same decoded
images): the reference values below were computed with it, not by this
code."""

import numpy as np
import pytest
from PIL import Image

from zerodce_jax.core import niqe

BASICSR = {
    "test_images/DICM/01.jpg": 3.356788407451587,
    "test_images/DICM/12.jpg": 5.717608622894221,
    "test_images/DICM/45.jpg": 4.776372075768093,
    "test_images/LIME/3.bmp": 2.8644395222486656,
    "test_images/LIME/7.bmp": 6.798435881018975,
}


@pytest.mark.parametrize("name", sorted(BASICSR))
def test_niqe_matches_basicsr(shared, name):
  rgb = np.asarray(Image.open(shared / name).convert("RGB"))
  got = niqe.niqe(rgb)
  assert got == pytest.approx(BASICSR[name], rel=1e-3)
  # float input in [0, 1] is the same image on the 0..255 scale
  assert niqe.niqe(rgb.astype(np.float32) / 255) == pytest.approx(got,
                                                                  rel=1e-6)


def test_niqe_ranks_a_degraded_image_worse():
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:192, :288]
  scene = (0.5 + 0.25 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
           + 0.1 * rng.standard_normal((192, 288)))
  clean = np.clip(np.stack([scene] * 3, -1), 0, 1)
  noisy = np.clip(clean + 0.15 * rng.standard_normal(clean.shape), 0, 1)
  assert niqe.niqe(noisy) > niqe.niqe(clean)


def test_pristine_parameters_ship_with_their_notice():
  mu, cov = niqe.load_params()
  assert mu.shape == (36,) and cov.shape == (36, 36)
  with np.load(niqe._PARAMS_FILE) as f:
    assert "University of Texas at Austin" in str(f["notice"])


def test_too_small_image_is_a_clear_error():
  with pytest.raises(ValueError, match="smaller than one"):
    niqe.niqe(np.zeros((50, 50, 3), np.uint8))


def test_unpaired_evaluation_reports_niqe_of_the_output():
  from zerodce_jax.apps import evaluate

  def identity(images):
    return list(images)

  rng = np.random.default_rng(1)
  big = rng.random((200, 200, 3)).astype(np.float32)
  small = rng.random((60, 60, 3)).astype(np.float32)
  rows = evaluate.score_unpaired(identity, [("big", big), ("small", small)])
  assert rows[0]["niqe"] == pytest.approx(niqe.niqe(big))
  assert np.isnan(rows[1]["niqe"])  # too small for two 96x96 blocks
  assert evaluate.summarise(rows)["niqe"] == pytest.approx(rows[0]["niqe"])
