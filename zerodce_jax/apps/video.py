"""Low-light video: decode -> enhance on the device -> encode, streaming.

``enhance_video`` runs three stages at once, joined by bounded queues so a
clip of any length uses the same memory:

  decode thread   demuxes the input; video packets are decoded to RGB frames
                  (8-bit, or 16-bit for sources of more than 8 bits), every
                  other packet (audio, subtitles) is passed on untouched;
  main thread     enhances batches of frames with one compiled function
                  (curve maps, temporal smoothing, curves, rounding);
  encode thread   encodes the enhanced frames (H.264 ``libx264`` by default,
                  VP9 for WebM) with the input's timestamps, and muxes the
                  passed-on packets as they came (stream copy, no re-encode).

Timestamps are the input's own (variable frame rates stay variable), the
time base and frame rate are copied, so frame count, duration and audio
sync are kept. The output is written under a temporary name and renamed
when complete.

**Temporal smoothing** (``smoothing`` = A in [0, 1)): the curve maps are an
exponential moving average over frames, ``m_t = A m_{t-1} + (1 - A) raw_t``,
reset to ``raw_t`` at a scene cut (the mean absolute difference of two
consecutive input thumbnails above ``cut_threshold``). For Zero-DCE++ the
maps live at 1/s of the size, so smoothing costs nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.apps import compile_cache, quality
from zerodce_jax.core import (curves, denoise, exposure, models, rendering,
                              resize)
from zerodce_jax.formats import atomic, image_io

__all__ = ["VideoError", "VideoReport", "enhance_video", "is_video",
           "VIDEO_EXTENSIONS", "make_frame_fn", "initial_state", "flicker", "scene_cuts",
           "write_clip"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
           ".webm": "webm", ".avi": "avi"}
DEFAULT_SMOOTHING = 0.0  # off: benchmarks/results/video.json
DEFAULT_CUT_THRESHOLD = 0.12


class VideoError(ValueError):
  """A video cannot be enhanced (the message names the file)."""


@dataclasses.dataclass
class VideoReport:
  """What ``enhance_video`` did."""
  frames: int = 0
  seconds: float = 0.0
  width: int = 0
  height: int = 0
  copied_packets: int = 0
  bit_depth: int = 8  # of the frames enhanced: 8, or 16 for deep sources
  error: str | None = None  # set when decoding stopped early

  @property
  def fps(self) -> float:
    return self.frames / self.seconds if self.seconds else 0.0


def is_video(path: str) -> bool:
  """Whether ``path`` is a video container, by content (MP4/MOV,
  Matroska/WebM or AVI signatures): a mislabelled file is still one."""
  try:
    with open(path, "rb") as f:
      head = f.read(16)
  except OSError:
    return False
  return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
          or head[:4] == b"\x1a\x45\xdf\xa3"
          or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def scene_cuts(thumbs: np.ndarray, prev: np.ndarray | None, *,
               threshold: float) -> tuple[np.ndarray, np.ndarray]:
  """Scene cuts of a batch from its thumbnails.

  A frame starts a scene when the mean absolute difference between its
  thumbnail and the previous one, relative to their mean brightness (plus
  0.01: low-light frames are dark, so absolute differences are small),
  exceeds ``threshold``.

  Args:
    thumbs: ``[N, h, w]`` float grey thumbnails in [0, 1].
    prev: the previous frame's thumbnail, or None at the start.
    threshold: the relative change that makes a cut.

  Returns:
    ``(cuts [N] bool, last thumbnail)``.
  """
  before = np.concatenate([thumbs[:1] if prev is None else prev[None],
                           thumbs[:-1]])
  change = np.abs(thumbs - before).mean(axis=(1, 2))
  level = 0.5 * (thumbs.mean(axis=(1, 2)) + before.mean(axis=(1, 2)))
  cuts = change / (level + 0.01) > threshold
  if prev is None:
    cuts[0] = True
  return cuts, thumbs[-1]


def _thumb(frame: np.ndarray, peak: float, grid: int = 24) -> np.ndarray:
  """A ``grid x grid`` grey thumbnail of block means in [0, 1] (averaging
  keeps per-frame noise from looking like a scene change)."""
  h, w = frame.shape[:2]
  bh, bw = max(1, h // grid), max(1, w // grid)
  gh, gw = h // bh, w // bw
  blocks = frame[:gh * bh, :gw * bw].reshape(gh, bh, gw, bw, -1)
  return blocks.mean(axis=(1, 3, 4), dtype=np.float32) / peak


def initial_state(model: models.DCENet, height: int, width: int
                  ) -> dict[str, jax.Array]:
  """What ``make_frame_fn`` carries from batch to batch before the first
  frame: the smoothed curve maps (at the network's resolution) and the
  smoothed per-channel strengths."""
  s = model.scale_factor if model.separable else 1
  shape = (resize.torch_downscaled_size(height, s) if s != 1 else height,
           resize.torch_downscaled_size(width, s) if s != 1 else width,
           model.map_channels)
  return {"maps": jnp.zeros(shape, jnp.float32),
          "strength": jnp.ones((3,), jnp.float32)}


# the controlled path reads a frame's exposure and colour on at most this
# many pixels, and its noise on a centre crop of at most this side (of the
# first frame of each batch: noise changes slowly, estimating it per frame
# would cost as much as the filters)
PLAN_PIXELS = 4096
NOISE_CROP = 512


def make_frame_fn(model: models.DCENet, *, peak: int,
                  controls: quality.Controls | None = None) -> Callable:
  """The compiled per-batch step of the video path.

  Returns ``fn(params, frames, state, cuts, alpha) -> (out, state)``:
  ``frames`` ``[N, H, W, 3]`` uint8/uint16, ``state`` what the frame before
  the batch left (``initial_state``), ``cuts`` ``[N]`` bool (restart the
  averages), ``alpha`` the smoothing; out ``[N, H, W, 3]`` of ``frames``'
  dtype, rounded as ``image_io.from_float``. With ``controls``
  (``apps.quality``) the per-channel strengths come from
  ``core.exposure.plan_strengths`` on a subsample of the batch's first
  frame, smoothed over frames like the maps; the noise is estimated on the
  same frame, and denoising runs the denoiser's 2x2-block stages
  (``fine=False``), all in the same call.
  """
  s = model.scale_factor if model.separable else 1
  dtype = jnp.uint8 if peak == 255 else jnp.uint16
  plain = controls is None or controls.plain
  n_iter = model.iterations

  def ema(alpha):
    def step(m_prev, inp):
      r, cut = inp
      m = jnp.where(cut, r, alpha * m_prev + (1 - alpha) * r)
      return m, m
    return step

  def fn(params, frames, state, cuts, alpha):
    x = frames.astype(jnp.float32) / peak
    _, h, w, _ = x.shape
    small = resize.torch_downscale(x, s) if s != 1 else x
    raw = model.apply({"params": params}, small.astype(model.dtype),
                      method=model.estimate).astype(jnp.float32)
    last, maps = jax.lax.scan(ema(alpha), state["maps"], (raw, cuts))
    if plain:
      if s != 1:
        maps = resize.resize_bilinear(maps, h, w, align_corners=True)
      y = curves.apply_curves(x, maps, iterations=n_iter)
      out = jnp.floor(jnp.clip(y, 0.0, 1.0) * peak + 0.5).astype(dtype)
      return out, {"maps": last, "strength": state["strength"]}
    out, strength = _controlled_frames(x, maps, state["strength"], cuts,
                                       alpha, s, n_iter, controls)
    out = jnp.floor(out * peak + 0.5).astype(dtype)
    return out, {"maps": last, "strength": strength}

  return jax.jit(fn)


def _controlled_frames(x, maps, strength, cuts, alpha, s: int, n_iter: int,
                       controls: quality.Controls):
  """The controlled render of a batch ``x`` ``[N, H, W, 3]`` with its maps
  (at ``1/s``): ``(out [N, H, W, 3] in [0, 1], last strengths [3])``. The
  curves stay channels-last (elementwise, as the plain path); only the
  denoiser works on planes, its 2x2-block stages alone (``fine=False``):
  the frame rate is what video needs first."""
  n, h, w, _ = x.shape
  small = maps
  if s != 1:
    maps = resize.resize_bilinear(maps, h, w, align_corners=True)
  # the noise, on the batch's first frame
  ch, cw = min(h, NOISE_CROP), min(w, NOISE_CROP)
  y0, x0 = (h - ch) // 2, (w - cw) // 2
  crop = x[0, y0:y0 + ch, x0:x0 + cw]
  noise = (jnp.stack(denoise.estimate_noise(crop, scale=1)
                     + denoise.estimate_noise(crop, scale=2))
           if controls.needs_noise else jnp.zeros(4, jnp.float32))
  # the strengths, on a subsample, smoothed over frames
  k = max(1, math.ceil(math.sqrt(h * w / PLAN_PIXELS)))
  rule, target, cap = controls.exposure_rule()
  if controls.exposure is None and not controls.colour:
    raw = jnp.full((n, 3), controls.strength, jnp.float32)
  else:
    def plan(xi, mi):
      return exposure.plan_strengths(
          xi, mi, iterations=n_iter, shoulder=controls.shoulder,
          noise=(noise[0], noise[1]),
          target=target if rule == "target" else None,
          strength=controls.strength if rule == "fixed" else None,
          colour_amount=controls.colour, max_strength=cap)[0]

    # read on the batch's first frame (a batch is a fraction of a second;
    # reading every frame would cost more than the curves themselves)
    if s != 1:  # the maps at the subsample only (not all of them first)
      hs, ws = small.shape[1:3]
      rows = [t[::k] for t in resize.interp_taps(hs, h, align_corners=True)]
      cols = [t[::k] for t in resize.interp_taps(ws, w, align_corners=True)]
      sub = resize.resize_axis(resize.resize_axis(small[0], rows, axis=0),
                               cols, axis=1)
    else:
      sub = maps[0, ::k, ::k]
    raw = jnp.broadcast_to(plan(x[0, ::k, ::k], sub), (n, 3))

  def step(m_prev, inp):
    r, cut = inp
    m = jnp.where(cut, r, alpha * m_prev + (1 - alpha) * r)
    return m, m

  last, per_frame = jax.lax.scan(step, strength, (raw, cuts))
  y, gain = curves.apply_at_strength(x, maps, per_frame[:, None, None, :],
                                     iterations=n_iter,
                                     shoulder=controls.shoulder)
  if controls.denoise:
    params = jnp.concatenate([
        per_frame, jnp.full((n, 1), controls.denoise, jnp.float32),
        jnp.broadcast_to(noise, (n, 4))], axis=-1)
    var, var_low = rendering.noise_variances(x, gain, params, axis=-1)
    align = 2 * denoise.SCALE
    hc, wc = -(-h // align) * align, -(-w // align) * align
    planes = jnp.pad(jnp.moveaxis(y, -1, -3),
                     ((0, 0), (0, 0), (0, hc - h), (0, wc - w)))
    pad = ((0, 0), (0, hc - h), (0, wc - w))
    mask = jnp.pad(jnp.ones((h, w), x.dtype), pad[1:])
    out = denoise.denoise_planes(planes, jnp.pad(var, pad),
                                 jnp.pad(var_low, pad),
                                 amount=params[:, 3], mask=mask, fine=False)
    y = jnp.moveaxis(out[..., :h, :w], -3, -1)
  return jnp.clip(y, 0.0, 1.0), last


def flicker(frames_mean: np.ndarray) -> float:
  """Mean absolute frame-to-frame change of mean brightness."""
  m = np.asarray(frames_mean, np.float64)
  return float(np.abs(np.diff(m)).mean()) if len(m) > 1 else 0.0


def write_clip(path: str, frames, *, fps: int = 30, codec: str = "libx264",
               pix_fmt: str | None = None, options: dict | None = None,
               container_format: str | None = None, pts=None,
               rotation: int = 0, audio_rate: int | None = None) -> None:
  """Writes frames as a video file (test and benchmark material).

  Args:
    path: output file.
    frames: iterable of ``[H, W, 3]`` uint8 (RGB) or uint16 (RGB48) arrays.
    fps: nominal frame rate; frame ``i`` gets pts ``i`` in ``1/fps`` unless
      ``pts`` gives them.
    codec, pix_fmt, options: the encoder (default yuv420p, or
      yuv420p10le for uint16 frames; ``bgr0`` for ffv1).
    container_format: FFmpeg muxer name (default: from the extension).
    rotation: display rotation in degrees stored in the stream.
    audio_rate: also write a stereo AAC tone at this sample rate, as long
      as the video.
  """
  import av  # noqa: PLC0415
  out = av.open(str(path), "w", format=container_format)
  vs = a_s = None
  apts = 0
  try:
    for i, img in enumerate(frames):
      deep = img.dtype == np.uint16
      if vs is None:
        vs = out.add_stream(codec, rate=fps)
        vs.height, vs.width = img.shape[:2]
        vs.pix_fmt = pix_fmt or ("bgr0" if codec == "ffv1" else
                                 "yuv420p10le" if deep else "yuv420p")
        if options:
          vs.options = dict(options)
        if rotation:
          vs.set_display_rotation(rotation)
        if audio_rate:
          a_s = out.add_stream("aac", rate=audio_rate, layout="stereo")
      fr = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep
                                      else "rgb24")
      fr.pts = i if pts is None else pts[i]
      for p in vs.encode(fr):
        out.mux(p)
      while a_s is not None and apts < (i + 1) * audio_rate / fps:
        tone = 0.2 * np.sin(np.arange(apts, apts + 1024, dtype=np.float32)
                            / 20)
        a = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp",
                                       layout="stereo")
        a.sample_rate, a.pts = audio_rate, apts
        apts += 1024
        for p in a_s.encode(a):
          out.mux(p)
    for st in (vs, a_s):
      if st is not None:
        for p in st.encode(None):
          out.mux(p)
  finally:
    out.close()


# What travels on the queues between the three stages, in input order.
@dataclasses.dataclass
class _Frame:
  """A decoded frame (``[H, W, 3]`` uint8/uint16) with its timestamp and
  display rotation; enhanced in place before it is encoded."""
  array: np.ndarray
  pts: int | None
  rotation: int = 0


@dataclasses.dataclass
class _Packet:
  """A packet of a copied stream (audio, subtitles), passed on as it is."""
  packet: Any


@dataclasses.dataclass
class _Stopped:
  """Decoding stopped: ``fatal`` (a stream this path cannot handle: nothing
  is written) or not (damaged data: what came before is usable)."""
  message: str
  fatal: bool


_END = object()  # the last item on a queue


def _decode(container, vstream, copied: set[int], out_q: queue.Queue,
            deep: bool, stop: threading.Event) -> None:
  """Demuxes everything; puts a ``_Frame`` per video frame, a ``_Packet``
  per packet of the streams in ``copied``, a ``_Stopped`` if it broke, and
  ``_END``."""
  fmt = "rgb48le" if deep else "rgb24"
  size = None
  n = 0
  try:
    for packet in container.demux():
      if stop.is_set():
        break
      if packet.stream.index != vstream.index:
        if packet.dts is not None and packet.stream.index in copied:
          out_q.put(_Packet(packet))
        continue
      for frame in packet.decode():
        if size is None:
          size = (frame.width, frame.height)
        elif (frame.width, frame.height) != size:
          raise VideoError(
              f"the frame size changes at frame {n} ({size[0]}x{size[1]} -> "
              f"{frame.width}x{frame.height}); not supported")
        out_q.put(_Frame(frame.to_ndarray(format=fmt), frame.pts,
                         getattr(frame, "rotation", 0) or 0))
        n += 1
  except VideoError as e:
    out_q.put(_Stopped(str(e), fatal=True))
  except Exception as e:  # noqa: BLE001 - FFmpeg's many errors: say where
    out_q.put(_Stopped(f"decoding stopped after frame {n} "
                       f"({type(e).__name__}: "
                       f"{' '.join(str(e).split())[:200]})", fatal=False))
  finally:
    out_q.put(_END)


def _encode(output, vout, time_base, stream_map: dict[int, Any],
            in_q: queue.Queue, errors: list[str]) -> None:
  """Encodes ``_Frame`` items (``pts`` in ``time_base``) and muxes
  ``_Packet`` items until ``_END``."""
  import av  # noqa: PLC0415
  ended = False
  try:
    while True:
      item = in_q.get()
      if item is _END:
        ended = True
        break
      if isinstance(item, _Frame):
        fmt = "rgb48le" if item.array.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(item.array, format=fmt)
        frame.pts = item.pts
        frame.time_base = time_base
        for p in vout.encode(frame):
          output.mux(p)
      else:
        packet = item.packet
        packet.stream = stream_map[packet.stream.index]
        output.mux(packet)
    for p in vout.encode(None):
      output.mux(p)
  except Exception as e:  # noqa: BLE001
    errors.append(f"encoding failed ({type(e).__name__}: "
                  f"{' '.join(str(e).split())[:200]})")
    while not ended and in_q.get() is not _END:  # let the producer finish
      pass


@dataclasses.dataclass
class _Source:
  """The input video stream as the pipeline needs it."""
  stream: Any
  width: int
  height: int
  deep: bool  # more than 8 bits per sample: enhanced as 16-bit frames

  @property
  def peak(self) -> int:
    return 65535 if self.deep else 255

  @property
  def rate(self):
    return self.stream.average_rate or self.stream.guessed_rate or 25


def _open_source(container, src: str, model: models.DCENet) -> _Source:
  """The first video stream, checked (codec, size, decompression bombs)."""
  if not container.streams.video:
    raise VideoError(f"{src}: no video stream")
  vin = container.streams.video[0]
  try:
    vin.thread_type = "AUTO"
    ctx = vin.codec_context
    width, height = ctx.width, ctx.height
    pix = ctx.pix_fmt or ""
  except Exception as e:  # noqa: BLE001
    raise VideoError(f"{src}: unsupported video stream ({e})") from None
  if not width or not height:
    raise VideoError(f"{src}: unsupported video codec "
                     f"{getattr(ctx, 'name', '?')} (no decoder)")
  from PIL import Image  # noqa: PLC0415
  try:  # a stranger's file may declare any size: refuse bombs up front
    image_io.check_pixels(width, height)
  except Image.DecompressionBombError as e:
    raise VideoError(f"{src}: frames of {e}") from None
  s = model.scale_factor if model.separable else 1
  if min(width, height) < s:
    raise VideoError(f"{src}: frames {width}x{height} are smaller than the "
                     f"scale factor {s}")
  deep = any(t in pix for t in ("10", "12", "16")) and "p" in pix
  return _Source(vin, width, height, deep)


def _open_output(container, source: _Source, tmp: str, dst: str, ext: str,
                 *, codec: str, crf: int, preset: str):
  """``(output, video stream, {input index: output stream})``: the encoder
  set up as the input (time base, rate, bit depth), and the audio/subtitle
  streams that the container can hold, copied."""
  import av  # noqa: PLC0415
  output = av.open(tmp, mode="w", format=_MUXERS[ext])
  vin = source.stream
  try:
    vout = output.add_stream(codec, rate=source.rate)
    vout.width, vout.height = source.width, source.height
    vout.time_base = vin.time_base
    vout.codec_context.time_base = vin.time_base  # keeps VFR timestamps
    if codec == "libx264":
      vout.pix_fmt = "yuv420p10le" if source.deep else "yuv420p"
      vout.options = {"crf": str(crf), "preset": preset}
    elif codec == "libvpx-vp9":
      vout.pix_fmt = "yuv420p10le" if source.deep else "yuv420p"
      vout.options = {"crf": str(crf), "b": "0", "row-mt": "1",
                      "deadline": "good", "cpu-used": "4"}
    elif codec == "ffv1":
      vout.pix_fmt = "bgr0" if not source.deep else "gbrp16le"
    stream_map = {}
    for st in container.streams:
      if st.index == vin.index or st.type not in ("audio", "subtitle"):
        continue
      try:
        stream_map[st.index] = output.add_stream_from_template(st)
      except Exception:  # noqa: BLE001 - a stream this container can't hold
        continue
  except Exception as e:  # noqa: BLE001
    output.close()
    raise VideoError(f"{dst}: cannot set up the encoder ({e})") from None
  return output, vout, stream_map


class _Enhancer:
  """The main thread's stage: enhances the frames of a run of items
  (frames and packets in input order) in one compiled call, carrying the
  smoothed maps and the last thumbnail from batch to batch."""

  def __init__(self, model, params, source: _Source, *, smoothing: float,
               cut_threshold: float, batch_size: int, frame_fn, controls):
    self.frame_fn = frame_fn or make_frame_fn(model, peak=source.peak,
                                              controls=controls)
    self.params = jax.device_put(params)
    self.peak, self.smoothing = source.peak, smoothing
    self.cut_threshold, self.batch_size = cut_threshold, batch_size
    self.state = initial_state(model, source.height, source.width)
    self.prev_thumb = None

  def __call__(self, items: list) -> int:
    """Enhances the ``_Frame`` items of ``items`` in place; returns their
    count (at most ``batch_size``)."""
    frames = [it for it in items if isinstance(it, _Frame)]
    if not frames:
      return 0
    n = len(frames)
    arrs = [f.array for f in frames]
    if self.smoothing:  # cuts only restart the average: none without one
      thumbs = np.stack([_thumb(a, self.peak) for a in arrs])
      cuts, self.prev_thumb = scene_cuts(thumbs, self.prev_thumb,
                                         threshold=self.cut_threshold)
    else:
      cuts = np.ones(n, bool)
    pad = self.batch_size - n
    batch = np.stack(arrs + [arrs[-1]] * pad)
    cut_arr = np.concatenate([cuts, np.zeros(pad, bool)])
    out, state = self.frame_fn(self.params, batch, self.state, cut_arr,
                               jnp.float32(self.smoothing))
    out = np.asarray(out)
    if not pad:
      self.state = state
    for f, y in zip(frames, out):
      f.array = y
    return n


def _ended_early(container, vin, last_pts, frames: int, rate) -> str | None:
  """A message if the stream stopped well before its declared end (a
  truncated file whose demuxer just reports the end), else None."""
  if last_pts is None or not vin.time_base:
    return None
  start = vin.start_time or 0
  last = float((last_pts - start) * vin.time_base)
  if vin.duration:
    total = float(vin.duration * vin.time_base)
  elif container.duration:
    total = container.duration / 1e6 - float(start * vin.time_base)
  else:
    return None
  step = 1.0 / float(rate) if rate else 0.04
  if vin.frames and frames < vin.frames:
    return (f"decoding stopped after frame {frames} of {vin.frames} (the "
            "file is truncated or damaged)")
  if last + 2.5 * step < total:
    return (f"decoding stopped after frame {frames}, at {last:.2f} s of "
            f"{total:.2f} s (the file is truncated or damaged)")
  return None


def enhance_video(src: str, dst: str, model: models.DCENet, params: Any, *,
                  smoothing: float = DEFAULT_SMOOTHING,
                  cut_threshold: float = DEFAULT_CUT_THRESHOLD,
                  batch_size: int = 8, crf: int = 18, preset: str = "medium",
                  codec: str | None = None, progress: bool = True,
                  frame_fn: Callable | None = None,
                  controls: quality.Controls | None = None) -> VideoReport:
  """Enhances a video file into ``dst`` (see the module doc).

  Args:
    src: input video (any container and codec FFmpeg decodes).
    dst: output path; its extension picks the container.
    model: a ``DCENet`` (Zero-DCE++ uses its ``scale_factor``).
    params: its params.
    smoothing: temporal smoothing A in [0, 1); 0 is off.
    cut_threshold: scene-cut threshold on thumbnail differences.
    batch_size: frames per compiled call.
    crf, preset: libx264 quality and speed (VP9 for WebM uses crf too).
    codec: video encoder (default: libx264, or libvpx-vp9 for WebM);
      ``ffv1`` is lossless (Matroska/AVI).
    progress: a tqdm bar with frames and frames/s.
    frame_fn: a ``make_frame_fn`` result to reuse across videos (made with
      the same ``controls``).
    controls: strength, exposure, highlight protection
      (``apps.quality.Controls``); None: the plain path.

  Returns:
    A ``VideoReport``; ``report.error`` says where decoding stopped if the
    input was damaged (what was decoded before is written).

  Raises:
    VideoError: no video stream, an unreadable or unsupported file, an
      unknown output container, a frame size that changes, or an encoder
      failure; nothing is left at ``dst``.
  """
  compile_cache.enable()
  import av  # noqa: PLC0415
  if not 0 <= smoothing < 1:
    raise VideoError(f"{src}: temporal smoothing must be in [0, 1), got "
                     f"{smoothing}")
  ext = os.path.splitext(dst)[1].lower()
  if ext not in _MUXERS:
    raise VideoError(f"{dst}: unknown video container (use one of "
                     f"{', '.join(VIDEO_EXTENSIONS)})")
  try:
    container = av.open(src)
  except Exception as e:  # noqa: BLE001
    raise VideoError(f"{src}: not a readable video ("
                     f"{' '.join(str(e).split())[:200]})") from None
  try:
    with atomic.atomic_path(dst, suffix=ext) as tmp:
      return _enhance_stream(
          container, src, dst, tmp, ext, model, params, smoothing=smoothing,
          cut_threshold=cut_threshold, batch_size=batch_size, crf=crf,
          preset=preset, codec=codec, progress=progress, frame_fn=frame_fn,
          controls=controls)
  finally:
    container.close()


def _enhance_stream(container, src, dst, tmp, ext, model, params, *,
                    smoothing, cut_threshold, batch_size, crf, preset, codec,
                    progress, frame_fn, controls) -> VideoReport:
  """Runs the three stages from the open ``container`` into ``tmp``."""
  source = _open_source(container, src, model)
  codec = codec or ("libvpx-vp9" if ext == ".webm" else "libx264")
  output, vout, stream_map = _open_output(container, source, tmp, dst, ext,
                                          codec=codec, crf=crf,
                                          preset=preset)
  report = VideoReport(width=source.width, height=source.height,
                       bit_depth=16 if source.deep else 8)
  enhance_batch = _Enhancer(model, params, source, smoothing=smoothing,
                            cut_threshold=cut_threshold,
                            batch_size=batch_size, frame_fn=frame_fn,
                            controls=controls)
  stop = threading.Event()
  decoded: queue.Queue = queue.Queue(maxsize=4 * batch_size + 16)
  to_encode: queue.Queue = queue.Queue(maxsize=4 * batch_size + 16)
  enc_errors: list[str] = []
  vin = source.stream
  dec = threading.Thread(target=_decode, args=(container, vin, set(stream_map),
                                               decoded, source.deep, stop),
                         daemon=True)
  enc = threading.Thread(target=_encode, args=(output, vout, vin.time_base,
                                               stream_map, to_encode,
                                               enc_errors), daemon=True)
  bar = None
  if progress:
    from tqdm import tqdm  # noqa: PLC0415
    bar = tqdm(total=vin.frames or None, unit="frame", desc=os.path.basename(
        src), leave=False)
  t0 = time.perf_counter()
  dec.start()
  enc.start()
  last_pts = None
  fatal = None
  pending: list = []  # frames and packets, in input order
  pending_frames = 0

  def flush(items):
    nonlocal last_pts
    first = next((it for it in items if isinstance(it, _Frame)), None)
    if first is not None and report.frames == 0 and first.rotation:
      # the display rotation (phone videos), before the header is written
      vout.set_display_rotation(first.rotation)
    n = enhance_batch(items)
    for it in items:
      if isinstance(it, _Frame):
        last_pts = it.pts
      to_encode.put(it)
    report.frames += n
    if bar and n:
      bar.update(n)

  try:
    while True:
      item = decoded.get()
      if item is _END:
        break
      if isinstance(item, _Stopped):
        if item.fatal:
          fatal = item.message
          break
        report.error = item.message
        continue
      if isinstance(item, _Packet):
        report.copied_packets += 1
      else:
        pending_frames += 1
      pending.append(item)
      if pending_frames == batch_size:
        flush(pending)
        pending, pending_frames = [], 0
      if enc_errors:
        break
    if pending and fatal is None:
      flush(pending)
  finally:
    stop.set()
    while dec.is_alive():  # drain so the decoder can finish
      try:
        decoded.get(timeout=0.1)
      except queue.Empty:
        pass
    to_encode.put(_END)
    enc.join()
    if bar:
      bar.close()
    output.close()
  report.seconds = time.perf_counter() - t0
  if fatal:
    raise VideoError(f"{src}: {fatal}")
  if report.error is None and report.frames:
    report.error = _ended_early(container, vin, last_pts, report.frames,
                                source.rate)
  if enc_errors:
    raise VideoError(f"{src}: {enc_errors[0]}")
  if report.frames == 0:
    raise VideoError(f"{src}: no frame could be decoded"
                     + (f" ({report.error})" if report.error else ""))
  return report
