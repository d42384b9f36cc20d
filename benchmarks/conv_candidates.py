"""Alternative algorithms for the 3x3 'same' convolution, measured against
XLA's own (``benchmarks/op_profile.py``; results in
benchmarks/results/op_profile.json).

Each function takes and returns what ``kernels.conv3x3`` does (``x``
``[B, H, W, Cin]``, ``kernel`` ``[3, 3, Cin, Cout]`` HWIO, zero padding,
output ``[B, H, W, Cout]``) and gives the same values to float32 rounding
(``tests/test_conv_candidates.py``). Only ``multiply_adds`` is used by the
model (``kernels.conv3x3`` on CPU, for the RGB first layer); the others are
the measured alternatives that did not beat XLA's convolution on the CPUs we
timed, kept so the measurement can be repeated on other machines.

- ``im2col``: the nine shifted copies of the input side by side
  (``[B*H*W, 9*Cin]``) meet the kernel in one matrix product.
- ``winograd_f2x3``: Winograd minimal filtering F(2x2, 3x3) (Lavin & Gray,
  2016): 16 products per 2x2 output tile where direct convolution does 36,
  as 16 batched ``[tiles, Cin] x [Cin, Cout]`` matrix products between
  elementwise input and output transforms.
- ``split_concat``: for an input that is a concatenation of two halves (the
  skip connections), the sum of two convolutions of the halves, which spares
  the concatenation's copy.
- ``multiply_adds``: ``kernels.conv3x3_multiply_adds``, ``9 * Cin`` broadcast
  multiply-adds in one fused loop (few input channels only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from zerodce_jax.core import kernels

__all__ = ["xla", "im2col", "winograd_f2x3", "split_concat", "CANDIDATES"]

# F(2x2, 3x3) kernel transform G (4x3); the input transform B^T and output
# transform A^T are written out as additions in _bt and _at.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5],
               [0.0, 0.0, 1.0]], np.float32)


def xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """XLA's convolution (``lax.conv_general_dilated``), the reference."""
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def im2col(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The convolution as one ``[B*H*W, 9*Cin] x [9*Cin, Cout]`` product."""
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, dy:dy + h, dx:dx + w, :]
                          for dy in range(3) for dx in range(3)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", cols,
                    kernel.reshape(-1, kernel.shape[-1]))


def _bt(d):
  """B^T d along the first index of a 4-list (of arrays or of lists)."""
  if isinstance(d[0], list):
    cols = [_bt([row[j] for row in d]) for j in range(len(d[0]))]
    return [[col[a] for col in cols] for a in range(4)]
  return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _at(m):
  """A^T m along the first index of a 4-list (of arrays or of lists)."""
  if isinstance(m[0], list):
    cols = [_at([row[j] for row in m]) for j in range(len(m[0]))]
    return [[col[a] for col in cols] for a in range(2)]
  return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def winograd_f2x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Winograd F(2x2, 3x3): 2x2 output tiles from 4x4 input tiles."""
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  th, tw = -(-h // 2), -(-w // 2)
  xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - w),
                   (0, 0)))
  u = jnp.einsum("ai,ijco,bj->abco", _G, kernel, _G).reshape(16, cin, cout)
  tiles = [[xp[:, i:i + 2 * th:2, j:j + 2 * tw:2, :] for j in range(4)]
           for i in range(4)]
  v = [_bt(row) for row in _bt(tiles)]
  v = jnp.stack([e for row in v for e in row]).reshape(16, b * th * tw, cin)
  m = jnp.einsum("tnc,tco->tno", v, u).reshape(4, 4, b, th, tw, cout)
  y = [_at(row) for row in _at([[m[a, c] for c in range(4)]
                                for a in range(4)])]
  y = jnp.stack([jnp.stack(y[p], axis=3) for p in range(2)], axis=2)
  return y.reshape(b, 2 * th, 2 * tw, cout)[:, :h, :w]


def split_concat(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``conv(cat(a, b), k)`` as ``conv(a, k_a) + conv(b, k_b)`` (halves)."""
  c = x.shape[-1] // 2
  return (xla(x[..., :c], kernel[:, :, :c]) +
          xla(x[..., c:], kernel[:, :, c:]))


CANDIDATES = {"xla": xla, "im2col": im2col, "winograd_f2x3": winograd_f2x3,
              "split_concat": split_concat,
              "multiply_adds": kernels.conv3x3_multiply_adds}
