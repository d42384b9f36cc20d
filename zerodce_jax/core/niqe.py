"""NIQE -- Natural Image Quality Evaluator, in plain NumPy.

A MATLAB-compatible re-implementation of the "completely blind" image quality
analyser of Mittal, Soundararajan & Bovik (IEEE SPL 2013), following the
official LIVE release (``niqe_release.zip``: ``computequality.m``,
``computefeature.m``, ``estimateaggdparam.m``) step by step.  Lower is better.

Only NumPy is needed (no SciPy, no torch, no OpenCV) and nothing is downloaded:
the pristine model (``mu_prisparam``, ``cov_prisparam`` of the LIVE release)
is read from ``niqe_params.npz`` next to this file.

Algorithm
---------
Let ``I`` be the grey-level image on the 0..255 scale (see *Preprocessing*),
cropped from the top-left to ``floor(H/96)*96 x floor(W/96)*96``.  For each of
two scales ``s = 1, 2`` (the second one is ``imresize(I, 0.5)``, MATLAB
bicubic with antialiasing, no rounding):

1. MSCN coefficients (Eq. 1 of the paper), with ``w`` the 7x7 Gaussian
   window, sigma = 7/6, normalised to sum 1, and replicate padding::

     mu    = w * I
     sigma = sqrt(| w * I^2 - mu^2 |)
     Ihat  = (I - mu) / (sigma + 1)

2. ``Ihat`` is split into non-overlapping ``96/s x 96/s`` blocks.  Per block,
   18 features: the AGGD fit ``(alpha, (beta_l + beta_r)/2)`` of ``Ihat``,
   and for each of the products of ``Ihat`` with its circularly shifted copy
   (shifts (0,1), (1,0), (1,1), (1,-1)) the AGGD fit
   ``(alpha, eta, beta_l, beta_r)`` with
   ``eta = (beta_r - beta_l) * Gamma(2/alpha) / Gamma(1/alpha)``.

   AGGD moment matching (``estimateaggdparam.m``), for samples ``x``::

     sigma_l = sqrt(mean(x[x<0]^2)),  sigma_r = sqrt(mean(x[x>0]^2))
     g       = sigma_l / sigma_r
     r       = mean(|x|)^2 / mean(x^2)
     R       = r (g^3 + 1)(g + 1) / (g^2 + 1)^2
     alpha   = argmin over a in 0.2:0.001:10 of
         (Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) - R)^2
     beta_l  = sigma_l sqrt(Gamma(1/alpha)/Gamma(3/alpha)),
     beta_r  = sigma_r sqrt(Gamma(1/alpha)/Gamma(3/alpha))

The 18 + 18 features of all blocks give ``mu_2`` (NaN-ignoring column mean,
``nanmean``) and ``Sigma_2`` (covariance, N-1, over the rows without NaN,
``nancov``); the score is (Eq. 10)::

  NIQE = sqrt((mu_1 - mu_2)^T pinv((Sigma_1 + Sigma_2)/2) (mu_1 - mu_2))

where ``mu_1``, ``Sigma_1`` is the pristine model.

Preprocessing
-------------
* uint8 input is taken as 0..255; floating input is taken as 0..1, clipped
  to [0, 1], multiplied by 255 and rounded (scored as the 8-bit image it
  would be saved as).
* RGB ([H, W, 3], R-G-B order) is converted to one channel:
  ``convert_to="y"`` (default): Y of ITU-R BT.601 YCbCr as MATLAB ``rgb2ycbcr``
  (``16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1]) -- the
  choice of BasicSR's ``calculate_niqe`` (default ``convert_to='y'``);
  ``convert_to="gray"``: MATLAB ``rgb2gray`` (0.298936021293775 R +
  0.587043074451121 G + 0.114020904255103 B) -- what the official
  ``computequality.m`` does with an RGB image.
* The grey image is rounded to integers (half away from zero, as MATLAB does
  when it converts back to uint8), then ``crop_border`` pixels are removed
  from every edge.

References
----------
A. Mittal, R. Soundararajan and A. C. Bovik, "Making a 'Completely Blind'
Image Quality Analyzer", IEEE Signal Processing Letters 20(3):209-212, 2013.
A. Mittal, R. Soundararajan and A. C. Bovik, "NIQE Software Release",
http://live.ece.utexas.edu/research/quality/niqe_release.zip, 2012
(pristine model parameters: Copyright (c) 2011 The University of Texas at
Austin; the notice is stored in niqe_params.npz["notice"] and README.md).
Cross-checked against BasicSR ``basicsr/metrics/niqe.py`` and
``basicsr/utils/matlab_functions.py`` (Apache-2.0); no code was copied from
them.  The bicubic resize below is written from the algorithm of MATLAB's
``imresize`` (``contributions``/``cubic``).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Optional, Tuple, Union

import numpy as np

__all__ = ["niqe", "load_params", "imresize_half", "mscn"]

BLOCK_SIZE = 96
_PARAMS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "assets", "niqe_pristine_params.npz")

# MATLAB rgb2gray weights (first row of inv of the NTSC YIQ matrix).
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
# MATLAB rgb2ycbcr, Y row, for R, G, B in [0, 1]; output in 0..255.
_RGB2Y = np.array([65.481, 128.553, 24.966])


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _load_params_cached(path: str) -> Tuple[np.ndarray, np.ndarray]:
  with np.load(path, allow_pickle=False) as data:
    mu = np.asarray(data["mu"], dtype=np.float64).reshape(-1)
    cov = np.asarray(data["cov"], dtype=np.float64)
  if mu.shape != (36,) or cov.shape != (36, 36):
    raise ValueError(f"bad NIQE parameter shapes: mu {mu.shape}, cov {cov.shape}")
  mu.setflags(write=False)
  cov.setflags(write=False)
  return mu, cov


def load_params(path: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
  """Return ``(mu, cov)`` of the pristine MVG model (36 and 36x36, float64)."""
  return _load_params_cached(os.path.abspath(path or _PARAMS_FILE))


# --------------------------------------------------------------------------
# MATLAB-compatible pieces
# --------------------------------------------------------------------------
def _gaussian_1d(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    # fspecial('gaussian', size, sigma) is the outer product of this with itself
    # (its normalisation to sum 1 factorises too).
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(x * x) / (2.0 * sigma * sigma))
  return g / g.sum()


@lru_cache(maxsize=1)
def _window_classes():
  """Offsets of the 7x7 window grouped by weight: (weight, [(di, dj), ...])
  for each unordered pair {|di|, |dj|} (10 classes, weights g_a * g_b)."""
  g = _gaussian_1d()
  r = g.size // 2
  classes = {}
  for di in range(-r, r + 1):
    for dj in range(-r, r + 1):
      if di == 0 and dj == 0:
        continue
      key = tuple(sorted((abs(di), abs(dj))))
      classes.setdefault(key, []).append((di, dj))
  return tuple((g[r + k[0]] * g[r + k[1]], tuple(v)) for k, v in sorted(classes.items()))


def mscn(img: np.ndarray) -> np.ndarray:
  """Mean-subtracted contrast-normalised coefficients (C = 1, 7x7 Gaussian
  window w, sigma 7/6, 'replicate' borders), i.e. MATLAB's::

    mu = imfilter(im, w, 'replicate');
    sigma = sqrt(abs(imfilter(im.*im, w, 'replicate') - mu.*mu));
    structdis = (im - mu) ./ (sigma + 1);

  Evaluated in the shift-invariant form, with d = neighbour - centre::

    im - mu = -sum w d,    sigma^2 = sum w d^2 - (sum w d)^2

  which equals the MATLAB expression in exact arithmetic (sum w = 1) but
  avoids the cancellation of O(255^2) terms.  The sums are grouped by the
  10 distinct window weights, sum w d = sum_c w_c (sum_{k in c} d_k): on an
  integer-valued image (scale 1) the inner sums are exact, so a coefficient
  that is 0 in exact arithmetic (constant neighbourhood, or a symmetric
  one) comes out as exactly 0, not as +-1e-15 noise whose sign depends on
  the summation order (see README, "Flat areas").
  """
  img = np.asarray(img, dtype=np.float64)
  h, w = img.shape
  r = 3
  p = np.pad(img, r, mode="edge")
  m1 = np.zeros((h, w))
  m2 = np.zeros((h, w))
  s1 = np.empty((h, w))
  s2 = np.empty((h, w))
  d = np.empty((h, w))
  for weight, offsets in _window_classes():
    s1.fill(0.0)
    s2.fill(0.0)
    for di, dj in offsets:
      np.subtract(p[r + di:r + di + h, r + dj:r + dj + w], img, out=d)
      s1 += d
      np.multiply(d, d, out=d)
      s2 += d
    s1 *= weight
    m1 += s1
    s2 *= weight
    m2 += s2
  sigma = np.sqrt(np.abs(m2 - m1 * m1))
  return -m1 / (sigma + 1.0)


def _cubic(x: np.ndarray) -> np.ndarray:
  ax = np.abs(x)
  ax2 = ax * ax
  ax3 = ax2 * ax
  return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
          + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
  """Weights and 0-based source indices of MATLAB imresize along one axis."""
  kernel_width = 4.0
  if scale < 1 and antialias:
    kernel = lambda t: scale * _cubic(scale * t)  # noqa: E731
    kernel_width = kernel_width / scale
  else:
    kernel = _cubic
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = np.floor(u - kernel_width / 2.0)
  p = int(math.ceil(kernel_width)) + 2
  idx = left[:, None] + np.arange(p)[None, :]          # 1-based
  wts = kernel(u[:, None] - idx)
  wts = wts / wts.sum(axis=1, keepdims=True)
  # symmetric padding: mirror with the edge sample repeated
  aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
  idx = aux[np.mod(idx.astype(np.int64) - 1, aux.size)]
  keep = np.any(wts != 0, axis=0)
  return wts[:, keep], idx[:, keep]


def _resize_axis(img: np.ndarray, axis: int, scale: float, out_len: int) -> np.ndarray:
  wts, idx = _contributions(img.shape[axis], out_len, scale)
  a = np.moveaxis(img, axis, 0)
  out = np.zeros((out_len,) + a.shape[1:])
  for k in range(wts.shape[1]):
    out += wts[:, k].reshape((-1,) + (1,) * (a.ndim - 1)) * a[idx[:, k]]
  return np.moveaxis(out, 0, axis)


def imresize_half(img: np.ndarray) -> np.ndarray:
  """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiasing) on a float image,
  without rounding.  Rows first, then columns, as MATLAB does for equal
  scales."""
  img = np.asarray(img, dtype=np.float64)
  h, w = img.shape[:2]
  out = _resize_axis(img, 0, 0.5, int(math.ceil(h * 0.5)))
  return _resize_axis(out, 1, 0.5, int(math.ceil(w * 0.5)))


# --------------------------------------------------------------------------
# AGGD fit and features
# --------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _gamma_tables():
    # 0.2:0.001:10 (9801 values); Gamma(1/a), Gamma(2/a), Gamma(3/a) tabulated
  gam = np.round(np.linspace(0.2, 10.0, 9801), 12)
  lg = np.vectorize(math.gamma)
  g1, g2, g3 = lg(1.0 / gam), lg(2.0 / gam), lg(3.0 / gam)
  r_gam = g2 * g2 / (g1 * g3)
  return gam, r_gam, g1, g2, g3


def _aggd_fit(x: np.ndarray):
  """AGGD fit per row of ``x`` (n, m) -> alpha, beta_l, beta_r, ratio
  Gamma(2/alpha)/Gamma(1/alpha); NaN where MATLAB gives NaN."""
  gam, r_gam, g1, g2, g3 = _gamma_tables()
  neg = x < 0
  pos = x > 0
  x2 = x * x
  with np.errstate(invalid="ignore", divide="ignore"):
    left_std = np.sqrt(np.where(neg, x2, 0.0).sum(1) / neg.sum(1))
    right_std = np.sqrt(np.where(pos, x2, 0.0).sum(1) / pos.sum(1))
    gammahat = left_std / right_std
    rhat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(x2, axis=1)
    rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
# MATLAB: [~, i] = min((r_gam - rhatnorm).^2) -- first index on ties,
# and i = 1 when rhatnorm is NaN (alpha = 0.2).  r_gam is strictly
# increasing, so the minimiser is one of the two grid neighbours.
  nan = np.isnan(rhatnorm)
  rr = np.where(nan, r_gam[0], rhatnorm)
  hi = np.clip(np.searchsorted(r_gam, rr, side="left"), 1, r_gam.size - 1)
  lo = hi - 1
  pos_idx = np.where((r_gam[lo] - rr) ** 2 <= (r_gam[hi] - rr) ** 2, lo, hi)
  pos_idx[nan] = 0
  alpha = gam[pos_idx]
  k = np.sqrt(g1[pos_idx] / g3[pos_idx])
  return alpha, left_std * k, right_std * k, g2[pos_idx] / g1[pos_idx]


def _block_features(struct: np.ndarray, bs: int) -> np.ndarray:
  """18 features for each non-overlapping bs x bs block of ``struct``
  (whose sides are multiples of bs).  Rows in MATLAB blkproc order
  (column-major over blocks)."""
  h, w = struct.shape
  nh, nw = h // bs, w // bs
  blocks = struct.reshape(nh, bs, nw, bs).transpose(2, 0, 1, 3).reshape(nh * nw, bs, bs)
  n = blocks.shape[0]
  feats = np.empty((n, 18))
  # MATLAB vectorises structdis(:) column-major; the order of samples does
  # not change any statistic.
  a, bl, br, _ = _aggd_fit(blocks.reshape(n, -1))
  feats[:, 0] = a
  feats[:, 1] = (bl + br) / 2.0
  for i, shift in enumerate(((0, 1), (1, 0), (1, 1), (1, -1))):
    shifted = np.roll(blocks, shift, axis=(1, 2))  # circshift within block
    a, bl, br, ratio = _aggd_fit((blocks * shifted).reshape(n, -1))
    feats[:, 2 + 4 * i] = a
    feats[:, 3 + 4 * i] = (br - bl) * ratio
    feats[:, 4 + 4 * i] = bl
    feats[:, 5 + 4 * i] = br
  return feats


def niqe_features(gray255: np.ndarray, block_size: int = BLOCK_SIZE) -> np.ndarray:
  """(n_blocks, 36) NIQE patch features of a grey image on the 0..255 scale."""
  img = np.asarray(gray255, dtype=np.float64)
  if img.ndim != 2:
    raise ValueError("niqe_features expects a 2-D grey image")
  if block_size % 2:
    raise ValueError("block_size must be even")
  nh, nw = img.shape[0] // block_size, img.shape[1] // block_size
  if nh < 1 or nw < 1:
    raise ValueError(
        f"image {img.shape[0]}x{img.shape[1]} is smaller than one "
        f"{block_size}x{block_size} NIQE block")
  img = img[:nh * block_size, :nw * block_size]
  f1 = _block_features(mscn(img), block_size)
  f2 = _block_features(mscn(imresize_half(img)), block_size // 2)
  return np.concatenate([f1, f2], axis=1)


# --------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------
def _to_gray255(image: np.ndarray, convert_to: str) -> np.ndarray:
  arr = np.asarray(image)
  if arr.dtype == np.uint8:
    x = arr.astype(np.float64)
  elif np.issubdtype(arr.dtype, np.floating):
    # scored as the 8-bit image it would be saved as (and exactly as the
    # uint8 image it may have come from)
    x = np.floor(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
  else:
    raise TypeError(f"expected uint8 or floating image, got {arr.dtype}")
  if x.ndim == 3 and x.shape[2] == 1:
    x = x[..., 0]
  if x.ndim == 3:
    if x.shape[2] != 3:
      raise ValueError(f"expected [H, W], [H, W, 1] or [H, W, 3], got {arr.shape}")
    if convert_to == "y":
      x = x @ (_RGB2Y / 255.0) + 16.0
    elif convert_to == "gray":
      x = x @ _RGB2GRAY
    else:
      raise ValueError(f"convert_to must be 'y' or 'gray', got {convert_to!r}")
  elif x.ndim != 2:
    raise ValueError(f"expected [H, W], [H, W, 1] or [H, W, 3], got {arr.shape}")
  return np.floor(x + 0.5)  # MATLAB round (values are >= 0)


def niqe(image: np.ndarray, *,
         params: Optional[Union[str, Tuple[np.ndarray, np.ndarray]]] = None,
         crop_border: int = 0,
         convert_to: str = "y",
         block_size: int = BLOCK_SIZE) -> float:
  """NIQE score of one image (lower = more natural).

  Args:
    image: [H, W, 3] RGB or [H, W] grey; uint8 (0..255) or float (0..1,
      clipped).
    params: ``None`` (bundled LIVE pristine model), a path to an ``.npz``
      with ``mu`` (36,) and ``cov`` (36, 36), or a ``(mu, cov)`` pair.
    crop_border: pixels removed from each edge before the computation.
    convert_to: ``"y"`` (BT.601 Y, as BasicSR; default) or ``"gray"``
      (MATLAB rgb2gray, as the official computequality.m); ignored for
      grey input.
    block_size: patch size (96 in the release; the model was trained
      with 96).

  Returns:
    float NIQE; NaN if no block yields a complete (NaN-free) feature
    vector, e.g. for a constant image.

  Raises:
    ValueError: if the (cropped) image is smaller than one block, or
      has fewer than two blocks (the covariance is then undefined).
  """
  if params is None or isinstance(params, (str, os.PathLike)):
    mu_p, cov_p = load_params(params)
  else:
    mu_p, cov_p = (np.asarray(p, dtype=np.float64) for p in params)
    mu_p = mu_p.reshape(-1)
  gray = _to_gray255(image, convert_to)
  if crop_border:
    c = int(crop_border)
    gray = gray[c:-c, c:-c]
  feats = niqe_features(gray, block_size)
  if feats.shape[0] < 2:
    raise ValueError("NIQE needs at least two blocks "
                     f"({block_size}x{block_size}) to estimate a covariance")
  with np.errstate(invalid="ignore"):
    counts = np.sum(~np.isnan(feats), axis=0)
    mu_d = np.where(counts > 0, np.nansum(feats, axis=0) / np.maximum(counts, 1), np.nan)
  complete = feats[~np.isnan(feats).any(axis=1)]
  if complete.shape[0] < 2 or np.isnan(mu_d).any():
    return float("nan")
  cov_d = np.cov(complete, rowvar=False)
  a = (cov_p + cov_d) / 2.0
  inv = np.linalg.pinv(a, rcond=max(a.shape) * np.finfo(np.float64).eps)  # MATLAB pinv tol
  d = mu_p - mu_d
  return float(np.sqrt(d @ inv @ d))
