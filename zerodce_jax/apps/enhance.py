"""Inference: enhance images of any size, in bounded memory, without
recompiling per image.

How shapes stay few and results stay exact:
  * **Buckets.** An image is padded (zeros) onto a canvas whose height and
    width are rounded up to a multiple of ``bucket``, and the batch size to a
    power of two, so a folder of mixed sizes compiles once per bucket. The
    network runs with a validity mask (``DCENet.estimate(x, mask)``) that zeroes
    every layer's activations outside the image, so the padded result equals
    the unpadded one inside the image.
  * **Tiles.** Images over ``max_pixels`` are cut into ``tile x tile`` cores
    with a halo of ``depth`` pixels (the receptive-field radius of ``depth``
    3x3 convs, 7 for DCE-Net) on each side; with the same mask, each core is
    exactly the whole-image result.
  * **Zero-DCE++** with a scale factor ``s``: the input is down-scaled on the
    host (PyTorch-exact bilinear), the curve map estimated on it (bucketed or
    tiled as above), and the map up-scaled and applied in strips of rows at
    full resolution. Sizes that are not multiples of ``s`` work and keep the
    input's size (the official test script crops them instead).

Arrays here are NumPy, ``[H, W, 3]`` float32 in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.apps import quality, tiling
from zerodce_jax.core import curves, denoise, exposure, models, resize
from zerodce_jax.formats import atomic, image_io

__all__ = ["Enhancer", "enhance", "receptive_radius", "DEFAULT_MAX_MEMORY",
           "default_max_memory", "bytes_per_pixel", "masked_network"]

# Working memory of one compiled call on a CPU unless told otherwise: big
# photos then run in about this much above their decoded pixels and output.
DEFAULT_MAX_MEMORY = 1536 * 2**20
# On an accelerator: this share of the device's memory.
DEVICE_MEMORY_SHARE = 0.5


def default_max_memory(device: Any = None) -> int:
  """The working-memory budget of one compiled call on ``device`` (default:
  the first local device): ``DEFAULT_MAX_MEMORY`` on a CPU, else
  ``DEVICE_MEMORY_SHARE`` of the accelerator's memory as its runtime
  reports it (``DEFAULT_MAX_MEMORY`` when it reports none)."""
  device = device or jax.local_devices()[0]
  if device.platform == "cpu":
    return DEFAULT_MAX_MEMORY
  try:
    limit = (device.memory_stats() or {}).get("bytes_limit")
  except Exception:  # noqa: BLE001 - backends without memory stats
    limit = None
  return int(limit * DEVICE_MEMORY_SHARE) if limit else DEFAULT_MAX_MEMORY


def receptive_radius(model: models.DCENet) -> int:
  """Pixels of context each output needs on every side: one per 3x3 conv."""
  return model.depth


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


def masked_network(model: models.DCENet, *, enhance_too: bool = True):
  """``fn(params, x, mask)``: the network on canvases ``x`` ``[B, H, W, 3]``
  with validity ``mask`` ``[B, H, W, 1]`` (``DCENet.estimate``), then the
  curves (``enhance_too``) or the curve maps alone. What ``Enhancer``
  compiles."""

  def run(params, x, mask):
    maps = model.apply({"params": params}, x, mask, method=model.estimate)
    if enhance_too:
      return curves.apply_curves(x, maps, iterations=model.iterations)
    return maps

  return run


def _probe_cache_path() -> str:
  base = os.environ.get("ZERODCE_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
      "zerodce-jax")
  return os.path.join(base, "memory_probe.json")


@functools.lru_cache(maxsize=64)
def bytes_per_pixel(arch: tuple[int, int, int, bool], dtype: str, *,
                    enhance_too: bool, backend: str) -> float:
  """Working memory of the masked network per canvas pixel on ``backend``.

  Read from XLA's memory analysis (temporaries + arguments + outputs) of the
  network compiled for one 256x256 canvas (activations are linear in the
  pixels); where a backend gives no analysis, 1 KiB per pixel per 32
  channels of width is assumed. ``arch``: ``(depth, width, iterations,
  separable)``. It does not depend on the weights, so it is cached in this
  process and on disk (``$ZERODCE_CACHE_DIR/memory_probe.json``, default
  ``~/.cache/zerodce-jax``), keyed by the JAX version, backend, device kind,
  architecture and dtype: the probe compiles once per machine, not at every
  start.
  """
  key = "|".join(map(str, (jax.__version__, backend,
                           jax.local_devices(backend=backend)[0].device_kind,
                           arch, dtype, enhance_too)))
  path = _probe_cache_path()
  try:
    with open(path) as f:
      cache = json.load(f)
    if isinstance(cache.get(key), (int, float)) and cache[key] > 0:
      return float(cache[key])
  except (OSError, ValueError, AttributeError):
    cache = {}
  value = _probe_bytes_per_pixel(arch, dtype, enhance_too=enhance_too)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_bytes(path, json.dumps({**cache, key: value}).encode())
  except OSError:
    pass  # a read-only home: the probe runs again next time, that is all
  return value


def _probe_bytes_per_pixel(arch: tuple[int, int, int, bool], dtype: str, *,
                           enhance_too: bool) -> float:
  depth, width, iterations, separable = arch
  model = models.DCENet(depth=depth, width=width, iterations=iterations,
                        separable=separable, dtype=jnp.dtype(dtype))
  side = 256
  x = jax.ShapeDtypeStruct((1, side, side, 3), model.dtype)
  m = jax.ShapeDtypeStruct((1, side, side, 1), model.dtype)
  params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]

  try:
    ma = jax.jit(masked_network(model, enhance_too=enhance_too)).lower(
        params, x, m).compile().memory_analysis()
    total = (ma.temp_size_in_bytes + ma.argument_size_in_bytes
             + ma.output_size_in_bytes)
  except Exception:  # noqa: BLE001 - no analysis on this backend
    total = 1024 * width / 32 * side**2
  return total / side**2


@dataclasses.dataclass
class Enhancer:
  """Enhances batches of images with one model and a compile cache.

  Attributes:
    model: a ``DCENet`` (its ``scale_factor`` is used for Zero-DCE++).
    params: its params tree.
    bucket: canvas sizes are multiples of this.
    max_pixels: images with more pixels (at the network's input resolution)
      are processed in tiles.
    tile: tile core size in pixels.
    batch_size: most images (or tiles) per compiled call.
    strip_rows: rows per full-resolution strip for Zero-DCE++ scaled maps.
    max_memory: bytes of working memory one compiled call may use (its
      activations, inputs and outputs, as XLA's ``memory_analysis`` of the
      compiled network reports them per pixel on this backend); the batch,
      the tiling threshold and the tile size shrink to fit. ``"auto"``
      (default): ``default_max_memory()``, sized from the device. ``None``:
      no budget (``batch_size``, ``max_pixels`` and ``tile`` as given).
    controls: what ``__call__`` applies when called without ``controls``
      (``apps.quality.Controls``; None: the plain path).
    subsample: an exposure is measured on every ``subsample``-th row and
      column (a divisor of ``bucket``; larger is faster and coarser, for
      previews).
    traces: how many times a compiled function was traced (for tests).
  """
  model: models.DCENet
  params: Any
  bucket: int = 64
  max_pixels: int = 4_194_304
  tile: int = 1024
  batch_size: int = 8
  strip_rows: int = 512
  max_memory: int | str | None = "auto"
  controls: quality.Controls | None = None
  subsample: int = 4
  traces: int = 0

  def __post_init__(self):
    model = self.model
    if self.max_memory == "auto":
      self.max_memory = default_max_memory()
    self.params = jax.device_put(self.params)
    self._rescales = model.separable and model.scale_factor != 1

    def counted(fn):
      def run(params, x, mask):
        self.traces += 1
        return fn(params, x, mask)
      return run

    self._enhance_fn = jax.jit(counted(masked_network(model,
                                                      enhance_too=True)))
    self._maps_fn = jax.jit(counted(masked_network(model,
                                                   enhance_too=False)))

    def curve_strip(maps_small, rows, cols, x):
      self.traces += 1
      up = resize.resize_axis(maps_small, rows, axis=0)
      up = resize.resize_axis(up, cols, axis=1)
      return curves.apply_curves(x, up.astype(x.dtype),
                                 iterations=model.iterations)

    self._strip_fn = jax.jit(curve_strip)
    self._controlled_fns: dict[tuple[str, Any], Any] = {}

  # ------------------------------------------------- controlled rendering --
  def _controlled_fn(self, kind: str, shoulder, denoised: bool = False):
    """The compiled functions of the controlled path, one per kind, highlight
    shoulder and whether they denoise: ``net`` (network + render on
    canvases), ``strip`` (Zero-DCE++ up-scaled maps + render), ``full``
    (render with given maps), ``strength`` (``core.exposure.strength_for``
    on a subsample) and ``noise`` (``core.denoise.estimate_noise``)."""
    key = (kind, shoulder, denoised)
    if key in self._controlled_fns:
      return self._controlled_fns[key]
    model, n = self.model, self.model.iterations

    def render(x, maps, extra):
      """The curves at the strength (``extra[..., 0]``), and with denoising
      the output's noise sigma for the ``filter`` call."""
      e = extra[..., None, None, None, :] if x.ndim == 4 else extra
      y, gain = curves.apply_at_strength(x, maps, e[..., 0], iterations=n,
                                         shoulder=shoulder)
      if not denoised:
        return y
      # per channel: a reduction over the channels here makes XLA:CPU
      # recompute the whole curve per channel (the filter call reduces)
      return y, gain * denoise.noise_sigma(x, e[..., 2], e[..., 3])

    if kind == "net":
      def fn(params, x, mask, extra):
        self.traces += 1
        maps = model.apply({"params": params}, x, mask, method=model.estimate)
        return render(x, maps, extra)
    elif kind == "strip":
      def fn(maps_small, rows, cols, x, extra, mask):
        del mask  # the filter's (a separate call)
        self.traces += 1
        up = resize.resize_axis(maps_small, rows, axis=0)
        up = resize.resize_axis(up, cols, axis=1)
        return render(x, up, extra)
    elif kind == "full":
      def fn(x, maps, extra):
        self.traces += 1
        return render(x, maps, extra)
    elif kind == "filter":
      def fn(y, sigma, extra, mask):
        self.traces += 1
        e = extra[..., None, None, None, :] if y.ndim == 4 else extra
        return denoise.denoise(y, sigma, amount=e[..., 1], mask=mask)
    elif kind == "noise":
      def fn(x, mask):
        self.traces += 1
        return denoise.estimate_noise(x, mask=mask)
    else:
      def fn(x, maps, mask, target):
        self.traces += 1
        return exposure.strength_for(x, maps, target, iterations=n,
                                     shoulder=shoulder, mask=mask)
    jitted = jax.jit(fn)
    if denoised and kind in ("net", "strip", "full"):
      # two compiled calls: fused into the filters' shifted reads, XLA
      # recomputes the curves' gain for every tap (several times slower)
      filt = self._controlled_fn("filter", None)

      def jitted(*args, _curves=jitted, _kind=kind):
        y, sigma = _curves(*args)
        if _kind == "net":
          mask, extra = args[2], args[3]
        elif _kind == "strip":
          mask, extra = args[-1], args[4]
        else:
          extra = args[2]
          mask = jnp.ones(y.shape[:-1] + (1,), y.dtype)
        return filt(y, sigma, extra, mask)
    self._controlled_fns[key] = jitted
    return jitted

  NOISE_CROP = 1024  # the noise is estimated on a centre crop of this side

  def noise(self, image: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of the input's noise, ``sigma^2 = a I + b``
    (``core.denoise.estimate_noise``), on a centre crop of at most
    ``NOISE_CROP`` pixels a side, padded to the bucket (one compiled
    function per canvas size). What ``render`` estimates unless given it:
    interactive callers keep it with the maps."""
    h, w = image.shape[:2]
    ch, cw = min(h, self.NOISE_CROP), min(w, self.NOISE_CROP)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    hb, wb = _round_up(ch, self.bucket), _round_up(cw, self.bucket)
    canvas = np.zeros((hb, wb, 3), np.float32)
    mask = np.zeros((hb, wb, 1), np.float32)
    canvas[:ch, :cw] = image[y0:y0 + ch, x0:x0 + cw]
    mask[:ch, :cw] = 1
    a, b = self._controlled_fn("noise", None)(jnp.asarray(canvas),
                                              jnp.asarray(mask))
    return float(a), float(b)

  def _extras(self, image: np.ndarray, strength: float,
              controls: quality.Controls,
              noise: tuple[float, float] | None = None) -> np.ndarray:
    """The per-image numbers a compiled render call takes, ``[4]``: the
    strength, the denoising amount and the input's noise ``(a, b)``."""
    if not controls.denoise:
      noise = (0.0, 0.0)
    a, b = self.noise(image) if noise is None else noise
    return np.asarray([strength, controls.denoise, a, b], np.float32)

  # ------------------------------------------------------- memory budget --
  def call_pixels(self, fn) -> int:
    """Most canvas pixels (summed over a batch) one call of ``fn`` (the
    enhancing or the map-only network) may take under ``max_memory``;
    unbounded without a budget (see ``bytes_per_pixel``)."""
    if self.max_memory is None:
      return 1 << 62
    m = self.model
    per_pixel = bytes_per_pixel(
        (m.depth, m.width, m.iterations, m.separable), jnp.dtype(m.dtype).name,
        enhance_too=fn is not self._maps_fn, backend=jax.default_backend())
    return max(1, int(self.max_memory / per_pixel))

  def _limits(self, fn, halo: int = 0) -> tuple[int, int]:
    """``(tiling threshold in pixels, tile core side)`` under the budget."""
    budget = self.call_pixels(fn)
    r = receptive_radius(self.model) + halo
    side = int(math.isqrt(budget)) - 2 * r
    tile = min(self.tile, max(self.bucket, side // self.bucket * self.bucket))
    return min(self.max_pixels, budget), tile

  # ------------------------------------------------------------ conv nets --
  def _run_canvases(self, fn, canvases: list[np.ndarray],
                    masks: list[np.ndarray],
                    extras: list[np.ndarray] | None = None
                    ) -> list[np.ndarray]:
    """Runs ``fn`` on same-shape canvases, batched by powers of two (with
    ``extras``, one small vector per canvas, as a 4th argument)."""
    outs = []
    fit = self.call_pixels(fn) // (canvases[0].shape[0] *
                                   canvases[0].shape[1])
    per_call = max(1, min(self.batch_size, 1 << max(0, fit.bit_length() - 1)))
    for start in range(0, len(canvases), per_call):
      xs = canvases[start:start + per_call]
      ms = masks[start:start + per_call]
      n = len(xs)
      b = min(_pow2(n), per_call)
      x = np.zeros((b,) + xs[0].shape, np.float32)
      m = np.zeros((b,) + ms[0].shape, np.float32)
      x[:n], m[:n] = xs, ms
      args = [self.params, jnp.asarray(x, self.model.dtype),
              jnp.asarray(m, self.model.dtype)]
      if extras is not None:
        e = np.zeros((b,) + extras[0].shape, np.float32)
        e[:n] = extras[start:start + per_call]
        args.append(jnp.asarray(e))
      y = np.asarray(fn(*args), np.float32)
      outs += list(y[:n])
    return outs

  def _bucketed(self, fn, images: Sequence[np.ndarray],
                extras: Sequence[np.ndarray] | None = None,
                stride: int = 1) -> list[np.ndarray]:
    """Whole images through ``fn``, grouped by bucket, cropped back (every
    ``stride``-th row and column kept)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
      key = (_round_up(im.shape[0], self.bucket),
             _round_up(im.shape[1], self.bucket))
      groups.setdefault(key, []).append(i)
    results: list[np.ndarray | None] = [None] * len(images)
    for (hb, wb), idx in groups.items():
      canvases, masks = [], []
      for i in idx:
        h, w = images[i].shape[:2]
        c = np.zeros((hb, wb, 3), np.float32)
        c[:h, :w] = images[i]
        m = np.zeros((hb, wb, 1), np.float32)
        m[:h, :w] = 1
        canvases.append(c)
        masks.append(m)
      ex = None if extras is None else [extras[i] for i in idx]
      for i, y in zip(idx, self._run_canvases(fn, canvases, masks, ex)):
        h, w = images[i].shape[:2]
        results[i] = y[:h:stride, :w:stride]
    return results  # type: ignore[return-value]

  def _tiled(self, fn, image: np.ndarray, out_channels: int,
             extra: np.ndarray | None = None, stride: int = 1,
             halo: int = 0) -> np.ndarray:
    """One large image through ``fn`` in halo tiles; exact. Tile cores
    start at multiples of the bucket, so every ``stride``-th row and column
    of the image (``stride`` dividing the bucket) is every ``stride``-th of
    each core."""
    h, w = image.shape[:2]
    t = self._limits(fn, halo)[1]
    r = receptive_radius(self.model) + halo
    size = t + 2 * r
    out = np.empty((-(-h // stride), -(-w // stride), out_channels),
                   np.float32)
    tiles = list(tiling.halo_tiles(h, w, tile=t, radius=r))
    for start in range(0, len(tiles), self.batch_size):
      chunk = tiles[start:start + self.batch_size]
      canvases, masks = [], []
      for tl in chunk:
        # every window sits at the same place of a fixed-size canvas (the
        # core at offset r), so all tiles share one compiled shape
        oy, ox = tl.y0 - (tl.y - r), tl.x0 - (tl.x - r)
        wh, ww = tl.y1 - tl.y0, tl.x1 - tl.x0
        c = np.zeros((size, size, 3), np.float32)
        c[oy:oy + wh, ox:ox + ww] = image[tl.y0:tl.y1, tl.x0:tl.x1]
        m = np.zeros((size, size, 1), np.float32)
        m[oy:oy + wh, ox:ox + ww] = 1
        canvases.append(c)
        masks.append(m)
      ex = None if extra is None else [extra] * len(chunk)
      for tl, res in zip(chunk, self._run_canvases(fn, canvases, masks, ex)):
        core = res[r:r + tl.h:stride, r:r + tl.w:stride]
        y, x = tl.y // stride, tl.x // stride
        out[y:y + core.shape[0], x:x + core.shape[1]] = core
    return out

  def _through_net(self, fn, images: Sequence[np.ndarray],
                   out_channels: int,
                   extras: Sequence[np.ndarray] | None = None,
                   stride: int = 1, halo: int = 0) -> list[np.ndarray]:
    """Images through ``fn`` (``fn(params, x, mask[, extra])``), whole in
    buckets or in halo tiles (``halo`` pixels beyond the network's own
    receptive field: what ``fn`` reads after it); every ``stride``-th row
    and column kept."""
    limit = self._limits(fn, halo)[0]
    small = [i for i, im in enumerate(images)
             if _round_up(im.shape[0], self.bucket)
             * _round_up(im.shape[1], self.bucket) <= limit]
    results: list[np.ndarray | None] = [None] * len(images)
    ex = None if extras is None else [extras[i] for i in small]
    for i, y in zip(small, self._bucketed(fn, [images[i] for i in small], ex,
                                          stride)):
      results[i] = y
    for i, im in enumerate(images):
      if results[i] is None:
        results[i] = self._tiled(fn, im, out_channels,
                                 None if extras is None else extras[i],
                                 stride, halo)
    return results  # type: ignore[return-value]

  # ---------------------------------------------------------- Zero-DCE++ --
  def _apply_scaled_maps(self, image: np.ndarray, maps_small: np.ndarray,
                         render=None, extra: np.ndarray | None = None,
                         halo: int = 0) -> np.ndarray:
    """Up-scales a small curve map and applies it, in strips of rows (with
    ``render``, a controlled ``strip`` function, and its ``extra``; each
    strip then also reads ``halo`` rows above and below, masked beyond the
    image, so that a neighbourhood filter gives the whole image's result)."""
    h, w = image.shape[:2]
    hs, ws = maps_small.shape[:2]
    hb, wb = _round_up(hs, self.bucket), _round_up(ws, self.bucket)
    wfull = _round_up(w, self.bucket)
    pad_maps = np.zeros((hb, wb, 3), np.float32)
    pad_maps[:hs, :ws] = maps_small
    rows = resize.interp_taps(hs, h, align_corners=True)
    cols = [np.zeros(wfull, a.dtype) for a in
            resize.interp_taps(ws, w, align_corners=True)]
    for a, b in zip(cols, resize.interp_taps(ws, w, align_corners=True)):
      a[:w] = b
    out = np.empty_like(image)
    n = self.strip_rows
    size = n + 2 * halo
    for y in range(0, h, n):
      k = min(n, h - y)
      y0, y1 = max(y - halo, 0), min(y + k + halo, h)  # rows read
      off = y0 - (y - halo)                            # where they go
      strip = np.zeros((size, wfull, 3), np.float32)
      strip[off:off + y1 - y0, :w] = image[y0:y1]
      r = [np.zeros(size, a.dtype) for a in rows]
      for a, b in zip(r, rows):
        a[off:off + y1 - y0] = b[y0:y1]
      args = [jnp.asarray(pad_maps), tuple(map(jnp.asarray, r)),
              tuple(map(jnp.asarray, cols)),
              jnp.asarray(strip, self.model.dtype)]
      if render is None:
        res = self._strip_fn(*args)
      else:
        mask = np.zeros((size, wfull, 1), np.float32)
        mask[off:off + y1 - y0, :w] = 1
        res = render(*args, jnp.asarray(extra), jnp.asarray(mask))
      out[y:y + k] = np.asarray(res, np.float32)[halo:halo + k, :w]
    return out

  def _scaled_sub_maps(self, shape: tuple[int, int], maps_small: np.ndarray,
                       stride: int) -> np.ndarray:
    """The up-scaled Zero-DCE++ map at every ``stride``-th row and column
    of the full-resolution image, ``[ceil(H/s), ceil(W/s), 3]``."""
    h, w = shape
    hs, ws = maps_small.shape[:2]
    rows = [a[::stride] for a in resize.interp_taps(hs, h,
                                                    align_corners=True)]
    cols = [a[::stride] for a in resize.interp_taps(ws, w,
                                                    align_corners=True)]
    up = resize.resize_axis(np.asarray(maps_small, np.float32), rows, axis=0)
    return np.asarray(resize.resize_axis(up, cols, axis=1), np.float32)

  # ------------------------------------------------------------ exposure --

  def _strength(self, image: np.ndarray, sub_maps: np.ndarray,
                controls: quality.Controls) -> float:
    """The strength ``controls`` ask for: theirs, or the one that gives
    ``image`` the target mean brightness (``core.exposure``), measured on
    the subsample that ``sub_maps`` (every ``subsample``-th pixel's maps)
    belong to."""
    if controls.exposure is None:
      return controls.strength
    s = self.subsample
    x = image[::s, ::s]
    hb = _round_up(x.shape[0], self.bucket // s)
    wb = _round_up(x.shape[1], self.bucket // s)
    xc = np.zeros((hb, wb, 3), np.float32)
    mc = np.zeros((hb, wb, sub_maps.shape[-1]), np.float32)
    mask = np.zeros((hb, wb, 1), np.float32)
    xc[:x.shape[0], :x.shape[1]] = x
    mc[:x.shape[0], :x.shape[1]] = sub_maps
    mask[:x.shape[0], :x.shape[1]] = 1
    solve = self._controlled_fn("strength", controls.shoulder)
    return float(solve(jnp.asarray(xc), jnp.asarray(mc), jnp.asarray(mask),
                       jnp.float32(controls.exposure)))

  def _sub_maps(self, images: Sequence[np.ndarray], maps=None
                ) -> list[np.ndarray]:
    """Every ``subsample``-th pixel's curve maps (from ``maps`` as
    ``estimate`` gives them, or from the network)."""
    s = self.subsample
    if maps is None:
      if not self._rescales:
        return self._through_net(self._maps_fn, images,
                                 self.model.map_channels, stride=s)
      maps = self.estimate(images)
    if not self._rescales:
      return [np.asarray(m)[::s, ::s] for m in maps]
    return [self._scaled_sub_maps(im.shape[:2], m, s)
            for im, m in zip(images, maps)]

  # --------------------------------------------------------------- public --
  def __call__(self, images: Sequence[np.ndarray], *,
               controls: quality.Controls | None = None
               ) -> list[np.ndarray]:
    """Enhances RGB float images (``[H, W, 3]`` in [0, 1], any sizes).

    Args:
      images: the images.
      controls: strength, exposure, highlight protection, denoising
        (``apps.quality.Controls``; default: the Enhancer's own); plain
        controls take the exact path of the paper (the official outputs
        with official weights).

    Returns:
      One ``[H, W, 3]`` float32 array in [0, 1] per input, same sizes.
    """
    images = tiling.checked_images(images)
    controls = self.controls if controls is None else controls
    if controls is not None and not controls.plain:
      return self._controlled(images, controls)
    if not self._rescales:
      return self._through_net(self._enhance_fn, images, 3)
    maps = self.estimate(images)
    return [self._apply_scaled_maps(im, m) for im, m in zip(images, maps)]

  def _controlled(self, images: list[np.ndarray],
                  controls: quality.Controls) -> list[np.ndarray]:
    """``__call__`` with controls, in bounded memory: Zero-DCE runs the
    network twice when an exposure is asked for (once for the strength,
    on a subsample, once to render), Zero-DCE++ once (its maps are small)."""
    if self._rescales:
      maps = self.estimate(images)
      return self.render(images, maps, controls=controls)
    if controls.exposure is None:
      strengths = [controls.strength] * len(images)
    else:
      strengths = [self._strength(im, m, controls) for im, m in
                   zip(images, self._sub_maps(images))]
    extras = [self._extras(im, s, controls)
              for im, s in zip(images, strengths)]
    denoised = bool(controls.denoise)
    return self._through_net(
        self._controlled_fn("net", controls.shoulder, denoised), images, 3,
        extras=extras, halo=denoise.HALO if denoised else 0)

  def estimate(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The curve maps of RGB float images, computed once so that
    ``render`` can apply them at any strength, exposure or denoising.

    Returns:
      Per image, Zero-DCE: ``[H, W, 3n]`` (one map per iteration);
      Zero-DCE++: ``[h, w, 3]`` at the network's (down-scaled) resolution.
    """
    images = tiling.checked_images(images)
    if not self._rescales:
      return self._through_net(self._maps_fn, images,
                               self.model.map_channels)
    s = self.model.scale_factor
    smalls = [resize.torch_downscale(im[None], s)[0] for im in images]
    return self._through_net(self._maps_fn, smalls, 3)

  def render(self, images: Sequence[np.ndarray], maps: Sequence[np.ndarray],
             *, controls: quality.Controls = quality.PLAIN,
             noise: Sequence[tuple[float, float]] | None = None
             ) -> list[np.ndarray]:
    """Applies maps from ``estimate`` with ``controls``: the same result as
    ``__call__(images, controls=controls)`` without running the network.

    Args:
      images: the images the maps were estimated on.
      maps: ``estimate(images)``.
      controls: what to apply.
      noise: ``noise(image)`` per image, if already known (denoising
        estimates it otherwise).

    Returns:
      One ``[H, W, 3]`` float32 array in [0, 1] per image.
    """
    images = tiling.checked_images(images)
    noise = [None] * len(images) if noise is None else list(noise)
    out = []
    for im, m, nz, sub in zip(images, maps, noise, self._sub_maps(images, maps)
                              if controls.exposure is not None else
                              [None] * len(images)):
      s = self._strength(im, sub, controls)
      extra = self._extras(im, s, controls, nz)
      denoised = bool(controls.denoise)
      if self._rescales:
        out.append(self._apply_scaled_maps(
            im, m, self._controlled_fn("strip", controls.shoulder, denoised),
            extra, halo=denoise.HALO if denoised else 0))
      else:
        y = self._controlled_fn("full", controls.shoulder, denoised)(
            jnp.asarray(im, self.model.dtype),
            jnp.asarray(m, self.model.dtype), jnp.asarray(extra))
        out.append(np.asarray(y, np.float32))
    return out


# The Enhancers ``enhance`` built last, newest last: (params, key, Enhancer).
_ENHANCERS: collections.deque = collections.deque(maxlen=4)


def _cached_enhancer(params: Any, fields: dict[str, Any], **options: Any
                     ) -> Enhancer:
  """An ``Enhancer`` for these very ``params`` (the same object) and
  options, reused across calls so that its compiled functions are too."""
  key = (tuple(fields[k] for k in ("depth", "width", "iterations",
                                   "separable")),
         tuple(sorted(options.items())))
  for p, k, e in _ENHANCERS:
    if p is params and k == key:
      return e
  model = models.model_from_arch(fields, dtype=options["dtype"],
                                 scale_factor=options["scale_factor"])
  e = Enhancer(model, params, tile=options["tile"],
               max_pixels=options["max_pixels"])
  _ENHANCERS.append((params, key, e))
  return e


def enhance(image: np.ndarray, params: Any, *,
            arch: dict[str, Any] | str = "zerodce", scale_factor: int = 12,
            dtype: Any = jnp.float32, tile: int = 1024,
            max_pixels: int = 4_194_304, strength: float | None = None,
            exposure: float | str | None = None,
            denoise: float | str | None = None,
            controls: quality.Controls | None = None) -> np.ndarray:
  """Enhances one image given as a NumPy array, any dtype, as the CLI does.

  Args:
    image: ``[H, W]`` (grey), ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA)
      uint8, uint16 or float in [0, 1]. Alpha is passed through unchanged.
    params: model params (``load_weights``).
    arch: architecture fields (as ``load_weights`` returns) or a name from
      ``models.ARCHITECTURES``.
    scale_factor: Zero-DCE++ only (official test: 12).
    dtype: compute dtype.
    tile, max_pixels: see ``Enhancer``.
    strength, exposure, denoise: controls beyond the paper, as the command
      line's ``--strength``, ``--exposure`` (a brightness, ``"auto"`` or
      ``"off"``) and ``--denoise`` (0..1, ``"auto"`` or ``"off"``); None:
      not applied. Or ``controls``, an ``apps.quality.Controls``.

  The ``Enhancer`` built for a call is kept (the last few, keyed by the
  ``params`` object and the options), so calling again with the same
  params compiles nothing new.

  Returns:
    The enhanced image with ``image``'s shape and dtype.
  """
  arr = np.asarray(image)
  try:
    rgb = image_io.to_float(arr)
  except ValueError as e:
    raise ValueError(f"cannot enhance this array: {e}") from None
  gray = rgb.ndim == 2 or rgb.shape[-1] in (1, 2)
  if rgb.ndim == 2:
    rgb = rgb[..., None]
  if rgb.ndim != 3 or rgb.shape[-1] not in (1, 2, 3, 4):
    raise ValueError(f"expected [H, W], [H, W, 3] or [H, W, 4], got "
                     f"{arr.shape}")
  alpha = rgb[..., -1:] if rgb.shape[-1] in (2, 4) else None
  colour = rgb[..., :1] if gray else rgb[..., :3]
  if gray:
    colour = np.repeat(colour, 3, axis=-1)
  fields = models.ARCHITECTURES[arch] if isinstance(arch, str) else arch
  if controls is None:
    controls = quality.resolve(
        strength=strength,
        exposure=None if exposure is None else str(exposure),
        denoise=None if denoise is None else str(denoise))
  elif (strength, exposure, denoise) != (None, None, None):
    raise ValueError("give controls or strength/exposure/denoise, not both")
  enhancer = _cached_enhancer(params, fields, scale_factor=scale_factor,
                              dtype=jnp.dtype(dtype).name, tile=tile,
                              max_pixels=max_pixels)
  out = enhancer([colour], controls=controls)[0]
  if gray:
    out = out.mean(axis=-1, keepdims=True)
  if alpha is not None:
    out = np.concatenate([out, alpha], axis=-1)
  if arr.ndim == 2:
    out = out[..., 0]
  if arr.dtype in (np.uint8, np.uint16):
    return image_io.from_float(out, 8 if arr.dtype == np.uint8 else 16)
  return out.astype(arr.dtype if np.issubdtype(arr.dtype, np.floating)
                    else np.float32)
