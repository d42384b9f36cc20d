"""What a user waits for: the whole `zerodce enhance` process, cold and warm,
beside the official test loops, in one session.

    python -m benchmarks.cli_latency [--sizes 0.3,2,12] [--repeats 2]
        [--video-frames 150] [--quick]

Photos: a real low-light test photo (../shared/test_images/DICM/32.jpg,
upscaled with Lanczos and saved as JPEG quality 92 for the larger sizes; a
synthetic dark scene without ../shared), one JPEG per process, from the
command to the file written:

* ours: the default (bundled Zero-DCE with its default controls), `--plain`
  (the paper), the default at map scale 1 (every pixel through the
  network), the bundled Zero-DCE++ with its defaults and `--plain`;
* the official test loops (``benchmarks/official_loop.py``: torch import,
  the official snapshot, enhance, save; denormals flushed, every core),
  Zero-DCE and Zero-DCE++, when ``--shared`` has the weights and torch is
  installed.

*Cold* is the first run with empty caches (a fresh ``ZERODCE_CACHE_DIR``:
no compiled programs, no memory probe), *warm* the median of ``--repeats``
runs after it. A 24 MP photo's peak resident memory with the defaults is
read from the kernel (``os.wait4``). Video: a generated 720p clip
(``benchmarks.video.pan_zoom_frames``, libx264) through the whole command,
default and `--plain`, presets medium and veryfast, in frames per second.

Writes OUT/cli_latency.json; ``report.py`` makes the docs' table and the
README's figure from it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks import _common

OURS = (  # (name, extra `zerodce enhance` arguments)
    ("default", []),
    ("plain", ["--plain"]),
    ("default, map scale 1", ["--map-scale", "1"]),
    ("Zero-DCE++ default", ["--weights", "zerodce-pp-default"]),
    ("Zero-DCE++ plain", ["--weights", "zerodce-pp-default", "--plain"]),
)
OFFICIAL = (("official Zero-DCE", "zerodce", "zerodce_official_epoch99.pth"),
            ("official Zero-DCE++", "zerodce++",
             "zerodce_pp_official_epoch99.pth"))


def _photo(shared: str, path: str, megapixels: float) -> tuple[int, int]:
  src = os.path.join(shared, "test_images", "DICM", "32.jpg")
  if os.path.isfile(src):
    im = Image.open(src).convert("RGB")
  else:
    rng = np.random.default_rng(0)
    im = Image.fromarray((rng.random((6, 8, 3)) * 60).astype(np.uint8))
  w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
  h = int(round(w * 3 / 4))
  if abs(im.width * im.height - w * h) > 0.05 * w * h:
    im = im.resize((w, h), Image.Resampling.LANCZOS)
  im.save(path, quality=92)
  return im.width, im.height


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
  """Wall seconds and peak RSS bytes of one process."""
  t = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env)
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - t
  err = proc.stderr.read().decode(errors="replace")
  proc.stdout.read()
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
  return wall, usage.ru_maxrss * 1024


def _env(cache: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT",
                              "ZERODCE_NO_CACHE"))}
  env["ZERODCE_CACHE_DIR"] = cache
  return env


def _cold_warm(cmd, tmp, repeats, log, label):
  cache = tempfile.mkdtemp(dir=tmp, prefix="cache-")
  env = _env(cache)
  cold, rss = _timed(cmd, env)
  warm = [_timed(cmd, env)[0] for _ in range(repeats)]
  rec = {"cold_s": cold, "warm_s": statistics.median(warm),
         "warm_runs": warm, "peak_rss_bytes": rss}
  log(f"{label}: cold {cold:.2f} s, warm {rec['warm_s']:.2f} s")
  return rec


def photos(args, tmp, log):
  rows = []
  have_torch = True
  try:
    import torch  # noqa: F401
  except ImportError:
    have_torch = False
    log("torch is not installed: no official loops")
  for mp in args.sizes:
    src = os.path.join(tmp, f"photo_{mp:g}mp.jpg")
    w, h = _photo(args.shared, src, mp)
    out = os.path.join(tmp, "out")
    reps = 1 if mp >= 10 else args.repeats
    for name, extra in OURS:
      if args.quick and name not in ("default", "plain"):
        continue
      cmd = [sys.executable, "-m", "zerodce_jax", "enhance", src, "-o", out,
             "--no-progress"] + extra
      rec = _cold_warm(cmd, tmp, reps, log, f"{w}x{h} {name}")
      rows.append({"case": name, "width": w, "height": h,
                   "megapixels": w * h / 1e6, **rec})
    for name, arch, f in OFFICIAL:
      weights = os.path.join(args.shared, "weights", f)
      if not (have_torch and os.path.isfile(weights)) or args.quick:
        continue
      cmd = [sys.executable, os.path.join(_common.ROOT, "benchmarks",
                                          "official_loop.py"),
             "--arch", arch, "--weights", weights, src, "-o", out]
      # the official loop has no cache: every run is the same, "warm" is
      # its second
      rec = _cold_warm(cmd, tmp, reps, log, f"{w}x{h} {name}")
      rows.append({"case": name, "width": w, "height": h,
                   "megapixels": w * h / 1e6, **rec})
  return rows


def memory(args, tmp, log):
  src = os.path.join(tmp, "photo_24mp.jpg")
  w, h = _photo(args.shared, src, 24)
  cmd = [sys.executable, "-m", "zerodce_jax", "enhance", src, "-o",
         os.path.join(tmp, "out"), "--no-progress"]
  cache = tempfile.mkdtemp(dir=tmp, prefix="cache-")
  _timed(cmd, _env(cache))  # compile first: the warm run's memory
  wall, rss = _timed(cmd, _env(cache))
  log(f"{w}x{h} default: {wall:.1f} s, peak RSS {rss / 2**30:.2f} GiB")
  return {"width": w, "height": h, "wall_s": wall, "peak_rss_bytes": rss}


def video(args, tmp, log):
  from benchmarks.video import _photo as video_photo, pan_zoom_frames
  from zerodce_jax.apps import video as video_lib
  src = os.path.join(tmp, "clip720.mp4")
  frames = list(pan_zoom_frames(video_photo(args.shared), args.video_frames,
                                1280, 720))
  video_lib.write_clip(src, frames, fps=30)
  rows = []
  for preset in ("medium", "veryfast"):
    for name, extra in (("default", []), ("plain", ["--plain"])):
      cmd = [sys.executable, "-m", "zerodce_jax", "enhance", src, "-o",
             os.path.join(tmp, "vout"), "--no-progress", "--preset",
             preset] + extra
      rec = _cold_warm(cmd, tmp, 1, log, f"720p {name} {preset}")
      rows.append({"case": name, "preset": preset, "width": 1280,
                   "height": 720, "frames": args.video_frames, **rec,
                   "fps_warm": args.video_frames / rec["warm_s"],
                   "fps_cold": args.video_frames / rec["cold_s"]})
  return rows


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--sizes", default="0.3,2,12",
                  help="photo sizes in megapixels (default 0.3,2,12)")
  ap.add_argument("--video-frames", type=int, default=150)
  ap.set_defaults(repeats=2)
  args = ap.parse_args(argv)
  args.sizes = [float(s) for s in args.sizes.split(",")]
  if args.quick:
    args.sizes, args.video_frames, args.repeats = [0.1], 8, 1
  from benchmarks import harness
  log = lambda m: print(m, flush=True)
  doc = {"machine": harness.machine_info(),
         "settings": {"sizes": args.sizes, "repeats": args.repeats,
                      "video_frames": args.video_frames,
                      "load_before": os.getloadavg()[0]}}
  with tempfile.TemporaryDirectory() as tmp:
    doc["photos"] = photos(args, tmp, log)
    if not args.quick:
      doc["memory_24mp"] = memory(args, tmp, log)
    try:
      import av  # noqa: F401
      doc["video"] = video(args, tmp, log)
    except ImportError:
      log("PyAV is not installed: no video")
  doc["settings"]["load_after"] = os.getloadavg()[0]
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "cli_latency.json")
  with open(path, "w") as f:
    json.dump(doc, f, indent=1)
  from benchmarks import report
  print(report.cli_latency_table(doc))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
