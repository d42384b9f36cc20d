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

from zerodce_jax.apps import compile_cache, quality, tiling
from zerodce_jax.core import (curves, denoise, exposure, models, rendering,
                              resize)
from zerodce_jax.formats import atomic, image_io

__all__ = ["Enhancer", "enhance", "receptive_radius", "DEFAULT_MAX_MEMORY",
           "default_max_memory", "bytes_per_pixel", "masked_network",
           "block_means", "DEFAULT_MAP_SCALE"]

# Working memory of one compiled call on a CPU unless told otherwise: big
# photos then run in about this much above their decoded pixels and output.
DEFAULT_MAX_MEMORY = 1536 * 2**20
# On an accelerator: this share of the device's memory.
DEVICE_MEMORY_SHARE = 0.5
# Zero-DCE with any control: the curve maps are estimated on 2x2 block
# means (a quarter of the network) and up-sampled along the image's edges
# (docs: "Better than the paper", the quality-per-second table).
DEFAULT_MAP_SCALE = 2


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
  return os.path.join(compile_cache.cache_dir(), "memory_probe.json")


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
    map_scale: Zero-DCE: estimate the curve maps on ``m x m`` block means
      and up-sample them along the image's edges (``core.rendering.
      maps_from_low``): ``m^2`` times less network. ``"auto"`` (default):
      ``DEFAULT_MAP_SCALE`` whenever controls are applied, 1 (every pixel,
      the paper's path) for plain controls.
    guided_maps: up-sample maps smaller than the image (Zero-DCE at a map
      scale, Zero-DCE++) along the image's edges (``core.guided.
      guided_upsample``) instead of linearly: the docs' quality-per-second
      table measures both.
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
  map_scale: int | str = "auto"
  guided_maps: bool = False
  traces: int = 0

  def __post_init__(self):
    compile_cache.enable()
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

    self._enhance_fn = compile_cache.exported(
        counted(masked_network(model, enhance_too=True)),
        (repr(model), "enhance"))
    self._maps_fn = compile_cache.exported(
        counted(masked_network(model, enhance_too=False)),
        (repr(model), "maps"))

    def curve_strip(maps_small, rows, cols, x):
      self.traces += 1
      up = resize.resize_axis(maps_small, rows, axis=0)
      up = resize.resize_axis(up, cols, axis=1)
      return curves.apply_curves(x, up.astype(x.dtype),
                                 iterations=model.iterations)

    self._strip_fn = compile_cache.exported(curve_strip,
                                            (repr(model), "strip"))
    self._fns: dict[tuple[Any, ...], Any] = {}

  # ------------------------------------------------- controlled rendering --
  NOISE_CROP = 1024  # the noise is estimated on a centre crop of this side
  PLAN_PIXELS = 16384  # most pixels the exposure and colour are read on
  # working memory of the controlled render per canvas pixel (its curves,
  # gain and the denoiser's intermediates; the strips are sized by it)
  RENDER_BYTES_PER_PIXEL = 480

  def _jitted(self, key, build):
    """``jax.jit(build())`` once per ``key``, its traced program kept
    across runs (``compile_cache.exported``)."""
    fn = self._fns.get(key)
    if fn is None:
      fn = self._fns[key] = compile_cache.exported(
          build(), (repr(self.model), self.guided_maps, key))
    return fn

  def _noise_canvas(self, image: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The centre crop (at most ``NOISE_CROP`` a side) the noise is
    estimated on, padded to the bucket, and its mask."""
    h, w = image.shape[:2]
    ch, cw = min(h, self.NOISE_CROP), min(w, self.NOISE_CROP)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    hb, wb = _round_up(ch, self.bucket), _round_up(cw, self.bucket)
    canvas = np.zeros((hb, wb, 3), np.float32)
    mask = np.zeros((hb, wb, 1), np.float32)
    canvas[:ch, :cw] = image[y0:y0 + ch, x0:x0 + cw]
    mask[:ch, :cw] = 1
    return canvas, mask

  @staticmethod
  def _estimate_noise(x, m):
    """``[4]``: ``(a1, b1, a2, b2)`` of ``noise``, traced."""
    return jnp.stack(denoise.estimate_noise(x, mask=m, scale=1)
                     + denoise.estimate_noise(x, mask=m, scale=2))

  def noise(self, image: np.ndarray) -> tuple[float, float, float, float]:
    """The input's noise, ``sigma^2 = a I + b``, at full resolution and
    at 2x2 blocks (``core.denoise.estimate_noise`` with ``scale`` 1 and
    2): ``(a1, b1, a2, b2)``, on a centre crop of at most ``NOISE_CROP``
    pixels a side, padded to the bucket (one compiled function per canvas
    size). What the controlled path estimates unless given it: interactive
    callers keep it with the maps."""
    canvas, mask = self._noise_canvas(image)

    def build():
      def fn(x, m):
        self.traces += 1
        return self._estimate_noise(x, m)
      return fn

    out = self._jitted(("noise",), build)(jnp.asarray(canvas),
                                           jnp.asarray(mask))
    return tuple(float(v) for v in np.asarray(out))

  def map_scale_for(self, controls: quality.Controls) -> int:
    """The resolution Zero-DCE's maps are estimated at under ``controls``:
    ``map_scale``, or with ``"auto"`` 1 (every pixel, the paper) for plain
    controls and ``DEFAULT_MAP_SCALE`` otherwise. 1 for Zero-DCE++ (its
    ``scale_factor`` says)."""
    if self.model.separable:
      return 1
    if self.map_scale == "auto":
      return 1 if controls.plain else DEFAULT_MAP_SCALE
    return int(self.map_scale)

  def _analyse(self, image: np.ndarray, maps: np.ndarray,
               controls: quality.Controls,
               noise: tuple[float, ...] | None
               ) -> tuple[tuple[float, ...] | None, np.ndarray]:
    """``(noise, strengths)``: the input's noise (``noise`` when given,
    estimated when the controls need it) and the per-channel strengths the
    controls ask for (``core.exposure.plan_strengths``), read on every
    k-th row and column (``subsample`` or more, at most ``PLAN_PIXELS``
    pixels) with the maps there; one compiled call for both."""
    h, w = image.shape[:2]
    estimate = noise is None and controls.needs_noise
    if controls.exposure is None and not controls.colour:
      if estimate:
        noise = self.noise(image)
      return noise, np.full(3, controls.strength, np.float32)
    k = max(self.subsample, math.ceil(math.sqrt(h * w / self.PLAN_PIXELS)))
    x = image[::k, ::k]
    sub = self._maps_at(image.shape[:2], maps, k)
    hb, wb = _round_up(x.shape[0], 16), _round_up(x.shape[1], 16)
    xc = np.zeros((hb, wb, 3), np.float32)
    mc = np.zeros((hb, wb, sub.shape[-1]), np.float32)
    mask = np.zeros((hb, wb, 1), np.float32)
    xc[:x.shape[0], :x.shape[1]] = x
    mc[:x.shape[0], :x.shape[1]] = sub
    mask[:x.shape[0], :x.shape[1]] = 1
    rule, target, cap = controls.exposure_rule()
    n = self.model.iterations
    shoulder = controls.shoulder

    def build():
      def fn(x, maps, mask, noise, target, strength, amount, crop=None,
             crop_mask=None):
        self.traces += 1
        if estimate:
          noise = self._estimate_noise(crop, crop_mask)
        s = exposure.plan_strengths(
            x, maps, iterations=n, shoulder=shoulder,
            noise=(noise[0], noise[1]), mask=mask,
            target=target if rule == "target" else None,
            strength=strength if rule == "fixed" else None,
            colour_amount=amount, max_strength=cap)[0]
        return noise, s
      return fn

    fn = self._jitted(("plan", rule, cap, shoulder, estimate), build)
    nz = np.zeros(4, np.float32) if noise is None else np.asarray(
        noise, np.float32)
    args = [jnp.asarray(xc), jnp.asarray(mc), jnp.asarray(mask),
            jnp.asarray(nz), jnp.float32(target if target is not None
                                         else 0.0),
            jnp.float32(controls.strength), jnp.float32(controls.colour)]
    if estimate:
      crop, crop_mask = self._noise_canvas(image)
      args += [jnp.asarray(crop), jnp.asarray(crop_mask)]
    nz, s = fn(*args)
    if estimate or noise is not None:
      noise = tuple(float(v) for v in np.asarray(nz))
    return noise, np.asarray(s, np.float32)

  def _maps_at(self, shape: tuple[int, int], maps: np.ndarray, k: int
               ) -> np.ndarray:
    """The maps (as ``estimate`` gives them) at every k-th row and column
    of the full-resolution image: taken as they are at full resolution,
    else interpolated linearly (Zero-DCE++: as its up-sampling; Zero-DCE
    at a map scale: between block centres; the guided up-sampling's edges
    change a mean brightness too little to matter here)."""
    h, w = shape
    hs, ws = maps.shape[:2]
    maps = np.asarray(maps, np.float32)
    if (hs, ws) == (h, w):
      return maps[::k, ::k]
    if self._rescales:
      rows = [a[::k] for a in resize.interp_taps(hs, h, align_corners=True)]
      cols = [a[::k] for a in resize.interp_taps(ws, w, align_corners=True)]
    else:
      f = self._factor_of(shape, maps)
      rows = [a[::k] for a in resize.interp_taps(hs, hs * f,
                                                 align_corners=False)]
      cols = [a[::k] for a in resize.interp_taps(ws, ws * f,
                                                 align_corners=False)]
      rows = [a[:-(-h // k)] for a in rows]
      cols = [a[:-(-w // k)] for a in cols]
    up = resize.resize_axis(maps, rows, axis=0)
    return np.asarray(resize.resize_axis(up, cols, axis=1), np.float32)

  @staticmethod
  def _factor_of(shape: tuple[int, int], maps: np.ndarray) -> int:
    """The map scale of Zero-DCE maps estimated by ``estimate``."""
    f = max(1, round(shape[0] / maps.shape[0]))
    if -(-shape[0] // f) != maps.shape[0] or -(-shape[1] // f) != \
        maps.shape[1]:
      raise ValueError(f"curve maps {maps.shape[:2]} do not belong to an "
                       f"image of {shape}")
    return f

  def _render_fn(self, kind: str, factor: int, shoulder, denoised: bool):
    """The compiled render of one strip, ``fn(x, mask, maps, params
    [, low_mask])``: ``x`` ``[R, W, 3]`` and ``mask`` ``[R, W]``, the maps
    as ``kind`` says: ``full`` (``[R, W, 3n]``, the image's resolution) or
    ``guided`` (``[R/f, W/f, C]`` at ``1/factor``, with ``low_mask``
    ``[R/f, W/f]`` saying which exist: ``rendering.maps_from_low``).
    ``scaled`` is Zero-DCE++'s: its small map and the strip's PyTorch
    interpolation taps (``rows``, ``cols``), the official up-sampling.
    Returns ``[R, W, 3]`` float32."""
    n = self.model.iterations

    def build():
      def fn(x, mask, maps, params, low_mask=None, rows=None, cols=None):
        self.traces += 1
        dtype = self.model.dtype
        planes = jnp.moveaxis(x.astype(dtype), -1, -3)
        mask = mask.astype(dtype)
        if kind == "scaled":
          maps = resize.resize_axis(maps, rows, axis=0)
          maps = resize.resize_axis(maps, cols, axis=1)
        maps = jnp.moveaxis(maps.astype(dtype), -1, -3)
        if kind == "guided":
          maps = rendering.maps_from_low(planes, maps, factor=factor,
                                         mask=mask,
                                         low_mask=low_mask.astype(dtype),
                                         guided_maps=self.guided_maps)
        # materialised once: fused into the curves, XLA:CPU would recompute
        # the transposes and the up-sampling in each of their consumers
        planes, maps = jax.lax.optimization_barrier((planes, maps))
        out = rendering.render(planes, maps, params.astype(dtype),
                               iterations=n, shoulder=shoulder, mask=mask,
                               denoised=denoised)
        return jnp.moveaxis(out, -3, -1).astype(jnp.float32)
      return fn

    return self._jitted(("render", kind, factor, shoulder, denoised,
                         self.guided_maps), build)

  def _render_one(self, image: np.ndarray, maps: np.ndarray,
                  params: np.ndarray, controls: quality.Controls
                  ) -> np.ndarray:
    """One image rendered in strips of rows, each read with a halo (masked
    beyond the image) so that the filters give the whole image's result.
    Maps at the image's resolution are applied as they are; Zero-DCE++'s
    are up-sampled as the official code does (the plain path's, the video
    path's and the export's up-sampling); Zero-DCE maps at a map scale by
    ``rendering.maps_from_low``, each map sample standing for its ``f x f``
    block of the image."""
    h, w = image.shape[:2]
    hs, ws = maps.shape[:2]
    denoised = bool(controls.denoise)
    if (hs, ws) == (h, w):
      kind, f = "full", 1
    elif self._rescales:
      kind, f = "scaled", 1
    else:
      kind, f = "guided", self._factor_of((h, w), maps)
    reach = (denoise.HALO if denoised else 0) + (
        rendering.map_reach(f, guided_maps=self.guided_maps)
        if kind == "guided" else 0)
    align = math.lcm(4, f)
    halo = _round_up(reach, align)
    wfull = _round_up(w, math.lcm(self.bucket, align))
    budget = (self.max_memory or DEFAULT_MAX_MEMORY) / \
        self.RENDER_BYTES_PER_PIXEL
    n = int(budget // wfull) - 2 * halo
    n = max(align, min(self.strip_rows, n) // align * align)
    n = min(n, _round_up(h, math.lcm(32, align)))
    size = n + 2 * halo
    fn = self._render_fn(kind, f, controls.shoulder, denoised)
    out = np.empty((h, w, 3), np.float32)
    p = jnp.asarray(params)
    if kind == "guided":
      low_cols = np.zeros(wfull // f, np.float32)
      low_cols[:ws] = 1
    elif kind == "scaled":
      rows_all = resize.interp_taps(hs, h, align_corners=True)
      cols = [np.zeros(wfull, a.dtype) for a in rows_all]
      for a, b in zip(cols, resize.interp_taps(ws, w, align_corners=True)):
        a[:w] = b
      cols = tuple(map(jnp.asarray, cols))
      hb, wb = _round_up(hs, self.bucket), _round_up(ws, self.bucket)
      small = np.zeros((hb, wb, 3), np.float32)
      small[:hs, :ws] = maps
      small = jnp.asarray(small)
    for y in range(0, h, n):
      k = min(n, h - y)
      y0, y1 = max(y - halo, 0), min(y + k + halo, h)  # rows read
      off = y0 - (y - halo)                            # where they go
      x = np.zeros((size, wfull, 3), np.float32)
      x[off:off + y1 - y0, :w] = image[y0:y1]
      mask = np.zeros((size, wfull), np.float32)
      mask[off:off + y1 - y0, :w] = 1
      args = [jnp.asarray(x, self.model.dtype), jnp.asarray(mask)]
      if kind == "full":
        m = np.zeros((size, wfull, maps.shape[-1]), maps.dtype)
        m[off:off + y1 - y0, :w] = maps[y0:y1]
        res = fn(*args, jnp.asarray(m), p)
      elif kind == "scaled":
        r = [np.zeros(size, a.dtype) for a in rows_all]
        for a, b in zip(r, rows_all):
          a[off:off + y1 - y0] = b[y0:y1]
        res = fn(*args, small, p, None, tuple(map(jnp.asarray, r)), cols)
      else:
        # the canvas's blocks, in the maps; beyond the maps their nearest
        # (the linear up-sampling repeats the image's edge samples)
        l0 = (y - halo) // f
        idx_r = np.clip(np.arange(l0, l0 + size // f), 0, hs - 1)
        idx_c = np.minimum(np.arange(wfull // f), ws - 1)
        lo = np.asarray(maps, np.float32)[idx_r][:, idx_c]
        a0, a1 = max(l0, 0), min(l0 + size // f, hs)
        low_rows = np.zeros(size // f, np.float32)
        low_rows[a0 - l0:a1 - l0] = 1
        res = fn(*args, jnp.asarray(lo), p,
                 jnp.asarray(low_rows[:, None] * low_cols[None, :]))
      out[y:y + k] = np.asarray(res)[halo:halo + k, :w]
    return out

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
             halo: int = 0, dtype=np.float32) -> np.ndarray:
    """One large image through ``fn`` in halo tiles; exact. Tile cores
    start at multiples of the bucket, so every ``stride``-th row and column
    of the image (``stride`` dividing the bucket) is every ``stride``-th of
    each core."""
    h, w = image.shape[:2]
    t = self._limits(fn, halo)[1]
    r = receptive_radius(self.model) + halo
    size = t + 2 * r
    out = np.empty((-(-h // stride), -(-w // stride), out_channels), dtype)
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
                   stride: int = 1, halo: int = 0,
                   dtype=np.float32) -> list[np.ndarray]:
    """Images through ``fn`` (``fn(params, x, mask[, extra])``), whole in
    buckets or in halo tiles (``halo`` pixels beyond the network's own
    receptive field: what ``fn`` reads after it); every ``stride``-th row
    and column kept; the results in ``dtype`` (a tiled image's is never
    held in float32 whole)."""
    limit = self._limits(fn, halo)[0]
    small = [i for i, im in enumerate(images)
             if _round_up(im.shape[0], self.bucket)
             * _round_up(im.shape[1], self.bucket) <= limit]
    results: list[np.ndarray | None] = [None] * len(images)
    ex = None if extras is None else [extras[i] for i in small]
    for i, y in zip(small, self._bucketed(fn, [images[i] for i in small], ex,
                                          stride)):
      results[i] = y.astype(dtype, copy=False)
    for i, im in enumerate(images):
      if results[i] is None:
        results[i] = self._tiled(fn, im, out_channels,
                                 None if extras is None else extras[i],
                                 stride, halo, dtype)
    return results  # type: ignore[return-value]

  # ---------------------------------------------------------- Zero-DCE++ --
  def _apply_scaled_maps(self, image: np.ndarray, maps_small: np.ndarray
                         ) -> np.ndarray:
    """Up-scales a small curve map and applies it, in strips of rows (the
    plain Zero-DCE++ path: PyTorch's up-sampling, the official curves)."""
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
  def __call__(self, images: Sequence[np.ndarray], *,
               controls: quality.Controls | None = None
               ) -> list[np.ndarray]:
    """Enhances RGB float images (``[H, W, 3]`` in [0, 1], any sizes).

    Args:
      images: the images.
      controls: strength, exposure, colour, highlight protection, denoising
        (``apps.quality.Controls``; default: the Enhancer's own); plain
        controls take the exact path of the paper (the official outputs
        with official weights).

    Returns:
      One ``[H, W, 3]`` float32 array in [0, 1] per input, same sizes.
    """
    images = tiling.checked_images(images)
    controls = self.controls if controls is None else controls
    if controls is not None and not controls.plain:
      maps = self.estimate(images, map_scale=self.map_scale_for(controls))
      return self.render(images, maps, controls=controls)
    if not self._rescales and self.map_scale_for(quality.PLAIN) == 1:
      return self._through_net(self._enhance_fn, images, 3)
    maps = self.estimate(images, map_scale=self.map_scale_for(
        quality.PLAIN))
    if self._rescales:
      return [self._apply_scaled_maps(im, m) for im, m in zip(images, maps)]
    return self.render(images, maps, controls=quality.PLAIN)

  def estimate(self, images: Sequence[np.ndarray], *,
               map_scale: int | None = None) -> list[np.ndarray]:
    """The curve maps of RGB float images, computed once so that
    ``render`` can apply them at any strength, exposure, colour or
    denoising.

    Args:
      images: the images.
      map_scale: Zero-DCE only: estimate the maps on ``map_scale x
        map_scale`` block means of the image (``render`` up-samples them).
        Default: the scale any control gets (``map_scale_for``; with
        ``map_scale="auto"``, ``DEFAULT_MAP_SCALE``): ``render`` then gives
        what ``__call__`` gives with controls. ``1`` for the exact paper
        path with plain controls.

    Returns:
      Per image, Zero-DCE: ``[ceil(H/m), ceil(W/m), 3n]``, one map per
      iteration (float16, to halve their memory);
      Zero-DCE++: ``[h, w, 3]`` at the network's (down-scaled) resolution.
    """
    images = tiling.checked_images(images)
    if self._rescales:
      s = self.model.scale_factor
      smalls = [resize.torch_downscale(im[None], s)[0] for im in images]
      return self._through_net(self._maps_fn, smalls, 3)
    if map_scale is None:
      map_scale = self.map_scale_for(_ANY_CONTROL)
    smalls = (images if map_scale == 1
              else [block_means(im, map_scale) for im in images])
    return self._through_net(self._maps_fn, smalls, self.model.map_channels,
                             dtype=np.float16)

  def render(self, images: Sequence[np.ndarray], maps: Sequence[np.ndarray],
             *, controls: quality.Controls = quality.PLAIN,
             noise: Sequence[tuple[float, ...]] | None = None
             ) -> list[np.ndarray]:
    """Applies maps from ``estimate`` with ``controls``: the same result as
    ``__call__(images, controls=controls)`` without running the network
    (when the maps were estimated at the scale ``__call__`` uses).

    Args:
      images: the images the maps were estimated on.
      maps: ``estimate(images)``.
      controls: what to apply.
      noise: ``noise(image)`` per image, if already known (estimated
        otherwise when the controls need it).

    Returns:
      One ``[H, W, 3]`` float32 array in [0, 1] per image.
    """
    images = tiling.checked_images(images)
    noise = [None] * len(images) if noise is None else list(noise)
    out = []
    for im, m, nz in zip(images, maps, noise):
      m = np.asarray(m)
      if controls.plain and self._rescales:
        out.append(self._apply_scaled_maps(im, m))
        continue
      nz, strengths = self._analyse(im, m, controls, nz)
      params = rendering.pack_params(strengths, controls.denoise, nz)
      out.append(self._render_one(im, m, params, controls))
    return out


_ANY_CONTROL = quality.Controls(denoise=1.0)


def block_means(image: np.ndarray, f: int) -> np.ndarray:
  """``[ceil(H/f), ceil(W/f), C]`` means of ``f x f`` blocks (the blocks
  cut by the image's edge: the mean of their pixels in it), float32."""
  h, w, _ = image.shape
  rows, cols = np.arange(0, h, f), np.arange(0, w, f)
  # block sums, the last block of a row or column cut by the edge (no
  # padded copy of the image: a 24 MP photo costs 1/f of it)
  s = np.add.reduceat(np.add.reduceat(np.asarray(image, np.float32), rows,
                                      axis=0), cols, axis=1)
  n = (np.diff(np.append(rows, h))[:, None, None]
       * np.diff(np.append(cols, w))[None, :, None]).astype(np.float32)
  return s / n


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
