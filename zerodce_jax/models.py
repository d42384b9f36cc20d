"""DCE-Net: the curve-estimation CNN of Zero-DCE and Zero-DCE++ (flax.linen).

Layout: images NHWC float in [0, 1]; the network returns
``(enhanced, maps)`` where ``maps`` are the curve parameters in the *paper's*
sign (``a``, see ``zerodce_jax.curves``), ``[B, H, W, 3 * iterations]`` for
Zero-DCE and ``[B, H, W, 3]`` (one map shared by every iteration) for
Zero-DCE++.

The parameter tree is a file format (checkpoints and the official-weight
converter depend on it): layers are named ``conv1`` .. ``conv{depth}``; a
separable layer holds ``depthwise`` (3x3, one filter per channel) and
``pointwise`` (1x1) sub-layers. Kernels are HWIO.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from zerodce_jax import curves
from zerodce_jax import resize

__all__ = [
    "DCENet", "Conv3x3", "conv3x3", "SeparableConv", "DepthwiseConv3x3",
    "depthwise_conv3x3", "ZeroDCE", "ZeroDCEpp", "ARCHITECTURES", "make_model",
    "count_params", "skip_sources", "conv3x3_kernel_grad",
    "depthwise_kernel_grad", "conv3x3_multiply_adds", "TAPS_MAX_CHANNELS",
    "KERNEL_CHOICES",
]


def torch_default_bias_init(fan_in: int) -> Callable[..., jax.Array]:
  """PyTorch's default conv bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
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
    return torch_default_bias_init(fan_in)
  raise ValueError(f"bias_init must be 'zeros' or 'torch', got {kind!r}")


def _kernel_and_bias(module: nn.Module, x: jax.Array,
                     kernel_shape: tuple[int, ...], fan_in: int
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Declares ``kernel`` (N(0, 0.02)) and ``bias`` on ``module`` and promotes
  ``x`` and both to the module's compute dtype."""
  kernel = module.param("kernel", nn.initializers.normal(stddev=0.02),
                        kernel_shape, module.param_dtype)
  bias = module.param("bias", _bias_init(module.bias_init, fan_in),
                      (kernel_shape[-1],), module.param_dtype)
  return nn.dtypes.promote_dtype(x, kernel, bias, dtype=module.dtype)


def _conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


KERNEL_CHOICES = ("auto", "native", "tuned")


def _per_platform(kernels: str, *args: jax.Array, tuned: Callable,
                  native: Callable) -> jax.Array:
  """``tuned(*args)`` lowered for CPU and ``native(*args)`` elsewhere
  (``kernels="auto"``), or the one ``kernels`` names."""
  if kernels not in KERNEL_CHOICES:
    raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got "
                     f"{kernels!r}")
  if kernels == "native":
    return native(*args)
  if kernels == "tuned":
    return tuned(*args)
  return jax.lax.platform_dependent(*args, cpu=tuned, default=native)


def conv3x3(x: jax.Array, kernel: jax.Array, *,
            kernels: str = "auto") -> jax.Array:
  """3x3 'same' convolution (zero padding), NHWC x HWIO.

  Args:
    x: ``[B, H, W, Cin]``.
    kernel: ``[3, 3, Cin, Cout]``.
    kernels: ``"native"``: XLA's convolution and its native gradients;
      ``"tuned"``: XLA's forward convolution (for up to
      ``TAPS_MAX_CHANNELS`` input channels: broadcast multiply-adds) and
      input gradient, with the kernel gradient from ``conv3x3_kernel_grad``
      (a ``lax.scan`` of blocked im2col matrix products), tuned for XLA:CPU;
      ``"auto"`` (default): the
      tuned kernel where the computation is lowered for CPU and the native
      one for every other platform (``lax.platform_dependent``, decided at
      lowering, so one exported program serves both).

  Returns:
    ``[B, H, W, Cout]``; every choice gives the same values to float32
    rounding.
  """
  return _per_platform(kernels, x, kernel, tuned=_conv3x3_tuned,
                       native=_conv_same)


# Up to this many input channels (the RGB first layer), the tuned forward
# convolution is broadcast multiply-adds rather than XLA:CPU's convolution,
# which runs far below its usual speed on 3 channels (README, "Performance").
TAPS_MAX_CHANNELS = 4


def conv3x3_multiply_adds(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """3x3 'same' convolution as ``9 * Cin`` broadcast multiply-adds, summed
  pairwise; ``[B, H, W, Cin] x [3, 3, Cin, Cout] -> [B, H, W, Cout]``. One
  fused loop on XLA:CPU; worth it for a few input channels only."""
  _, h, w, cin = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  terms = [xp[:, a:a + h, b:b + w, c:c + 1] * kernel[a, b, c]
           for a in range(3) for b in range(3) for c in range(cin)]
  while len(terms) > 1:  # pairwise: shorter rounding chains than a row sum
    terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
             for i in range(0, len(terms), 2)]
  return terms[0]


def _conv3x3_tuned_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
  if x.shape[-1] <= TAPS_MAX_CHANNELS:
    return conv3x3_multiply_adds(x, kernel)
  return _conv_same(x, kernel)


@jax.custom_vjp
def _conv3x3_tuned(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _conv3x3_tuned_forward(x, kernel)


def conv3x3_kernel_grad(x: jax.Array, g: jax.Array, *,
                        rows: int = 2) -> jax.Array:
  """Gradient of ``sum(g * conv3x3(x, k))`` w.r.t. ``k`` (the CPU kernel).

  Args:
    x: [B, H, W, Cin] input of the convolution.
    g: [B, H, W, Cout] cotangent of its output.
    rows: image rows per block (keyword-only).

  Returns:
    [3, 3, Cin, Cout] float32 kernel gradient (accumulated in float32, also
    for bfloat16 inputs).

  ``dk = im2col(x)^T @ g``, computed block by block of ``rows`` image rows
  under ``lax.scan``: each block's [B*rows*W, 9*Cin] patch matrix stays in
  cache and meets one matrix product, which on XLA:CPU beats its own
  filter-gradient convolution (README, "Performance") and has short partial
  sums. On a GPU or TPU the scan would be hundreds of tiny sequential
  kernels, which is why ``conv3x3`` uses it for CPU lowering only.
  """
  cin, cout = x.shape[-1], g.shape[-1]

  def block(xs, gs):
    w = gs.shape[2]
    cols = jnp.concatenate([xs[:, dy:dy + rows, dx:dx + w, :]
                            for dy in range(3) for dx in range(3)], axis=-1)
    return jnp.einsum("bhwk,bhwo->ko", cols, gs.astype(cols.dtype),
                      preferred_element_type=jnp.float32)

  return _sum_over_row_blocks(block, x, g, rows=rows).reshape(3, 3, cin, cout)


def _sum_over_row_blocks(block: Callable, x: jax.Array, g: jax.Array, *,
                         rows: int) -> jax.Array:
  """``sum_i block(xs_i, gs_i)`` over blocks of ``rows`` image rows under
  ``lax.scan``: ``xs_i`` ``[B, rows + 2, W + 2, Cin]`` is the zero-padded
  input window a 3x3 'same' convolution reads for the block's output rows
  ``gs_i`` ``[B, rows, W, Cout]`` (H padded with zero rows to a multiple of
  ``rows``). The kernel gradients' shared loop."""
  h = x.shape[1]
  extra = -h % rows
  xp = jnp.pad(x, ((0, 0), (1, 1 + extra), (1, 1), (0, 0)))
  g = jnp.pad(g, ((0, 0), (0, extra), (0, 0), (0, 0)))

  def step(_, i):
    xs = jax.lax.dynamic_slice_in_dim(xp, i * rows, rows + 2, axis=1)
    gs = jax.lax.dynamic_slice_in_dim(g, i * rows, rows, axis=1)
    return None, block(xs, gs)

  _, parts = jax.lax.scan(step, None, jnp.arange((h + extra) // rows))
  return parts.sum(axis=0)


def _conv3x3_fwd(x, kernel):
  return _conv3x3_tuned_forward(x, kernel), (x, kernel)


def _conv3x3_bwd(res, g):
  x, kernel = res
  dx = jax.vjp(lambda x_: _conv_same(x_, kernel), x)[1](g)[0]
  return dx, conv3x3_kernel_grad(x, g).astype(kernel.dtype)


_conv3x3_tuned.defvjp(_conv3x3_fwd, _conv3x3_bwd)


class Conv3x3(nn.Module):
  """3x3 'same' conv with bias (``conv3x3``); params ``kernel``, ``bias``."""
  features: int
  bias_init: str = "zeros"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    x, kernel, bias = _kernel_and_bias(self, x, (3, 3, cin, self.features),
                                       9 * cin)
    return conv3x3(x, kernel, kernels=self.kernels) + bias


def depthwise_conv3x3(x: jax.Array, kernel: jax.Array, *,
                      kernels: str = "auto") -> jax.Array:
  """3x3 depthwise 'same' convolution (zero padding).

  Args:
    x: ``[B, H, W, C]``.
    kernel: ``[3, 3, 1, C]`` (HWIO with one input channel per group), as
      ``lax.conv_general_dilated(..., feature_group_count=C)`` takes it.
    kernels: ``"native"``: XLA's grouped convolution; ``"tuned"``: 9
      shifted products, elementwise work that XLA:CPU fuses into one loop
      (faster there than its grouped convolution, forward and backward:
      README, "Performance"), with a custom gradient: the input gradient as
      the same products with the flipped kernel, the kernel gradient from
      ``depthwise_kernel_grad``; ``"auto"`` (default): tuned where lowered for
      CPU, native elsewhere (``lax.platform_dependent``).

  Returns:
    ``[B, H, W, C]``, the same values (to float32 rounding) for every choice.
  """
  return _per_platform(kernels, x, kernel, tuned=_depthwise_shifted,
                       native=_depthwise_native)


def _depthwise_native(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=x.shape[-1])


def _shifted_products(x: jax.Array, kernel: jax.Array) -> jax.Array:
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = None
  for a in range(3):
    for b in range(3):
      term = xp[:, a:a + h, b:b + w, :] * kernel[a, b, 0]
      out = term if out is None else out + term
  return out


def depthwise_kernel_grad(x: jax.Array, g: jax.Array, *,
                          rows: int = 8) -> jax.Array:
  """Gradient of ``sum(g * depthwise_conv3x3(x, k))`` w.r.t. ``k``.

  Args:
    x: ``[B, H, W, C]`` input of the convolution.
    g: ``[B, H, W, C]`` cotangent of its output.
    rows: image rows per block (keyword-only).

  Returns:
    ``[3, 3, 1, C]`` float32: ``dk[a, b, 0, c] = sum(xpad[:, a:a+H, b:b+W, c]
    * g[..., c])``, accumulated block by block of ``rows`` image rows under
    ``lax.scan`` so that each block's nine products stay in cache (the
    autodiff of the shifted products instead pads nine full-size gradients).
  """
  def block(xs, gs):
    w = gs.shape[2]
    return jnp.stack([
        jnp.sum((xs[:, a:a + rows, d:d + w, :] * gs).astype(jnp.float32),
                axis=(0, 1, 2)) for a in range(3) for d in range(3)])

  return _sum_over_row_blocks(block, x, g, rows=rows).reshape(
      3, 3, 1, x.shape[-1])


@jax.custom_vjp
def _depthwise_shifted(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _shifted_products(x, kernel)


def _depthwise_shifted_fwd(x, kernel):
  return _shifted_products(x, kernel), (x, kernel)


def _depthwise_shifted_bwd(res, g):
  x, kernel = res
  # the input gradient is the correlation with the flipped kernel: the same
  # shifted products, on g
  return (_shifted_products(g, kernel[::-1, ::-1]),
          depthwise_kernel_grad(x, g).astype(kernel.dtype))


_depthwise_shifted.defvjp(_depthwise_shifted_fwd, _depthwise_shifted_bwd)


class DepthwiseConv3x3(nn.Module):
  """Depthwise 3x3 conv with bias; params ``kernel [3, 3, 1, C]``, ``bias [C]``."""
  bias_init: str = "zeros"
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
  dtype: Any = jnp.float32
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = DepthwiseConv3x3(bias_init=self.bias_init, dtype=self.dtype,
                         kernels=self.kernels, name="depthwise")(x)
    return Pointwise(self.features, bias_init=self.bias_init,
                     dtype=self.dtype, name="pointwise")(x)


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
        y = SeparableConv(features, bias_init=self.bias_init, dtype=self.dtype,
                          kernels=self.kernels, name=f"conv{k}")(inp)
      else:
        y = Conv3x3(features, bias_init=self.bias_init, dtype=self.dtype,
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


def count_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
