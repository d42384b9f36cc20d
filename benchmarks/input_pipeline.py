"""Input pipeline throughput: how many training images per second the data
path delivers, to compare with the train step's own images/s.

    python -m benchmarks.input_pipeline [--images ../shared/train_images] [--quick]

Stages: decode + Lanczos resize of JPEG files (what a run does once, at start:
the resized images are then held in memory), batch assembly on the host
(index, uint8 -> float32, reshape, optional flips/exposure mixing) with and
without the background prefetch thread, and the device-side pipeline
(`device_batch`, jitted, on JAX's default device). Writes
OUT/input_pipeline.json.
"""

import json
import os
import sys
import time

from benchmarks import _common

from benchmarks import harness as bench
from zerodce_jax.formats import image_io
from zerodce_jax.training import input_pipeline as ip


def _device_stage(images, size, steps):
  """The device-side pipeline (``--config.data.pipeline=device``): gather,
  crop (7/8 of the side), flip and exposure mixing inside one jitted
  function, on JAX's default device, batch 8 as in training."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  resident = jax.device_put(images)
  fn = jax.jit(lambda imgs, idx, step: ip.device_batch(
      imgs, idx, seed=0, step=step, crop_size=size * 7 // 8,
      random_flip=True, exposure_mixing=True))
  idx = ip.index_batches(len(images), batch_size=8, seed=0)
  fn(resident, jnp.asarray(next(idx)[0]), 0).block_until_ready()
  t = time.perf_counter()
  for s in range(steps):
    out = fn(resident, jnp.asarray(next(idx)[0]), s)
  out.block_until_ready()
  dt = time.perf_counter() - t
  return {"stage": f"device_batch: gather + crop + flip + exposure mixing "
                   f"(jit, {jax.devices()[0].platform})", "size": size,
          "images_per_s": 8 * steps / dt}


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--images", default=os.path.join(_common.shared_dir(),
                                                   "train_images"))
  ap.add_argument("--count", type=int, default=200,
                  help="files to decode per size (default 200)")
  args = ap.parse_args(argv)
  sizes, count, steps = (256, 512), args.count, 50
  if args.quick:
    sizes, count, steps = (32,), 8, 5
  if os.path.isdir(args.images):
    paths = image_io.list_images(args.images)[:count]
  else:
    paths = None
  records = []
  for size in sizes:
    if paths:
      t = time.perf_counter()
      images, _ = ip.load_resized(paths, size)
      dt = time.perf_counter() - t
      records.append({"stage": "decode+resize (JPEG, PIL Lanczos)",
                      "size": size, "images_per_s": len(paths) / dt})
    else:
      images = ip.synthetic_images(count, size, seed=0)
    for label, kw, depth in (
        ("batches (no prefetch)", {}, 0),
        ("batches (prefetch 2)", {}, 2),
        ("batches + flip + exposure mixing (prefetch 2)",
         {"random_flip": True, "exposure_mixing": True}, 2)):
      it = ip.prefetch(ip.batches(images, batch_size=8, seed=0, **kw),
                       depth=depth)
      next(it)
      t = time.perf_counter()
      for _ in range(steps):
        next(it)
        time.sleep(0)
      dt = time.perf_counter() - t
      records.append({"stage": label, "size": size,
                      "images_per_s": 8 * steps / dt})
    records.append(_device_stage(images, size, steps))
  for r in records:
    print(f"{r['stage']:50} {r['size']:4}  {r['images_per_s']:9.1f} img/s")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "input_pipeline.json"), "w") as f:
    json.dump({"machine": bench.machine_info(), "records": records}, f,
              indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
