"""Trains the package's bundled default model (a first, short CPU recipe).

    python train/train_bundled.py --images ../shared/train_images \
        --out zerodce_jax/assets/zerodce_default.msgpack

Recipe: the official Zero-DCE losses and weights (TV 200, spa 1, col 5,
exp 10; colour eps 1e-8 so grey batches cannot give NaN), the official
optimiser (Adam 1e-4, coupled L2 1e-4, clip 0.1), batch 8, images resized to
--size (Lanczos). The weights file is rewritten (atomically) at every log
step, so an interrupted run still leaves a usable model.
"""

import argparse
import json
import sys
import time

import jax

from zerodce_jax import folder_source, models, params_io, training


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--images", required=True, help="folder of training images")
  ap.add_argument("--out", required=True, help="weights file to write")
  ap.add_argument("--size", type=int, default=128)
  ap.add_argument("--steps", type=int, default=2500)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--lr", type=float, default=1e-4)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--log", default=None, help="JSONL metrics file")
  args = ap.parse_args(argv)

  paths = folder_source.list_images(args.images)
  t0 = time.time()
  images = folder_source.load_resized(paths, args.size)
  print(f"{len(paths)} images at {args.size}x{args.size} loaded in "
        f"{time.time() - t0:.0f} s", flush=True)
  model = models.ZeroDCE(bias_init="torch")
  state = training.create_train_state(
      model, training.make_optimizer(learning_rate=args.lr),
      key=jax.random.key(args.seed))
  loss_fn = training.make_loss_fn(model, weights="official",
                                  variant="official", color_eps=1e-8)
  log_file = open(args.log, "a") if args.log else None
  start = time.time()

  def log(step, m, state):
    rate = (step - start_step) * args.batch / (time.time() - start)
    print(f"step {step}: " + " ".join(f"{k} {v:.5g}" for k, v in m.items())
          + f" ({rate:.1f} img/s)", flush=True)
    if log_file:
      log_file.write(json.dumps({"step": step, **m}) + "\n")
      log_file.flush()
    params_io.save_params(
        args.out, jax.device_get(state.params), arch=params_io.arch_of(model),
        source=(f"zerodce-jax train/train_bundled.py: official losses, "
                f"{args.size}x{args.size}, batch {args.batch}, lr {args.lr}, "
                f"step {step}, seed {args.seed}, {len(paths)} images"))

  start_step = int(state.step)
  training.fit(state, images, loss_fn=loss_fn, steps=args.steps,
               batch_size=args.batch, seed=args.seed, log=log, log_every=100)
  return 0


if __name__ == "__main__":
  sys.exit(main())
