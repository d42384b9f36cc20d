"""The official Zero-DCE / Zero-DCE++ networks, losses and training script
in PyTorch, written from SPEC (not copied), for side-by-side benchmarks and
for the reproducibility study (``benchmarks/reproducibility.py``).

torch is optional: this module imports without it, and its functions raise
an ``ImportError`` saying how to install it. Weights come
from our converted params (``convert_official(..., flush=False)`` to keep the
denormals, as users of the official code have them), mapped back to PyTorch's
layout and the official curve sign (``from_params``; ``to_params`` maps back).

The official training script's semantics (SPEC section 6), as
``OfficialTrainer`` / ``train_official``:

* loader: every file resized to ``size x size`` with PIL's Lanczos filter
  (``ANTIALIAS``), ``/ 255``, no augmentation (``official_images``); a
  ``torch.utils.data.DataLoader(shuffle=True, drop_last=False)``: a fresh
  permutation every epoch from a ``torch.Generator`` seeded by the run's
  seed, the last partial batch kept (``official_batches``: 2,002 images at
  batch 8 give 251 steps per epoch, the last of 2 images);
* init (``make_official_net``): Zero-DCE draws its conv weights from
  N(0, 0.02) and keeps PyTorch's default biases (its ``weights_init``
  touches only ``.weight``); Zero-DCE++'s script has the init call
  commented out, so weights and biases keep PyTorch's defaults
  (U(+-1/sqrt(fan_in)), fan_in = 9 for a depthwise 3x3);
* optimiser: ``torch.optim.Adam(lr=1e-4, weight_decay=1e-4)`` (coupled L2)
  after ``torch.nn.utils.clip_grad_norm_(params, 0.1)`` (which divides by
  ``norm + 1e-6``);
* loss: ``tv_weight * L_TV(r) + mean L_spa + 5 mean L_col + 10 mean L_exp``
  with ``tv_weight`` 200 (Zero-DCE) or 1600 (Zero-DCE++), the colour term's
  sqrt without an epsilon (``color_eps=0``, the official value);
* Zero-DCE++ trains at scale factor 1 (the test script uses 12).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from zerodce_jax.core import models

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
except ImportError:  # the classes below exist only with torch
  torch = F = nn = None

__all__ = ["TorchDCENet", "from_params", "to_params", "official_loss",
           "official_loss_terms", "require_torch", "OFFICIAL_RECIPES",
           "official_images", "official_batches", "official_steps_per_epoch",
           "make_official_net", "OfficialTrainer", "train_official",
           "load_official_run"]

# What the two official training scripts set (SPEC section 6).
OFFICIAL_RECIPES: dict[str, dict[str, Any]] = {
    "zerodce": dict(tv_weight=200.0, init="normal", image_size=256,
                    num_epochs=200, batch_size=8, learning_rate=1e-4,
                    weight_decay=1e-4, clip_norm=0.1, scale_factor=1),
    "zerodce++": dict(tv_weight=1600.0, init="torch", image_size=512,
                      num_epochs=100, batch_size=8, learning_rate=1e-4,
                      weight_decay=1e-4, clip_norm=0.1, scale_factor=1),
}


def require_torch() -> None:
  """Raises a clear ``ImportError`` when PyTorch is not installed."""
  if torch is None:
    raise ImportError("the PyTorch port needs torch: pip install "
                      "torch==2.13.0 (the CPU build)")


if torch is not None:

  class _Sep(nn.Module):
    def __init__(self, cin, cout):
      super().__init__()
      self.depth_conv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
      self.point_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
      return self.point_conv(self.depth_conv(x))


  class TorchDCENet(nn.Module):
    """NCHW DCE-Net returning ``(enhanced, r)`` with the official sign r = -a."""

    def __init__(self, *, depth=7, width=32, iterations=8, separable=False,
                 scale_factor=1):
      super().__init__()
      self.iterations, self.separable = iterations, separable
      self.scale_factor = scale_factor
      self.sources = models.skip_sources(depth)
      out = 3 if separable else 3 * iterations
      layers = []
      for k, src in enumerate(self.sources, start=1):
        cin = 3 if src == (0,) else width * len(src)
        cout = out if k == depth else width
        layers.append(_Sep(cin, cout) if separable
                      else nn.Conv2d(cin, cout, 3, 1, 1))
      self.convs = nn.ModuleList(layers)

    def forward(self, x):
      s = self.scale_factor
      inp = x if s == 1 else F.interpolate(x, scale_factor=1 / s,
                                           mode="bilinear")
      acts = [inp]
      for k, (conv, src) in enumerate(zip(self.convs, self.sources), start=1):
        y = conv(torch.cat([acts[i] for i in src], 1))
        acts.append(torch.tanh(y) if k == len(self.convs) else F.relu(y))
      r = acts[-1]
      if s != 1:
        r = F.interpolate(r, scale_factor=s, mode="bilinear",
                          align_corners=True)
      for n in range(self.iterations):
        rn = r if self.separable else r[:, 3 * n:3 * n + 3]
        x = x + rn * (x * x - x)
      return x, r


def from_params(params: Any, arch: dict[str, Any], *,
                scale_factor: int = 1) -> TorchDCENet:
  """A ``TorchDCENet`` holding our params (HWIO -> OIHW, a -> r)."""
  require_torch()
  net = TorchDCENet(**arch, scale_factor=scale_factor)
  depth = arch["depth"]

  def oihw(k):
    return torch.from_numpy(np.array(
        np.transpose(np.asarray(k, np.float32), (3, 2, 0, 1))))

  with torch.no_grad():
    for k, conv in enumerate(net.convs, start=1):
      sign = -1.0 if k == depth else 1.0
      p = params[f"conv{k}"]
      if arch["separable"]:
        conv.depth_conv.weight.copy_(oihw(p["depthwise"]["kernel"]))
        conv.depth_conv.bias.copy_(torch.from_numpy(np.array(
            p["depthwise"]["bias"], np.float32)))
        conv.point_conv.weight.copy_(sign * oihw(p["pointwise"]["kernel"]))
        conv.point_conv.bias.copy_(sign * torch.from_numpy(np.array(
            p["pointwise"]["bias"], np.float32)))
      else:
        conv.weight.copy_(sign * oihw(p["kernel"]))
        conv.bias.copy_(sign * torch.from_numpy(np.array(p["bias"],
                                                         np.float32)))
  return net


def to_params(net: "TorchDCENet", arch: dict[str, Any]) -> dict[str, Any]:
  """Our params (HWIO kernels, paper sign a = -r) of a ``TorchDCENet``: the
  inverse of ``from_params``."""
  require_torch()
  depth = arch["depth"]

  def hwio(w):
    return np.ascontiguousarray(np.transpose(
        w.detach().cpu().numpy().astype(np.float32), (2, 3, 1, 0)))

  def vec(b):
    return b.detach().cpu().numpy().astype(np.float32)

  params = {}
  for k, conv in enumerate(net.convs, start=1):
    sign = np.float32(-1.0 if k == depth else 1.0)
    if arch["separable"]:
      params[f"conv{k}"] = {
          "depthwise": {"kernel": hwio(conv.depth_conv.weight),
                        "bias": vec(conv.depth_conv.bias)},
          "pointwise": {"kernel": sign * hwio(conv.point_conv.weight),
                        "bias": sign * vec(conv.point_conv.bias)}}
    else:
      params[f"conv{k}"] = {"kernel": sign * hwio(conv.weight),
                            "bias": sign * vec(conv.bias)}
  return params


def official_loss_terms(x, enhanced, r, *, color_eps: float = 1e-8
                        ) -> dict[str, Any]:
  """The four official terms, unweighted, as the official script averages
  them over the batch (NCHW tensors): ``tv`` (L_TV of the curve maps
  ``r``), ``spa``, ``col`` (sqrt of the summed squared pair terms, plus
  ``color_eps`` inside the root; 0 is the official value) and ``exp``."""
  require_torch()
  b, _, h, w = r.shape
  tv = 2 * (torch.pow(r[:, :, 1:] - r[:, :, :-1], 2).sum() / ((h - 1) * w)
            + torch.pow(r[:, :, :, 1:] - r[:, :, :, :-1], 2).sum()
            / (h * (w - 1))) / b
  m = enhanced.mean((2, 3))
  drg, drb, dgb = ((m[:, 0] - m[:, 1])**2, (m[:, 0] - m[:, 2])**2,
                   (m[:, 1] - m[:, 2])**2)
  col = torch.sqrt(drg**2 + drb**2 + dgb**2 + color_eps).mean()
  exp = ((F.avg_pool2d(enhanced.mean(1, keepdim=True), 16) - 0.6)**2).mean()
  po = F.avg_pool2d(x.mean(1, keepdim=True), 4)
  pe = F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)

  def diffs(p):
    q = F.pad(p, (1, 1, 1, 1))
    c = q[:, :, 1:-1, 1:-1]
    return [c - q[:, :, 1:-1, :-2], c - q[:, :, 1:-1, 2:],
            c - q[:, :, :-2, 1:-1], c - q[:, :, 2:, 1:-1]]

  spa = sum((a - e)**2 for a, e in zip(diffs(po), diffs(pe))).mean()
  return {"tv": tv, "spa": spa, "col": col, "exp": exp}


OFFICIAL_LOSS_WEIGHTS = {"spa": 1.0, "col": 5.0, "exp": 10.0}


def official_loss(x, enhanced, r, *, tv_weight=200.0, color_eps=1e-8):
  """``tv_weight*TV(r) + mean spa + 5*mean col + 10*mean exp``, as the
  official script (``color_eps=0`` for its exact colour term; the default
  1e-8 is our training configs' guard against its NaN gradient)."""
  t = official_loss_terms(x, enhanced, r, color_eps=color_eps)
  return (tv_weight * t["tv"] + t["spa"] + 5 * t["col"] + 10 * t["exp"])


# --------------------------------------------------------------------------
# The official training script's semantics.
# --------------------------------------------------------------------------
def official_images(paths: Sequence[str], size: int) -> np.ndarray:
  """The official loader's images, uint8 ``[N, size, size, 3]``: each file
  opened with PIL and resized to ``size x size`` with the Lanczos filter
  (the official ``ANTIALIAS``, removed in Pillow 10). The loader's ``/ 255``
  is applied per batch (``batch_tensor``)."""
  from PIL import Image  # noqa: PLC0415
  out = []
  for p in paths:
    with Image.open(p) as im:
      out.append(np.asarray(im.convert("RGB").resize(
          (size, size), Image.Resampling.LANCZOS)))
  return np.stack(out)


def official_steps_per_epoch(n: int, batch_size: int) -> int:
  """``len(DataLoader(..., drop_last=False))``: ``ceil(n / batch_size)``."""
  return -(-n // batch_size)


def official_batches(n: int, *, batch_size: int, seed: int,
                     start_step: int = 0) -> Iterator[np.ndarray]:
  """Endless index batches of the official loader: a
  ``DataLoader(range(n), batch_size, shuffle=True, drop_last=False,
  generator=torch.Generator().manual_seed(seed))`` iterated epoch after
  epoch (a fresh permutation each, the last batch ``n % batch_size`` long).

  ``start_step`` replays the generator from the seed and skips that many
  batches, so a resumed run sees exactly the batches it would have seen.
  """
  require_torch()
  g = torch.Generator()
  g.manual_seed(seed)
  loader = torch.utils.data.DataLoader(range(n), batch_size=batch_size,
                                       shuffle=True, drop_last=False,
                                       generator=g)
  step = 0
  while True:
    for idx in loader:
      if step >= start_step:
        yield idx.numpy().astype(np.int64)
      step += 1


def batch_tensor(images: np.ndarray, idx: np.ndarray) -> "torch.Tensor":
  """NCHW float32 batch as the official dataset makes it:
  ``torch.from_numpy(np.asarray(img) / 255.0).float().permute(2, 0, 1)``."""
  require_torch()
  x = images[idx] / 255.0
  return torch.from_numpy(x).float().permute(0, 3, 1, 2).contiguous()


def make_official_net(arch: str = "zerodce", *, seed: int,
                      init: str | None = None) -> "TorchDCENet":
  """A freshly initialised ``TorchDCENet`` as the official script makes it.

  Args:
    arch: ``"zerodce"`` or ``"zerodce++"`` (or an ablation name).
    seed: ``torch.manual_seed`` before construction (PyTorch's default init
      draws from the global generator).
    init: ``"normal"`` (conv weights N(0, 0.02), default biases: the
      Zero-DCE script's ``weights_init``) or ``"torch"`` (every parameter
      at PyTorch's default: the Zero-DCE++ script); default from
      ``OFFICIAL_RECIPES``.
  """
  require_torch()
  a = models.ARCHITECTURES[arch]
  if init is None:
    init = OFFICIAL_RECIPES["zerodce++" if a["separable"] else "zerodce"][
        "init"]
  if init not in ("normal", "torch"):
    raise ValueError(f"init must be 'normal' or 'torch', got {init!r}")
  torch.manual_seed(seed)
  net = TorchDCENet(**a)
  if init == "normal":
    with torch.no_grad():
      for m in net.modules():
        if isinstance(m, nn.Conv2d):
          m.weight.normal_(0.0, 0.02)
  return net


class OfficialTrainer:
  """The official script's optimisation step on a ``TorchDCENet``.

  ``step(x)`` (NCHW float32 batch) runs forward, the official loss, backward,
  ``clip_grad_norm_(clip_norm)`` and ``Adam(lr, weight_decay)`` (coupled
  L2) and returns the loss and its unweighted terms as floats.
  """

  def __init__(self, net: "TorchDCENet", *, tv_weight: float = 200.0,
               color_eps: float = 0.0, learning_rate: float = 1e-4,
               weight_decay: float = 1e-4, clip_norm: float = 0.1):
    require_torch()
    self.net, self.tv_weight, self.color_eps = net, tv_weight, color_eps
    self.clip_norm = clip_norm
    self.optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate,
                                      weight_decay=weight_decay)

  def loss(self, x) -> tuple[Any, dict[str, Any]]:
    enhanced, r = self.net(x)
    t = official_loss_terms(x, enhanced, r, color_eps=self.color_eps)
    total = (self.tv_weight * t["tv"]
             + sum(w * t[k] for k, w in OFFICIAL_LOSS_WEIGHTS.items()))
    return total, t

  def step(self, x) -> dict[str, float]:
    self.net.train()
    loss, terms = self.loss(x)
    self.optimizer.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(),
                                          self.clip_norm)
    self.optimizer.step()
    return {"loss": float(loss.detach()),
            **{k: float(v.detach()) for k, v in terms.items()},
            "grad_norm": float(norm)}

  def state_dict(self) -> dict[str, Any]:
    return {"net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict()}

  def load_state_dict(self, sd: dict[str, Any]) -> None:
    self.net.load_state_dict(sd["net"])
    self.optimizer.load_state_dict(sd["optimizer"])


def _flushing_denormals(fn):
  """``fn`` with torch flushing denormals (the official weights' speed on a
  CPU), switched back off after: the flag is the process's, and the next
  test or benchmark in it must not inherit it."""
  @functools.wraps(fn)
  def run(*args, **kwargs):
    torch.set_flush_denormal(True)
    try:
      return fn(*args, **kwargs)
    finally:
      torch.set_flush_denormal(False)
  return run


@_flushing_denormals
def train_official(images: np.ndarray, workdir: str, *,
                   arch: str = "zerodce", seed: int = 0, num_steps: int,
                   batch_size: int = 8, tv_weight: float | None = None,
                   color_eps: float = 0.0, init: str | None = None,
                   checkpoint_every: int = 100, threads: int | None = None,
                   channels_last: bool = False,
                   time_limit_s: float | None = None,
                   report: Callable[[str], None] | None = print
                   ) -> "TorchDCENet":
  """Trains as the official script does, resumable, for ``num_steps``.

  Args:
    images: uint8 ``[N, S, S, 3]`` from ``official_images`` (already at the
      training size).
    workdir: holds ``checkpoint.pt`` (net, optimiser, step, every step's
      metrics; written atomically every ``checkpoint_every`` steps and at
      the end), ``metrics.jsonl`` (one line per step) and, when done,
      ``params.npz`` (our layout, ``to_params``).
    arch, seed, init: ``make_official_net``.
    num_steps, batch_size: steps of ``official_batches``.
    tv_weight: default from ``OFFICIAL_RECIPES`` (200 or 1600).
    color_eps: 0, the official colour term.
    threads: ``torch.set_num_threads``.
    channels_last: keep the net and batches in PyTorch's channels-last
      memory format (the same arithmetic, faster on a CPU; the official
      script runs NCHW).
    time_limit_s: stop (after a checkpoint) once exceeded; call again to
      resume.

  Returns:
    The net (trained as far as it got).
  """
  require_torch()
  import time  # noqa: PLC0415
  a = models.ARCHITECTURES[arch]
  recipe = OFFICIAL_RECIPES["zerodce++" if a["separable"] else "zerodce"]
  tv_weight = recipe["tv_weight"] if tv_weight is None else tv_weight
  if threads:
    torch.set_num_threads(threads)
  os.makedirs(workdir, exist_ok=True)
  net = make_official_net(arch, seed=seed, init=init)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  net = net.to(memory_format=fmt)
  trainer = OfficialTrainer(net, tv_weight=tv_weight, color_eps=color_eps,
                            learning_rate=recipe["learning_rate"],
                            weight_decay=recipe["weight_decay"],
                            clip_norm=recipe["clip_norm"])
  ckpt = os.path.join(workdir, "checkpoint.pt")
  history: list[dict[str, float]] = []
  elapsed = 0.0
  if os.path.exists(ckpt):
    sd = torch.load(ckpt, weights_only=True)  # tensors and numbers only
    if (sd["seed"], sd["arch"]) != (seed, arch):
      raise ValueError(f"{ckpt}: trained with seed {sd['seed']} / "
                       f"{sd['arch']}, asked for {seed} / {arch}")
    trainer.load_state_dict(sd["trainer"])
    history = sd["history"]
    elapsed = sd.get("elapsed_s", 0.0)
    if report:
      report(f"{workdir}: resumed at step {len(history)}")
  start = len(history)

  def save():
    tmp = ckpt + ".tmp"
    torch.save({"seed": seed, "arch": arch, "trainer": trainer.state_dict(),
                "history": history,
                "elapsed_s": elapsed + time.time() - t0}, tmp)
    os.replace(tmp, ckpt)
    with open(os.path.join(workdir, "metrics.jsonl.tmp"), "w") as f:
      for i, m in enumerate(history, start=1):
        f.write(json.dumps({"step": i, **m}) + "\n")
    os.replace(os.path.join(workdir, "metrics.jsonl.tmp"),
               os.path.join(workdir, "metrics.jsonl"))

  t0 = time.time()
  batches = official_batches(len(images), batch_size=batch_size, seed=seed,
                             start_step=start)
  for step in range(start + 1, num_steps + 1):
    m = trainer.step(batch_tensor(images, next(batches)).contiguous(
        memory_format=fmt))
    if not np.isfinite(m["loss"]):
      raise FloatingPointError(f"{workdir}: non-finite loss at step {step}")
    history.append(m)
    if step % checkpoint_every == 0 or step == num_steps:
      save()
      if report:
        report(f"{workdir}: step {step}/{num_steps} loss {m['loss']:.4f} "
               f"({(time.time() - t0) / (step - start):.2f} s/step)")
      if time_limit_s is not None and time.time() - t0 > time_limit_s:
        return net
  if len(history) >= num_steps:
    np.savez(os.path.join(workdir, "params.npz"),
             **_flatten(to_params(net, a)))
    with open(os.path.join(workdir, "timing.json"), "w") as f:
      json.dump({"steps": len(history),
                 "elapsed_s": elapsed + time.time() - t0}, f)
  return net


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = v
  return out


def load_official_run(workdir: str) -> dict[str, Any]:
  """Our params (nested dict) of a finished ``train_official`` run."""
  with np.load(os.path.join(workdir, "params.npz"), allow_pickle=False) as z:
    tree: dict[str, Any] = {}
    for key in z.files:
      node = tree
      *parents, leaf = key.split("/")
      for p in parents:
        node = node.setdefault(p, {})
      node[leaf] = z[key]
  return tree
