"""The 3x3 convolutions of DCE-Net, per platform, with their gradients.

``conv3x3`` and ``depthwise_conv3x3`` pick, through
``lax.platform_dependent``, kernels tuned for XLA:CPU where the computation
is lowered for the CPU and XLA's native convolutions on every other platform
(decided at lowering, so one exported program serves all). Every choice
gives the same values to float32 rounding; ``benchmarks.lowering`` proves
the GPU/TPU lowering uses the native convolutions. The per-layer timings
behind the CPU choices are in ``benchmarks/results/op_profile.json``.

Layouts: activations NHWC, kernels HWIO.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["conv3x3", "depthwise_conv3x3", "conv3x3_multiply_adds",
           "conv3x3_kernel_grad", "depthwise_kernel_grad",
           "TAPS_MAX_CHANNELS", "KERNEL_CHOICES"]


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
# which runs far below its usual speed on 3 channels
# (benchmarks/results/op_profile.json).
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
  filter-gradient convolution (``benchmarks/results/op_profile.json``) and
  has short partial sums. On a GPU or TPU the scan would be hundreds of tiny sequential
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
      ``benchmarks/results/op_profile.json``), with a custom gradient: the input gradient as
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
