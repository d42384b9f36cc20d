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

from zerodce_jax.apps import tiling
from zerodce_jax.core import curves, models, resize
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
        enhance_too=fn is self._enhance_fn, backend=jax.default_backend())
    return max(1, int(self.max_memory / per_pixel))

  def _limits(self, fn) -> tuple[int, int]:
    """``(tiling threshold in pixels, tile core side)`` under the budget."""
    budget = self.call_pixels(fn)
    r = receptive_radius(self.model)
    side = int(math.isqrt(budget)) - 2 * r
    tile = min(self.tile, max(self.bucket, side // self.bucket * self.bucket))
    return min(self.max_pixels, budget), tile

  # ------------------------------------------------------------ conv nets --
  def _run_canvases(self, fn, canvases: list[np.ndarray],
                    masks: list[np.ndarray]) -> list[np.ndarray]:
    """Runs ``fn`` on same-shape canvases, batched by powers of two."""
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
      y = np.asarray(fn(self.params, jnp.asarray(x, self.model.dtype),
                        jnp.asarray(m, self.model.dtype)), np.float32)
      outs += list(y[:n])
    return outs

  def _bucketed(self, fn, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Whole images through ``fn``, grouped by bucket, cropped back."""
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
      for i, y in zip(idx, self._run_canvases(fn, canvases, masks)):
        h, w = images[i].shape[:2]
        results[i] = y[:h, :w]
    return results  # type: ignore[return-value]

  def _tiled(self, fn, image: np.ndarray, out_channels: int) -> np.ndarray:
    """One large image through ``fn`` in halo tiles; exact."""
    h, w = image.shape[:2]
    t, r = self._limits(fn)[1], receptive_radius(self.model)
    size = t + 2 * r
    out = np.empty((h, w, out_channels), np.float32)
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
      for tl, res in zip(chunk, self._run_canvases(fn, canvases, masks)):
        out[tl.y:tl.y + tl.h, tl.x:tl.x + tl.w] = res[r:r + tl.h, r:r + tl.w]
    return out

  def _through_net(self, fn, images: Sequence[np.ndarray],
                   out_channels: int) -> list[np.ndarray]:
    limit = self._limits(fn)[0]
    small = [i for i, im in enumerate(images)
             if _round_up(im.shape[0], self.bucket)
             * _round_up(im.shape[1], self.bucket) <= limit]
    results: list[np.ndarray | None] = [None] * len(images)
    for i, y in zip(small, self._bucketed(fn, [images[i] for i in small])):
      results[i] = y
    for i, im in enumerate(images):
      if results[i] is None:
        results[i] = self._tiled(fn, im, out_channels)
    return results  # type: ignore[return-value]

  # ---------------------------------------------------------- Zero-DCE++ --
  def _apply_scaled_maps(self, image: np.ndarray, maps_small: np.ndarray) -> np.ndarray:
    """Up-scales a small curve map and applies it, in strips of rows."""
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
    for y in range(0, h, n):
      k = min(n, h - y)
      strip = np.zeros((n, wfull, 3), np.float32)
      strip[:k, :w] = image[y:y + k]
      r = [np.zeros(n, a.dtype) for a in rows]
      for a, b in zip(r, rows):
        a[:k] = b[y:y + k]
      res = self._strip_fn(jnp.asarray(pad_maps), tuple(map(jnp.asarray, r)),
                           tuple(map(jnp.asarray, cols)),
                           jnp.asarray(strip, self.model.dtype))
      out[y:y + k] = np.asarray(res, np.float32)[:k, :w]
    return out

  # --------------------------------------------------------------- public --
  def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Enhances RGB float images (``[H, W, 3]`` in [0, 1], any sizes).

    Returns:
      One ``[H, W, 3]`` float32 array in [0, 1] per input, same sizes.
    """
    images = tiling.checked_images(images)
    if not self._rescales:
      return self._through_net(self._enhance_fn, images, 3)
    s = self.model.scale_factor
    smalls = [resize.torch_downscale(im[None], s)[0] for im in images]
    maps = self._through_net(self._maps_fn, smalls, 3)
    return [self._apply_scaled_maps(im, m) for im, m in zip(images, maps)]


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
            max_pixels: int = 4_194_304) -> np.ndarray:
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
  enhancer = _cached_enhancer(params, fields, scale_factor=scale_factor,
                              dtype=jnp.dtype(dtype).name, tile=tile,
                              max_pixels=max_pixels)
  out = enhancer([colour])[0]
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
