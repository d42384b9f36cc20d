"""DCE-Net: the curve-estimation CNN of Zero-DCE and Zero-DCE++ (flax.linen).

Layout: images NHWC float in [0, 1]; the network returns
``(enhanced, maps)`` where ``maps`` are the curve parameters in the *paper's*
sign (``a``, see ``zerodce_jax.core.curves``), ``[B, H, W, 3 * iterations]`` for
Zero-DCE and ``[B, H, W, 3]`` (one map shared by every iteration) for
Zero-DCE++.

The parameter tree is a file format (checkpoints and the official-weight
converter depend on it): layers are named ``conv1`` .. ``conv{depth}``; a
separable layer holds ``depthwise`` (3x3, one filter per channel) and
``pointwise`` (1x1) sub-layers. Kernels are HWIO. The convolutions
themselves (and their CPU-tuned gradients) are in ``kernels``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from zerodce_jax.core import curves, resize
from zerodce_jax.core.kernels import conv3x3, depthwise_conv3x3

__all__ = [
    "DCENet", "Conv3x3", "SeparableConv", "DepthwiseConv3x3", "Pointwise",
    "ZeroDCE", "ZeroDCEpp", "ARCHITECTURES", "make_model", "model_from_arch",
    "count_params", "skip_sources",
]


def torch_default_init(fan_in: int) -> Callable[..., jax.Array]:
  """PyTorch's default conv init, bias and kernel alike:
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), ``fan_in`` = input channels per group
  x kernel height x width (for the kernel, ``kaiming_uniform_`` with
  a = sqrt(5): bound sqrt(6 / ((1 + a^2) fan_in)) = 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def skip_sources(depth: int) -> list[tuple[int, ...]]:
  """Which earlier activations feed each layer of the symmetric-skip net.

  Returns a list, one entry per layer (1-based layer ``k`` at index ``k-1``),
  of the 1-based activation indices concatenated (channel axis) to form its
  input; ``0`` is the input image. For depth 7:
  ``[(0,), (1,), (2,), (3,), (3, 4), (2, 5), (1, 6)]``, i.e. x5 = conv5(cat(x3,
  x4)), x6 = conv6(cat(x2, x5)), out = conv7(cat(x1, x6)).
  """
  if depth < 3 or depth % 2 == 0:
    raise ValueError(f"depth must be odd and >= 3, got {depth}")
  half = depth // 2
  sources = [(k - 1,) for k in range(1, half + 2)]
  for k in range(half + 2, depth + 1):
    sources.append((depth + 1 - k, k - 1))
  return sources


def _bias_init(kind: str, fan_in: int) -> Callable[..., jax.Array]:
  if kind == "zeros":
    return nn.initializers.zeros
  if kind == "torch":
    return torch_default_init(fan_in)
  raise ValueError(f"bias_init must be 'zeros' or 'torch', got {kind!r}")


def _kernel_init(kind: str, fan_in: int) -> Callable[..., jax.Array]:
  if kind == "normal":
    return nn.initializers.normal(stddev=0.02)
  if kind == "torch":
    return torch_default_init(fan_in)
  raise ValueError(f"kernel_init must be 'normal' or 'torch', got {kind!r}")


def _kernel_and_bias(module: nn.Module, x: jax.Array,
                     kernel_shape: tuple[int, ...], fan_in: int
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Declares ``kernel`` (``module.kernel_init``) and ``bias`` on ``module``
  and promotes ``x`` and both to the module's compute dtype."""
  kernel = module.param("kernel", _kernel_init(module.kernel_init, fan_in),
                        kernel_shape, module.param_dtype)
  bias = module.param("bias", _bias_init(module.bias_init, fan_in),
                      (kernel_shape[-1],), module.param_dtype)
  return nn.dtypes.promote_dtype(x, kernel, bias, dtype=module.dtype)


class Conv3x3(nn.Module):
  """3x3 'same' conv with bias (``conv3x3``); params ``kernel``, ``bias``."""
  features: int
  bias_init: str = "zeros"
  kernel_init: str = "normal"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    x, kernel, bias = _kernel_and_bias(self, x, (3, 3, cin, self.features),
                                       9 * cin)
    return conv3x3(x, kernel, kernels=self.kernels) + bias


class DepthwiseConv3x3(nn.Module):
  """Depthwise 3x3 conv with bias; params ``kernel [3, 3, 1, C]``, ``bias [C]``."""
  bias_init: str = "zeros"
  kernel_init: str = "normal"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x, kernel, bias = _kernel_and_bias(self, x, (3, 3, 1, x.shape[-1]), 9)
    return depthwise_conv3x3(x, kernel, kernels=self.kernels) + bias


class Pointwise(nn.Module):
  """1x1 conv as a matrix product over channels; params ``kernel [1, 1, C,
  O]`` (the conv layout the converter and checkpoints use) and ``bias``."""
  features: int
  bias_init: str = "zeros"
  kernel_init: str = "normal"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    x, kernel, bias = _kernel_and_bias(self, x, (1, 1, cin, self.features),
                                       cin)
    return jnp.einsum("bhwc,co->bhwo", x, kernel[0, 0]) + bias


class SeparableConv(nn.Module):
  """3x3 depthwise conv then 1x1 pointwise conv, both with bias (Zero-DCE++)."""
  features: int
  bias_init: str = "zeros"
  kernel_init: str = "normal"
  dtype: Any = jnp.float32
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = DepthwiseConv3x3(bias_init=self.bias_init,
                         kernel_init=self.kernel_init, dtype=self.dtype,
                         kernels=self.kernels, name="depthwise")(x)
    return Pointwise(self.features, bias_init=self.bias_init,
                     kernel_init=self.kernel_init, dtype=self.dtype,
                     name="pointwise")(x)


class DCENet(nn.Module):
  """Deep Curve Estimation network with symmetric skip concatenations.

  Attributes:
    depth: number of conv layers (odd, >= 3); 7 in the paper.
    width: filters per hidden layer; 32 in the paper.
    iterations: LE-curve iterations; 8 in the paper.
    separable: depthwise-separable convs and one shared curve map
      (Zero-DCE++) instead of plain convs and one map per iteration.
    scale_factor: Zero-DCE++ only: estimate the curve map on the input
      down-scaled by this factor (bilinear, PyTorch ``align_corners=False``)
      and up-scale the map back to the input's size (bilinear,
      ``align_corners=True``, as ``nn.UpsamplingBilinear2d``). 1 disables it.
      When H and W are multiples of the factor this is exactly the official
      code; otherwise the map is up-scaled to the input's own size.
    bias_init: ``"zeros"`` (paper: constant biases) or ``"torch"`` (PyTorch's
      default uniform init, which the official script keeps).
    kernel_init: ``"normal"`` (N(0, 0.02): the paper and the official
      Zero-DCE script) or ``"torch"`` (PyTorch's default uniform init: the
      official Zero-DCE++ script, whose init call is commented out).
    dtype: computation dtype (e.g. ``jnp.bfloat16``); params stay float32.
    return_intermediate: iterations whose images are also returned (the
      official Zero-DCE returns the 4th).
    kernels: convolution kernels, ``"auto"`` (tuned for XLA:CPU where the
      computation is lowered for CPU, XLA's native convolutions on GPU/TPU),
      ``"native"`` or ``"tuned"`` (see ``conv3x3``). Same values.
  """
  depth: int = 7
  width: int = 32
  iterations: int = 8
  separable: bool = False
  scale_factor: int = 1
  bias_init: str = "zeros"
  kernel_init: str = "normal"
  dtype: Any = jnp.float32
  return_intermediate: Sequence[int] = ()
  kernels: str = "auto"

  @property
  def map_channels(self) -> int:
    """Channels of the curve-map output: 3 (shared) or 3 per iteration."""
    return 3 if self.separable else 3 * self.iterations

  @nn.compact
  def estimate(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The CNN alone: curve maps (paper sign) at the resolution of ``x``.

    Args:
      x: ``[B, h, w, 3]`` network input (for Zero-DCE++ with a scale factor,
        the down-scaled image).
      mask: optional ``[B, h, w, 1]`` validity mask (1 inside the image, 0 on
        padding). Every layer's activations are multiplied by it, so an image
        padded onto a larger canvas gives, inside the image, exactly the maps
        of the unpadded image (each conv sees zeros beyond the image, as its
        own zero padding would give). This makes shape buckets and halo
        tiles exact.

    Returns:
      ``[B, h, w, map_channels]`` in [-1, 1].
    """
    acts = [x if mask is None else x * mask]
    for k, src in enumerate(skip_sources(self.depth), start=1):
      inp = jnp.concatenate([acts[i] for i in src], axis=-1)
      last = k == self.depth
      features = self.map_channels if last else self.width
      if self.separable:
        y = SeparableConv(features, bias_init=self.bias_init,
                          kernel_init=self.kernel_init, dtype=self.dtype,
                          kernels=self.kernels, name=f"conv{k}")(inp)
      else:
        y = Conv3x3(features, bias_init=self.bias_init,
                    kernel_init=self.kernel_init, dtype=self.dtype,
                    kernels=self.kernels, name=f"conv{k}")(inp)
      y = jnp.tanh(y) if last else nn.relu(y)
      acts.append(y if mask is None or last else y * mask.astype(y.dtype))
    return acts[-1]

  def __call__(self, image: jax.Array) -> tuple[jax.Array, ...]:
    """Enhances a batch.

    Args:
      image: ``[B, H, W, 3]`` float in [0, 1].

    Returns:
      ``(enhanced, maps)``, or ``(enhanced, maps, {n: LE_n})`` when
      ``return_intermediate`` is set. ``enhanced`` has ``image``'s shape and
      ``dtype``, in [0, 1]; ``maps`` are in [-1, 1], paper sign, at the
      input's resolution.
    """
    if image.ndim != 4 or image.shape[-1] != 3:
      raise ValueError(f"expected a [B, H, W, 3] image batch, got shape "
                       f"{image.shape}")
    _, h, w, _ = image.shape
    s = self.scale_factor
    x = image.astype(self.dtype)
    if s != 1:
      if not self.separable:
        raise ValueError("scale_factor applies to Zero-DCE++ (separable) only")
      small = resize.torch_downscale(x, s)
      maps = resize.resize_bilinear(self.estimate(small), h, w,
                                    align_corners=True)
    else:
      maps = self.estimate(x)
    out = curves.apply_curves(
        x, maps, iterations=self.iterations,
        return_intermediate=tuple(self.return_intermediate) or False)
    if self.return_intermediate:
      enhanced, inter = out
      return enhanced, maps, inter
    return out, maps


ZeroDCE = functools.partial(DCENet, depth=7, width=32, iterations=8,
                            separable=False)
ZeroDCEpp = functools.partial(DCENet, depth=7, width=32, iterations=8,
                              separable=True)

# Named architectures: name -> DCENet settings. "zerodce" and "zerodce++" are
# the official networks; the rest are the paper's ablations (layers-filters-
# iterations, Table / Fig. of the CVPR paper).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "zerodce": dict(depth=7, width=32, iterations=8, separable=False),
    "zerodce++": dict(depth=7, width=32, iterations=8, separable=True),
    "3-32-8": dict(depth=3, width=32, iterations=8, separable=False),
    "7-16-8": dict(depth=7, width=16, iterations=8, separable=False),
    "7-32-1": dict(depth=7, width=32, iterations=1, separable=False),
    "7-32-16": dict(depth=7, width=32, iterations=16, separable=False),
}


def make_model(arch: str = "zerodce", **overrides: Any) -> DCENet:
  """Builds a ``DCENet`` from a named architecture plus keyword overrides."""
  if arch not in ARCHITECTURES:
    raise ValueError(f"unknown architecture {arch!r}; known: "
                     f"{', '.join(ARCHITECTURES)}")
  return DCENet(**{**ARCHITECTURES[arch], **overrides})


def model_from_arch(arch: dict[str, Any], *, dtype: Any = "float32",
                    scale_factor: int = 12, **options: Any) -> DCENet:
  """The ``DCENet`` of an architecture record (as weights files carry it).

  Args:
    arch: ``{"depth", "width", "iterations", "separable"}``.
    dtype: compute dtype, a name (``"float32"``, ``"bfloat16"``) or a dtype.
    scale_factor: Zero-DCE++'s down-scaling factor; ignored (1) for
      Zero-DCE, which has none.
    **options: other ``DCENet`` fields (``bias_init``, ``kernels``, ...).
  """
  fields = {k: arch[k] for k in ("depth", "width", "iterations", "separable")}
  return DCENet(**fields, dtype=jnp.dtype(dtype),
                scale_factor=scale_factor if fields["separable"] else 1,
                **options)


def count_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
