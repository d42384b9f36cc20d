"""The model side of ``zerodce serve``: uploaded images, cached previews and
download jobs. No HTTP here (``server`` is the web layer); everything a
request may name is an id or a value checked here.

* **Images** are kept as the uploaded file, under a server-made name in a
  private temporary folder (``mkdtemp``, mode 0700, removed by ``close``).
  The name the browser gave is only shown and used for the download's name,
  cleaned (``display_name``); it never reaches the filesystem.
* **Previews** are the image down-scaled to at most ``Limits.preview_pixels``
  with its curve maps estimated once per image and model (``Enhancer.
  estimate``) and kept in a bounded LRU cache, so a new strength, exposure
  or denoising only re-renders the curves (``Enhancer.render``).
* **Downloads** are jobs run one at a time by a worker thread: each image is
  decoded again at full resolution with ``formats.image_io.read_image``,
  enhanced by ``Enhancer.__call__`` (the path of ``zerodce enhance``) and
  written by ``image_io.write_image`` (format, bit depth, grey, alpha, EXIF
  orientation as the command line keeps them); several images become a zip.
* **Models** are the two bundled ones and, if given at start, the weights of
  ``--weights``; a request names one by id, never by path. Model calls are
  serialised by one lock (the ``Enhancer`` caches are not thread-safe), and
  image files are read and written one at a time by another; the HTTP layer,
  preview encoding and a model call run concurrently.

Arrays are NumPy ``[H, W, 3]`` float32 in [0, 1], as in ``apps.enhance``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
import warnings
import zipfile
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from PIL import Image

from zerodce_jax.apps import enhance, quality
from zerodce_jax.core import models
from zerodce_jax.formats import image_io, weights

__all__ = ["Engine", "Limits", "ModelChoice", "ServeError", "Job",
           "display_name", "parse_controls", "OUTPUT_FORMATS",
           "PREVIEW_PIXELS", "PREVIEW_SUBSAMPLE", "CLI_ENHANCER_OPTIONS"]

# Previews (and the maps behind them) have at most this many pixels.
PREVIEW_PIXELS = 1 << 20
# An exposure target is met on previews by measuring the mean brightness on
# every 8th row and column (``Enhancer.subsample``; downloads keep the
# command line's 4): 16k pixels of a 1 MP preview, a quarter of the time.
PREVIEW_SUBSAMPLE = 8
# What `zerodce enhance` builds its Enhancer with by default (its --batch,
# --tile, --max-megapixels, --max-memory); results do not depend on them
# (tiling is exact), only memory and speed do.
CLI_ENHANCER_OPTIONS = {"batch_size": 8, "tile": 1024,
                        "max_pixels": int(4.2e6), "max_memory": "auto"}
# `zerodce enhance --format` choices -> the extension written
OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif",
                  "bmp": ".bmp", "webp": ".webp"}
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_PREVIEW_QUALITY = 90


class ServeError(Exception):
  """A request that cannot be served: one line for the page, and the HTTP
  status that goes with it."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one server accepts.

  Attributes:
    max_upload_bytes: largest uploaded file.
    max_pixels: largest image (width x height), checked from the file's
      header before it is decoded; formats.image_io's decompression-bomb
      guard applies too.
    max_images: images held at once (uploads beyond are refused until some
      are removed).
    preview_pixels: previews are down-scaled to at most this many pixels.
    cache_bytes: previews and their curve maps kept in memory, most
      recently used first; the rest is recomputed when asked for again.
    max_jobs: download jobs queued or running at once.
  """
  max_upload_bytes: int = 200 * 2**20
  max_pixels: int = 50_000_000
  max_images: int = 200
  preview_pixels: int = PREVIEW_PIXELS
  cache_bytes: int = 1536 * 2**20
  max_jobs: int = 8


@dataclasses.dataclass(frozen=True)
class ModelChoice:
  """A model the page may pick: ``id`` (what requests name), ``label``
  (what the page shows) and ``spec`` (what ``weights.load_weights`` takes;
  never taken from a request)."""
  id: str
  label: str
  spec: str

  @property
  def bundled(self) -> bool:
    return self.spec in weights.BUNDLED


BUNDLED_CHOICES = (
    ModelChoice("zerodce-default", "Zero-DCE (bundled)", "zerodce-default"),
    ModelChoice("zerodce-pp-default", "Zero-DCE++ (bundled, fast)",
                "zerodce-pp-default"),
)


def display_name(raw: str | None, *, limit: int = 120) -> str:
  """A file name from a browser made harmless: its last path component,
  without control or format characters, leading dots and spaces, at most
  ``limit`` characters (the extension kept); ``image`` if nothing is left.
  Only shown and used as the download's name, never as a path."""
  name = re.split(r"[/\\]", raw or "")[-1]
  name = "".join(c for c in unicodedata.normalize("NFC", name)
                 if unicodedata.category(c)[0] not in "CZ" or c == " ")
  name = " ".join(name.split()).lstrip(". ")
  if len(name) > limit:
    stem, ext = os.path.splitext(name)
    ext = ext if len(ext) <= 10 else ""
    name = stem[:limit - len(ext)].rstrip() + ext
  return name or "image"


def parse_controls(params: Mapping[str, str], *, bundled: bool
                   ) -> quality.Controls:
  """The controls a request asks for, as ``zerodce enhance`` reads them:
  ``strength``, ``exposure`` (off|auto|mean|E), ``denoise`` (off|auto|S),
  ``colour`` (off|auto|A) and ``highlights`` (protect|off); a missing one
  takes the command line's default for the model (``quality.resolve``).

  Raises:
    quality.ControlError: a bad value.
  """
  strength = params.get("strength")
  highlights = params.get("highlights", "protect")
  if highlights not in ("protect", "off"):
    raise quality.ControlError(f"highlights wants protect or off, got "
                               f"{highlights[:40]!r}")
  return quality.resolve(
      strength=None if strength is None else quality.parse_strength(
          strength),
      exposure=params.get("exposure"), denoise=params.get("denoise"),
      colour=params.get("colour"),
      highlights=highlights == "protect", bundled=bundled)


@dataclasses.dataclass
class _Image:
  id: str
  name: str
  path: str
  width: int
  height: int
  format: str
  bit_depth: int
  gray: bool
  alpha: bool
  size: int

  def public(self) -> dict[str, Any]:
    return {"id": self.id, "name": self.name, "width": self.width,
            "height": self.height, "format": self.format,
            "bit_depth": self.bit_depth, "gray": self.gray,
            "alpha": self.alpha, "bytes": self.size}


@dataclasses.dataclass
class Job:
  """A download: images enhanced at full resolution, one file or a zip."""
  id: str
  image_ids: list[str]
  model_id: str
  controls: quality.Controls
  fmt: str | None
  state: str = "queued"  # queued, running, done, error, cancelled
  done: int = 0
  errors: list[str] = dataclasses.field(default_factory=list)
  warnings: list[str] = dataclasses.field(default_factory=list)
  path: str | None = None
  filename: str | None = None
  mime: str = "application/octet-stream"
  cancelled: bool = False
  current_start: float = 0.0
  current_expected: float = 0.0

  @property
  def total(self) -> int:
    return len(self.image_ids)

  def status(self) -> dict[str, Any]:
    """What the page polls: state, counts, a progress fraction in [0, 1]
    (within an image: from the measured speed of earlier ones), messages."""
    progress = self.done
    if self.state == "running" and self.current_expected > 0:
      progress += min(0.95, (time.monotonic() - self.current_start)
                      / self.current_expected)
    if self.state == "done":
      progress = self.total
    return {"id": self.id, "state": self.state, "done": self.done,
            "total": self.total, "progress": progress / max(self.total, 1),
            "errors": list(self.errors), "warnings": list(self.warnings),
            "filename": self.filename}


class _Cache:
  """A byte-bounded LRU of arrays (or bytes), thread-safe."""

  def __init__(self, capacity: int):
    self.capacity = capacity
    self._items: collections.OrderedDict = collections.OrderedDict()
    self._bytes = 0
    self._lock = threading.Lock()

  @staticmethod
  def _size(value) -> int:
    if isinstance(value, (bytes, bytearray)):
      return len(value)
    return sum(int(getattr(v, "nbytes", 0)) for v in (
        value if isinstance(value, (list, tuple)) else [value]))

  def get(self, key):
    with self._lock:
      if key not in self._items:
        return None
      self._items.move_to_end(key)
      return self._items[key]

  def put(self, key, value) -> None:
    with self._lock:
      if key in self._items:
        self._bytes -= self._size(self._items.pop(key))
      self._items[key] = value
      self._bytes += self._size(value)
      while self._bytes > self.capacity and len(self._items) > 1:
        _, old = self._items.popitem(last=False)
        self._bytes -= self._size(old)

  def drop(self, prefix: str) -> None:
    """Forgets every entry whose key starts with ``prefix`` (an image id)."""
    with self._lock:
      for k in [k for k in self._items if k[0] == prefix]:
        self._bytes -= self._size(self._items.pop(k))


def _jpeg(rgb: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image_io.from_float(rgb, 8)).save(
      buf, format="JPEG", quality=_PREVIEW_QUALITY)
  return buf.getvalue()


def _downscale(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
  """``rgb`` with at most ``max_pixels`` pixels, aspect kept (Lanczos per
  channel in float, clipped to [0, 1]); unchanged if already small."""
  h, w = rgb.shape[:2]
  if h * w <= max_pixels:
    return rgb
  f = math.sqrt(max_pixels / (h * w))
  size = (max(1, int(w * f)), max(1, int(h * f)))
  chans = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c],
                                                           np.float32)).resize(
      size, Image.Resampling.LANCZOS, reducing_gap=2.0))
      for c in range(3)]
  return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def _sniff_suffix(path: str) -> str:
  """The suffix the stored upload gets: ``.tif`` for TIFF content (image_io
  reads TIFF by extension), else a neutral one (the rest by content)."""
  with open(path, "rb") as f:
    head = f.read(4)
  return ".tif" if head in (b"II*\x00", b"MM\x00*") else ".img"


class Engine:
  """Images, previews and download jobs for one server.

  Args:
    weights: ``--weights`` given at start (a bundled name, a weights file or
      a training workdir), loaded now; offered as the model ``weights`` and
      chosen by default. None: the two bundled models, Zero-DCE by default.
    scale_factor: Zero-DCE++ down-scaling (as ``zerodce enhance``).
    limits: what is accepted.
    enhancer_options: ``Enhancer`` options (default the command line's).
    dtype: compute dtype.
    tmp_parent: where the private temporary folder is made (default the
      system's).

  Raises:
    params_io.WeightsError: ``weights`` cannot be loaded.
  """

  def __init__(self, *, weights: str | None = None, scale_factor: int = 12,
               limits: Limits = Limits(),
               enhancer_options: Mapping[str, Any] | None = None,
               dtype: str = "float32", tmp_parent: str | None = None):
    self.limits = limits
    self.scale_factor = scale_factor
    self.dtype = dtype
    self.enhancer_options = dict(CLI_ENHANCER_OPTIONS if enhancer_options
                                 is None else enhancer_options)
    self.choices: dict[str, ModelChoice] = {c.id: c for c in
                                            BUNDLED_CHOICES}
    self._loaded: dict[str, tuple[Any, dict]] = {}
    self.default_model = "zerodce-default"
    if weights is not None:
      if weights in self.choices:
        self.default_model = weights
      else:
        self._loaded["weights"] = self._load(weights)
        label = os.path.basename(os.path.normpath(weights)) or weights
        self.choices["weights"] = ModelChoice(
            "weights", f"--weights {label}", weights)
        self.default_model = "weights"
    self.dir = tempfile.mkdtemp(prefix="zerodce-serve-", dir=tmp_parent)
    self._uploads = os.path.join(self.dir, "uploads")
    self._outputs = os.path.join(self.dir, "outputs")
    os.mkdir(self._uploads, 0o700)
    os.mkdir(self._outputs, 0o700)
    self._images: dict[str, _Image] = {}
    self._reserved = 0
    self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
    self._store = threading.Lock()      # _images, _jobs, _reserved
    self._model_lock = threading.Lock()  # every Enhancer call
    self._enhancers: dict[tuple[str, bool], enhance.Enhancer] = {}
    self._cache = _Cache(limits.cache_bytes)
    # Image files are read and written one at a time: each decode holds a
    # full image in memory, and image_io's decompression-bomb guard (like
    # the capture of write_image's warnings) uses `warnings.catch_warnings`,
    # which is process-wide, so two at once could switch each other's off.
    self._io = threading.Lock()
    self._rate: dict[str, float] = {}  # model id -> seconds per megapixel
    self._queue: queue.Queue = queue.Queue()
    self._closed = False
    self._worker = threading.Thread(target=self._work, daemon=True,
                                    name="zerodce-serve-jobs")
    self._worker.start()

  # ------------------------------------------------------------ models --
  @staticmethod
  def _load(spec: str) -> tuple[Any, dict]:
    params, arch, _ = weights.load_weights(spec)
    return params, arch

  def config(self) -> dict[str, Any]:
    """What the page needs to draw its controls: the models (with the
    command line's default controls for each), the formats, the limits."""
    out = []
    for c in self.choices.values():
      d = quality.resolve(bundled=c.bundled)
      out.append({"id": c.id, "label": c.label, "defaults": {
          "strength": d.strength,
          "exposure": "off" if d.exposure is None else d.exposure,
          "denoise": d.denoise,
          "colour": d.colour,
          "highlights": "protect" if d.protect_highlights else "off"}})
    return {"models": out, "default_model": self.default_model,
            "formats": list(OUTPUT_FORMATS),
            "max_strength": quality.MAX_STRENGTH,
            "auto_exposure": "auto",
            "auto_denoise": quality.AUTO_DENOISE,
            "limits": {"max_upload_bytes": self.limits.max_upload_bytes,
                       "max_pixels": self.limits.max_pixels,
                       "max_images": self.limits.max_images}}

  def choice(self, model_id: str | None) -> ModelChoice:
    """The model a request names (None: the default)."""
    c = self.choices.get(model_id or self.default_model)
    if c is None:
      raise ServeError(f"unknown model {str(model_id)[:40]!r} (one of "
                       f"{', '.join(self.choices)})")
    return c

  def _enhancer(self, model_id: str, *, preview: bool = False
                ) -> enhance.Enhancer:
    """The Enhancer of a model, built on first use: the command line's for
    downloads, or the previews' (``PREVIEW_SUBSAMPLE``). Call with the
    model lock held."""
    key = (model_id, preview)
    if key not in self._enhancers:
      if model_id not in self._loaded:
        self._loaded[model_id] = self._load(self.choices[model_id].spec)
      params, arch = self._loaded[model_id]
      model = models.model_from_arch(arch, dtype=self.dtype,
                                     scale_factor=self.scale_factor)
      en = enhance.Enhancer(model, params, **self.enhancer_options)
      if preview:
        en.subsample = PREVIEW_SUBSAMPLE
      self._enhancers[key] = en
    return self._enhancers[key]

  # ------------------------------------------------------------ images --
  def upload_path(self) -> str:
    """A fresh server-made path for an upload's bytes (the HTTP layer
    writes the body there, then calls ``add_image``). Reserves a place:
    raises ServeError (429) when ``max_images`` are held."""
    with self._store:
      if len(self._images) + self._reserved >= self.limits.max_images:
        raise ServeError(f"{self.limits.max_images} images are open: remove "
                         "some first", 429)
      self._reserved += 1
    return os.path.join(self._uploads, secrets.token_hex(12))

  def discard_upload(self, path: str) -> None:
    """Gives back the place ``upload_path`` reserved; removes the file."""
    with self._store:
      self._reserved = max(0, self._reserved - 1)
    _remove(path)

  def add_image(self, path: str, name: str | None) -> dict[str, Any]:
    """Checks and registers an upload written to ``path`` (from
    ``upload_path``) under the browser's ``name``.

    Returns:
      The image's public description (id, cleaned name, size, format...).

    Raises:
      ServeError: not an image, truncated, too many pixels...; the
        message names the image by its cleaned name; nothing is kept.
    """
    shown = display_name(name)
    try:
      stored = path + _sniff_suffix(path)
      os.replace(path, stored)
      path = stored
      with self._io:
        self._check_header(path, shown)
        rgb, info = self._read(path, shown)
      preview = _downscale(rgb, self.limits.preview_pixels)
      h, w = rgb.shape[:2]
      del rgb
      rec = _Image(id=secrets.token_urlsafe(12), name=shown, path=path,
                   width=w, height=h, format=info.format,
                   bit_depth=info.bit_depth, gray=info.gray,
                   alpha=info.alpha is not None, size=os.path.getsize(path))
      self._cache.put((rec.id, "preview"), preview)
    except BaseException:
      self.discard_upload(path)
      raise
    with self._store:
      self._reserved = max(0, self._reserved - 1)
      self._images[rec.id] = rec
    return rec.public()

  def _check_header(self, path: str, shown: str) -> None:
    """Refuses images over ``max_pixels`` from their header, before
    decoding (a file Pillow cannot identify is left to ``read_image``)."""
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
          w, h = im.size
    except Exception:  # noqa: BLE001 - read_image gives the message
      return
    if w * h > self.limits.max_pixels:
      raise ServeError(f"{shown}: {w}x{h} pixels, more than the limit of "
                       f"{self.limits.max_pixels / 1e6:g} megapixels", 413)

  @staticmethod
  def _read(path: str, shown: str):
    """``image_io.read_image`` with the server's path replaced by the shown
    name in its message."""
    try:
      return image_io.read_image(path)
    except image_io.ImageError as e:
      raise ServeError(str(e).replace(path, shown)) from None

  def image(self, image_id: str) -> _Image:
    with self._store:
      rec = self._images.get(image_id) if _ID.match(image_id or "") else None
    if rec is None:
      raise ServeError("no such image (removed, or the server restarted)",
                       404)
    return rec

  def images(self) -> list[dict[str, Any]]:
    with self._store:
      return [r.public() for r in self._images.values()]

  def remove(self, image_id: str) -> None:
    rec = self.image(image_id)
    with self._store:
      self._images.pop(rec.id, None)
    self._cache.drop(rec.id)
    _remove(rec.path)

  # ---------------------------------------------------------- previews --
  def _preview_rgb(self, rec: _Image) -> np.ndarray:
    rgb = self._cache.get((rec.id, "preview"))
    if rgb is None:
      with self._io:
        full, _ = self._read(rec.path, rec.name)
      rgb = _downscale(full, self.limits.preview_pixels)
      del full
      self._cache.put((rec.id, "preview"), rgb)
    return rgb

  def before(self, image_id: str) -> bytes:
    """The preview of the input, as JPEG."""
    rec = self.image(image_id)
    data = self._cache.get((rec.id, "before"))
    if data is None:
      data = _jpeg(self._preview_rgb(rec))
      self._cache.put((rec.id, "before"), data)
    return data

  def preview(self, image_id: str, model_id: str | None,
              controls: quality.Controls) -> bytes:
    """The enhanced preview, as JPEG: curve maps estimated once per image
    and model (cached), then only the curves rendered with ``controls``."""
    rec, choice = self.image(image_id), self.choice(model_id)
    rgb = self._preview_rgb(rec)
    key = (rec.id, "maps", choice.id)
    with self._model_lock:
      en = self._enhancer(choice.id, preview=True)
      maps = self._cache.get(key)
      if maps is None:
        t = time.monotonic()
        # kept as a device array: no copy of them at each render
        maps = jnp.asarray(en.estimate([rgb])[0])
        self._cache.put(key, maps)
        self._learn_rate(choice.id, time.monotonic() - t, rgb.shape)
      noise = None
      if controls.needs_noise:  # the input's noise, once per image
        noise = self._cache.get((rec.id, "noise"))
        if noise is None:
          noise = en.noise(rgb)
          self._cache.put((rec.id, "noise"), noise)
      out = en.render([rgb], [maps], controls=controls,
                      noise=None if noise is None else [noise])[0]
    return _jpeg(out)

  def _learn_rate(self, model_id: str, seconds: float, shape) -> None:
    mp = max(shape[0] * shape[1] / 1e6, 1e-3)
    old = self._rate.get(model_id)
    self._rate[model_id] = (seconds / mp if old is None
                            else 0.5 * old + 0.5 * seconds / mp)

  # -------------------------------------------------------------- jobs --
  def submit(self, image_ids: list[str], model_id: str | None,
             controls: quality.Controls, fmt: str | None) -> dict[str, Any]:
    """Queues a download of ``image_ids`` (full resolution, the path of
    ``zerodce enhance``); returns its status. ``fmt``: one of
    ``OUTPUT_FORMATS`` or None (each input's own, as the command line)."""
    if fmt is not None and fmt not in OUTPUT_FORMATS:
      raise ServeError(f"unknown format {str(fmt)[:20]!r} (one of "
                       f"{', '.join(OUTPUT_FORMATS)})")
    if not isinstance(image_ids, list) or not image_ids or not all(
        isinstance(i, str) for i in image_ids):
      raise ServeError("give the ids of the images to download")
    ids = list(dict.fromkeys(image_ids))
    for i in ids:
      self.image(i)
    choice = self.choice(model_id)
    job = Job(id=secrets.token_urlsafe(12), image_ids=ids,
              model_id=choice.id, controls=controls, fmt=fmt)
    with self._store:
      active = sum(j.state in ("queued", "running")
                   for j in self._jobs.values())
      if active >= self.limits.max_jobs:
        raise ServeError(f"{active} downloads are under way: wait for one "
                         "to finish", 429)
      self._jobs[job.id] = job
      self._prune_jobs()
    self._queue.put(job)
    return job.status()

  def job(self, job_id: str) -> Job:
    with self._store:
      job = self._jobs.get(job_id) if _ID.match(job_id or "") else None
    if job is None:
      raise ServeError("no such download", 404)
    return job

  def cancel(self, job_id: str) -> dict[str, Any]:
    job = self.job(job_id)
    job.cancelled = True
    return job.status()

  def _prune_jobs(self, keep: int = 16) -> None:
    """Forgets the oldest finished jobs (and their files) beyond ``keep``.
    Call with the store lock held."""
    finished = [j for j in self._jobs.values()
                if j.state not in ("queued", "running")]
    for j in finished[:max(0, len(finished) - keep)]:
      self._jobs.pop(j.id, None)
      if j.path:
        _remove(j.path)

  def _work(self) -> None:
    while True:
      job = self._queue.get()
      if job is None:
        return
      try:
        self._run_job(job)
      except Exception as e:  # noqa: BLE001 - the page gets one line
        job.errors.append(f"download failed ({type(e).__name__}: {e})")
        job.state = "error"

  def _output_name(self, rec: _Image, fmt: str) -> str:
    """The download's name: the input's name, ``_enhanced``, and its own
    extension when it still fits the format written (else the format's)."""
    stem, ext = os.path.splitext(rec.name)
    if image_io.FORMATS.get(ext.lower()) != fmt:
      ext = OUTPUT_FORMATS[fmt]
    return f"{stem or 'image'}_enhanced{ext}"

  def _run_job(self, job: Job) -> None:
    job.state = "running"
    outputs: list[tuple[str, str]] = []  # (server path, download name)
    for k, image_id in enumerate(job.image_ids):
      if job.cancelled or self._closed:
        break
      try:
        rec = self.image(image_id)
      except ServeError:
        job.errors.append("an image was removed before its download")
        job.done += 1
        continue
      job.current_start = time.monotonic()
      job.current_expected = self._rate.get(job.model_id, 0.0) * (
          rec.width * rec.height / 1e6)
      try:
        outputs.append(self._enhance_one(job, k, rec))
      except ServeError as e:
        job.errors.append(str(e))
      except Exception as e:  # noqa: BLE001 - one bad image, not the job
        job.errors.append(f"{rec.name}: cannot enhance ({type(e).__name__}:"
                          f" {' '.join(str(e).split())[:200]})")
      job.done += 1
    if job.cancelled or self._closed:
      for p, _ in outputs:
        _remove(p)
      job.state = "cancelled"
      return
    if not outputs:
      job.state = "error"
      return
    if job.total == 1:
      job.path, job.filename = outputs[0]
      fmt = image_io.FORMATS.get(os.path.splitext(job.filename)[1].lower())
      job.mime = {"jpeg": "image/jpeg", "png": "image/png",
                  "tiff": "image/tiff", "bmp": "image/bmp",
                  "webp": "image/webp"}.get(fmt, job.mime)
    else:
      job.path = os.path.join(self._outputs, f"{job.id}.zip")
      with zipfile.ZipFile(job.path, "w", zipfile.ZIP_STORED) as z:
        for p, arcname in _unique_names(outputs):
          z.write(p, arcname)
          _remove(p)
      job.filename, job.mime = "zerodce-enhanced.zip", "application/zip"
    job.state = "done"

  def _enhance_one(self, job: Job, k: int, rec: _Image) -> tuple[str, str]:
    with self._io:
      rgb, info = self._read(rec.path, rec.name)
    fmt = job.fmt or info.format
    if fmt not in OUTPUT_FORMATS:
      job.warnings.append(f"{rec.name}: {info.format} cannot be written; "
                          "PNG instead")
      fmt = "png"
    with self._model_lock:
      en = self._enhancer(job.model_id)
      t = time.monotonic()
      out = en([rgb], controls=job.controls)[0]
      self._learn_rate(job.model_id, time.monotonic() - t, rgb.shape)
    del rgb
    path = os.path.join(self._outputs, f"{job.id}-{k}{OUTPUT_FORMATS[fmt]}")
    with self._io, warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      try:
        image_io.write_image(path, out, info, format=fmt)
      except image_io.ImageError as e:
        raise ServeError(f"{rec.name}: cannot write the result "
                         f"({str(e).replace(path, fmt)})") from None
    for w in caught:  # write_image's own start with the path
      if str(w.message).startswith(path + ": "):
        job.warnings.append(f"{rec.name}: {str(w.message)[len(path) + 2:]}")
    return path, self._output_name(rec, fmt)

  # ------------------------------------------------------------- close --
  def close(self) -> None:
    """Stops the job worker (a running image finishes first) and removes
    the temporary folder with every upload and result."""
    if self._closed:
      return
    self._closed = True
    self._queue.put(None)
    self._worker.join(timeout=60)
    shutil.rmtree(self.dir, ignore_errors=True)

  def __enter__(self) -> Engine:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass


def _unique_names(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
  """Zip entries: a repeated name gets `` (2)``, `` (3)``... before its
  extension."""
  seen: set[str] = set()
  out = []
  for path, name in items:
    stem, ext = os.path.splitext(name)
    cand, n = name, 1
    while cand.lower() in seen:
      n += 1
      cand = f"{stem} ({n}){ext}"
    seen.add(cand.lower())
    out.append((path, cand))
  return out
