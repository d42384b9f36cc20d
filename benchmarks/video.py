"""Video: frames/s end to end and per stage; memory over a long clip; flicker.

    python -m benchmarks.video [--weights zerodce-pp-default] [--quick]

Clips are generated here (libx264, crf 18, with an AAC tone): a slow pan and
zoom over a darkened photo of ../shared/test_images (a synthetic scene when
absent) with fresh noise in every frame, at 640x360, 1280x720 and 1920x1080.
For each size: decode alone, enhance alone (the compiled frame step on
decoded frames), encode alone (libx264, the CLI's defaults: crf 18, preset
medium) and `enhance_video` end to end, in frames/s, so the bound is named.
Memory: resident set size sampled during a long 640x360 clip. Flicker: the
mean absolute frame-to-frame change of mean brightness, input and output,
for several smoothing strengths, with the PSNR between smoothed and
unsmoothed outputs (the cost of smoothing), on the photo clip and on a
synthetic clip with fresh noise in every frame, and on one whose exposure
also jumps by +-10%. Writes OUT/video.json
and OUT/video.png.
"""

import json
import os
import resource
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks import _common


def _photo(shared):
  from PIL import Image  # noqa: PLC0415
  path = os.path.join(shared, "test_images", "DICM", "01.jpg")
  if os.path.isfile(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
  yy, xx = np.mgrid[0:480, 0:640] / 640.0
  return np.stack([0.5 + 0.4 * np.sin(6 * xx), 0.4 + 0.3 * np.cos(5 * yy),
                   0.3 + 0.2 * np.sin(4 * (xx + yy))], -1).astype(np.float32)


def pan_zoom_frames(photo, n, width, height, *, seed=0, noise=0.02,
                    gain=0.35):
  """``n`` uint8 frames: a window drifting and zooming slowly over
  ``photo``, darkened by ``gain``, with Gaussian noise redrawn per frame."""
  from PIL import Image  # noqa: PLC0415
  rng = np.random.default_rng(seed)
  ph, pw = photo.shape[:2]
  src = Image.fromarray((photo * 255).astype(np.uint8))
  for i in range(n):
    t = i / max(n - 1, 1)
    zoom = 0.85 - 0.15 * t
    cw, ch = pw * zoom, ph * zoom
    x0, y0 = (pw - cw) * t, (ph - ch) * (0.5 + 0.3 * np.sin(3 * t))
    im = src.resize((width, height), Image.Resampling.BILINEAR,
                    box=(x0, y0, x0 + cw, y0 + ch))
    x = np.asarray(im, np.float32) / 255 * gain
    x = x + rng.normal(0, noise, x.shape)
    yield np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def flicker_frames(n, width, height, *, exposure=0.0, noise=0.03, seed=1):
  """A still dark scene with fresh noise in every frame and, if
  ``exposure`` > 0, an exposure that jumps by up to +-``exposure``."""
  rng = np.random.default_rng(seed)
  base = rng.random((height // 8, width // 8, 3)).repeat(8, 0).repeat(8, 1)
  base = 0.05 + 0.2 * base
  for _ in range(n):
    gain = rng.uniform(1 - exposure, 1 + exposure) if exposure else 1.0
    x = base * gain + rng.normal(0, noise, base.shape)
    yield np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def write_clip(path, frames, *, fps=30, audio=True):
  from zerodce_jax.apps import video  # noqa: PLC0415
  video.write_clip(path, frames, fps=fps,
                   options={"crf": "18", "preset": "fast"},
                   audio_rate=44100 if audio else None)


def decoded(path):
  import av  # noqa: PLC0415
  with av.open(path) as c:
    c.streams.video[0].thread_type = "AUTO"
    return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def stage_rates(path, model, params, *, batch):
  """frames/s of decode, enhance, encode and end to end for one clip."""
  import av  # noqa: PLC0415
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from zerodce_jax.apps import video  # noqa: PLC0415
  t = time.perf_counter()
  frames = decoded(path)
  decode_fps = len(frames) / (time.perf_counter() - t)
  n = len(frames)
  fn = video.make_frame_fn(model, peak=255)
  h, w = frames[0].shape[:2]
  prev = video.initial_state(model, h, w)
  cuts = np.zeros(batch, bool)
  batches = [np.stack(frames[i:i + batch]) for i in range(0, n - batch + 1,
                                                          batch)]
  jax.block_until_ready(fn(params, batches[0], prev, cuts, jnp.float32(0.6)))
  t = time.perf_counter()
  outs = []
  for b in batches:
    y, prev = fn(params, b, prev, cuts, jnp.float32(0.6))
    outs.append(np.asarray(y))
  enhance_fps = len(batches) * batch / (time.perf_counter() - t)
  enhanced = [f for b in outs for f in b]
  with tempfile.TemporaryDirectory() as d:
    out = av.open(os.path.join(d, "e.mp4"), "w")
    vs = out.add_stream("libx264", rate=30)
    vs.height, vs.width = h, w
    vs.pix_fmt, vs.options = "yuv420p", {"crf": "18", "preset": "medium"}
    t = time.perf_counter()
    for i, img in enumerate(enhanced):
      fr = av.VideoFrame.from_ndarray(img, format="rgb24")
      fr.pts = i
      for p in vs.encode(fr):
        out.mux(p)
    for p in vs.encode(None):
      out.mux(p)
    out.close()
    encode_fps = len(enhanced) / (time.perf_counter() - t)
    rep = video.enhance_video(path, os.path.join(d, "full.mp4"), model,
                              params, batch_size=batch, progress=False,
                              frame_fn=fn)
  return {"frames": n, "width": w, "height": h, "decode_fps": decode_fps,
          "enhance_fps": enhance_fps, "encode_fps": encode_fps,
          "end_to_end_fps": rep.fps}


def _rss_mb():
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def memory_profile(path, model, params, *, batch):
  """RSS every 0.2 s while a long clip is enhanced (MB)."""
  from zerodce_jax.apps import video  # noqa: PLC0415
  samples, done = [], threading.Event()

  def watch():
    while not done.is_set():
      samples.append((time.perf_counter(), _rss_mb()))
      time.sleep(0.2)

  th = threading.Thread(target=watch, daemon=True)
  with tempfile.TemporaryDirectory() as d:
    th.start()
    t0 = time.perf_counter()
    rep = video.enhance_video(path, os.path.join(d, "o.mp4"), model, params,
                              batch_size=batch, progress=False)
    done.set()
    th.join()
  rss = [r for _, r in samples]
  q = len(rss) // 4
  return {"frames": rep.frames, "seconds": time.perf_counter() - t0,
          "rss_mb_first_quarter_max": max(rss[:max(q, 1)]),
          "rss_mb_last_quarter_max": max(rss[-max(q, 1):]),
          "rss_mb_max": max(rss),
          "ru_maxrss_mb": resource.getrusage(
              resource.RUSAGE_SELF).ru_maxrss / 1024}


def flicker_study(path, model, params, alphas, *, batch):
  """Flicker in/out and the PSNR cost of each smoothing strength."""
  from zerodce_jax.apps import video  # noqa: PLC0415
  src = decoded(path)
  f_in = video.flicker([f.mean() / 255 for f in src])
  rows, ref = [], None
  with tempfile.TemporaryDirectory() as d:
    for a in alphas:
      out = os.path.join(d, f"a{a}.mkv")
      video.enhance_video(path, out, model, params, smoothing=a,
                          codec="ffv1", batch_size=batch, progress=False)
      frames = np.stack(decoded(out)).astype(np.float64) / 255
      if ref is None:
        ref = frames
      mse = float(np.mean((frames - ref) ** 2))
      rows.append({"smoothing": a, "flicker_in": f_in,
                   "flicker_out": video.flicker(frames.mean(axis=(1, 2, 3))),
                   "psnr_vs_unsmoothed_db": (99.0 if mse == 0 else
                                             10 * np.log10(1 / mse))})
  return rows


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--weights", default="zerodce-pp-default")
  ap.add_argument("--scale-factor", type=int, default=12)
  ap.add_argument("--parts", default="speed,memory,flicker",
                  help="which parts to run (comma-separated)")
  ap.add_argument("--name", default="video",
                  help="OUT/NAME.json and .png (default video)")
  args = ap.parse_args(argv)
  parts = set(args.parts.split(","))
  import jax  # noqa: PLC0415
  from benchmarks import harness as bench  # noqa: PLC0415
  from zerodce_jax.core import models  # noqa: PLC0415
  from zerodce_jax.formats import weights  # noqa: PLC0415
  params, arch, source = weights.load_weights(args.weights)
  params = jax.device_put(params)
  model = models.model_from_arch(arch, scale_factor=args.scale_factor)
  photo = _photo(args.shared)
  quick = args.quick
  sizes = [(96, 64)] if quick else [(640, 360), (1280, 720), (1920, 1080)]
  n = 16 if quick else 150
  batch = 8
  doc = {"machine": bench.machine_info(), "weights": args.weights,
         "source": source, "scale_factor": model.scale_factor,
         "stages": [], "memory": None, "flicker": {}}
  with tempfile.TemporaryDirectory() as d:
    for w, h in (sizes if "speed" in parts else []):
      path = os.path.join(d, f"{w}x{h}.mp4")
      write_clip(path, pan_zoom_frames(photo, n, w, h))
      r = stage_rates(path, model, params, batch=batch)
      doc["stages"].append(r)
      print(f"{w}x{h}: decode {r['decode_fps']:.0f}, enhance "
            f"{r['enhance_fps']:.0f}, encode {r['encode_fps']:.0f}, end to "
            f"end {r['end_to_end_fps']:.1f} frames/s", flush=True)
    long_n = 40 if quick else 3000
    if "memory" in parts:
      path = os.path.join(d, "long.mp4")
      write_clip(path, pan_zoom_frames(photo, long_n, *sizes[0]))
      doc["memory"] = memory_profile(path, model, params, batch=batch)
      print(f"memory over {long_n} frames: {doc['memory']}", flush=True)
    alphas = [0.0, 0.6] if quick else [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    fw, fh = sizes[0]
    for name, frames in (("photo pan/zoom + noise",
                          pan_zoom_frames(photo, 60, fw, fh, seed=3,
                                          noise=0.03)),
                         ("synthetic: noise flicker",
                          flicker_frames(60, fw, fh)),
                         ("synthetic: exposure +-10% and noise",
                          flicker_frames(60, fw, fh, exposure=0.1))):
      if "flicker" not in parts:
        break
      path = os.path.join(d, "f.mkv")
      write_clip(path, frames, audio=False)
      doc["flicker"][name] = flicker_study(path, model, params, alphas,
                                           batch=batch)
      for row in doc["flicker"][name]:
        print(f"{name}: A={row['smoothing']}: flicker in "
              f"{row['flicker_in']:.5f} out {row['flicker_out']:.5f}, PSNR "
              f"vs unsmoothed {row['psnr_vs_unsmoothed_db']:.1f} dB",
              flush=True)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
    json.dump(doc, f, indent=2)
  if doc["stages"]:
    _plot(doc, os.path.join(args.out, f"{args.name}.png"))
  return 0


def _plot(doc, path):
  try:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
  except ImportError:
    return
  stages = ["decode_fps", "enhance_fps", "encode_fps", "end_to_end_fps"]
  fig, ax = plt.subplots(figsize=(7, 4))
  xs = np.arange(len(doc["stages"]))
  for k, s in enumerate(stages):
    ax.bar(xs + (k - 1.5) * 0.2, [r[s] for r in doc["stages"]], 0.2,
           label=s.replace("_fps", "").replace("_", " "))
  ax.axhline(30, color="grey", linestyle=":", label="30 frames/s")
  ax.set_xticks(xs, [f"{r['width']}x{r['height']}" for r in doc["stages"]])
  ax.set_yscale("log")
  ax.set_ylabel("frames/s (log)")
  m = doc["machine"]
  ax.set_title(f"zerodce enhance on video ({doc['weights']}, s="
               f"{doc['scale_factor']})\n{m['cpu']}, {m['cores']} cores, "
               f"{m['date']}", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


if __name__ == "__main__":
  sys.exit(main())
