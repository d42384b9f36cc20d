"""`zerodce enhance` end to end on big photos: wall time and peak memory.

    python -m benchmarks.enhance_files [--sizes 1,12,24,50] [--quick]
        [--extra="--max-memory none --batch 8"]

For each size (megapixels, 3:2 like a camera), writes a synthetic low-light
JPEG (smooth scene + sensor-like noise, made from a seed), runs the real
command in a fresh process with its defaults (plus --extra) and reads that
process's peak resident memory from the kernel (os.wait4). Reports seconds,
seconds per megapixel, peak RSS and RSS per megapixel. Writes
OUT/enhance_files.json.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks import _common


def _photo(path, megapixels, seed=0):
  w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
  h = int(round(w / 1.5))
  rng = np.random.default_rng(seed)
  coarse = Image.fromarray((rng.random((6, 9, 3)) * 255).astype(np.uint8))
  scene = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC),
                     np.float32) / 255
  noise = rng.standard_normal((h, w, 1), dtype=np.float32) * 0.02
  dark = np.clip(scene * 0.25 + noise, 0, 1)
  Image.fromarray((dark * 255).astype(np.uint8)).save(path, quality=92)
  return w, h


def run_one(src, out_dir, extra):
  cmd = [sys.executable, "-m", "zerodce_jax", "enhance", src, "-o", out_dir,
         "--no-progress"] + extra
  t = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - t
  out, err = proc.stdout.read(), proc.stderr.read()
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode()[-2000:]}")
  del out
  return wall, usage.ru_maxrss * 1024


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--sizes", default="1,12,24,50",
                  help="megapixels, comma-separated (default 1,12,24,50)")
  ap.add_argument("--extra", default="",
                  help="more `zerodce enhance` options, one string")
  args = ap.parse_args(argv)
  sizes = [float(s) for s in args.sizes.split(",")]
  if args.quick:
    sizes = [0.3]
  extra = shlex.split(args.extra)
  from benchmarks import harness as bench  # noqa: PLC0415
  records = []
  with tempfile.TemporaryDirectory() as tmp:
    for mp in sizes:
      src = os.path.join(tmp, f"photo_{mp:g}mp.jpg")
      w, h = _photo(src, mp)
      wall, rss = run_one(src, os.path.join(tmp, "out"), extra)
      real_mp = w * h / 1e6
      rec = {"task": "enhance_files", "width": w, "height": h,
             "megapixels": real_mp, "wall_s": wall,
             "s_per_megapixel": wall / real_mp, "peak_rss_bytes": rss,
             "rss_mb_per_megapixel": rss / 2**20 / real_mp,
             "options": args.extra or "defaults"}
      records.append(rec)
      print(f"{w}x{h} ({real_mp:.1f} MP): {wall:.1f} s "
            f"({rec['s_per_megapixel']:.2f} s/MP), peak RSS "
            f"{rss / 2**30:.2f} GiB ({rec['rss_mb_per_megapixel']:.0f} "
            f"MiB/MP)", flush=True)
  os.makedirs(args.out, exist_ok=True)
  name = "enhance_files" + ("_" + "_".join(
      x.strip("-").replace(" ", "") for x in extra) if extra else "")
  with open(os.path.join(args.out, f"{name}.json"), "w") as f:
    json.dump({"machine": bench.machine_info(), "records": records}, f,
              indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
