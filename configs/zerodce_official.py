"""Zero-DCE as the official training script runs it (the base config).

    zerodce train --config configs/zerodce_official.py --workdir runs/official \
        --config.data.path=../shared/train_images
    zerodce train --config configs/zerodce_official.py:released ...   # 100 epochs

Official settings (SPEC section 6): images resized to 256x256 (Lanczos), batch
8, every image once per epoch with the last partial batch kept (PyTorch's
DataLoader with shuffle=True, drop_last=False: 2,002 images -> 251 steps per
epoch, the last of 2 images), reshuffled every epoch, Adam lr 1e-4 with
coupled L2 weight decay 1e-4, gradient clipping at global norm 0.1, loss
200*TV + spa + 5*col + 10*exp with the official loss variants, 200 epochs,
conv weights N(0, 0.02) with PyTorch's default bias init.

ARG (optional): ``released`` -- the length of the shipped snapshot, Epoch99
(100 epochs, 25,100 steps); the official script's default is 200 epochs.
The author says Epoch99 was trained on 512x512 images (official issue #29):
add --config.data.image_size=512 for that, at 4x the cost per step.

Deviation, on purpose: colour-loss eps 1e-8 (the official sqrt has a NaN
gradient on grey images, official issue #35); set --config.loss.color_eps=0
for the bit-exact official loss. docs/reproducibility.md measures what the
recipe as a whole gives against the official semantics run in PyTorch
(benchmarks/torch_port.py) over several seeds.

The kept last batch has another shape: a jitted step compiles twice (once
for 8 images, once for 2). It must split evenly over the devices (2 images
do over 1 or 2 devices): on more devices set --config.data.last_batch=drop
(each epoch is then 250 whole batches, the 2 left-over images wait for a
later epoch's permutation; measured as no difference, docs/reproducibility.md).

Expect: a step takes seconds on a small CPU (benchmarks/results/
train_step.json), so use an accelerator for the full 200 epochs, with
--config.data.pipeline=device (docs: "Training").
"""

import ml_collections


VARIANTS = ("released",)


def get_config(arg=None):
  if arg not in (None, "", *VARIANTS):
    raise ValueError(f"zerodce_official: unknown ARG {arg!r}; known: "
                     f"{', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = ml_collections.ConfigDict()
  c.model.arch = "zerodce"          # a name in zerodce_jax.models.ARCHITECTURES
  c.model.bias_init = "torch"       # official: PyTorch default; paper: zeros
  c.model.kernel_init = "normal"    # N(0, 0.02); "torch": PyTorch default
  c.model.dtype = "float32"         # "bfloat16": mixed precision (f32 params)
  c.model.scale_factor = 1          # Zero-DCE++ only

  c.data = ml_collections.ConfigDict()
  c.data.source = "folder"          # "folder" | "synthetic" | "tfds:NAME"
  c.data.path = ""                  # image folder, or the TFDS data_dir
  c.data.split = "train"            # TFDS split
  c.data.image_size = 256           # resize (Lanczos), as the official loader
  c.data.crop_size = 0              # > 0: random crops of this size
  c.data.random_flip = False
  c.data.exposure_mixing = False    # synthetic under/over-exposure
  c.data.prefetch = 2               # batches prepared ahead (thread)
  c.data.pipeline = "host"          # "device": gather + augment on the
                                    # accelerator (uint8 set resident there)
  c.data.last_batch = "keep"        # "keep": the official drop_last=False;
                                    # "drop": whole batches only
  c.data.num_synthetic = 64         # synthetic source only

  c.loss = ml_collections.ConfigDict()
  c.loss.variant = "official"       # "official" | "paper"
  c.loss.weights = ml_collections.ConfigDict(
      dict(spa=1.0, exp=10.0, col=5.0, tv=200.0))
  c.loss.exposure_level = 0.6
  c.loss.exposure_patch = 16
  c.loss.spatial_region = 4
  c.loss.color_eps = 1e-8

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-4
  c.optim.weight_decay = 1e-4
  c.optim.decoupled_weight_decay = False   # True: AdamW
  c.optim.clip_norm = 0.1                  # <= 0 disables clipping

  c.batch_size = 8                  # global, across devices and hosts
  c.parallel = "auto"               # several devices: "shard_map" | "pmap"
  c.num_epochs = 100 if arg == "released" else 200
  c.num_steps = -1                  # > 0 overrides num_epochs

  c.log_every = 50
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  c.sample_every = 1000             # before/after PNG of a few images; 0: off
  c.num_samples = 4
  return c
