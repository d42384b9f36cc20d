"""Image files <-> float32 RGB arrays in [0, 1] (HWC), losing nothing.

Reading keeps what writing needs to give the user back the same kind of file:
bit depth (8 or 16), grey or colour, the alpha channel (kept aside, restored
unchanged on write) and the format. EXIF orientation is applied on read, so
the array is upright (the written file then needs no orientation tag).

Pillow handles 8-bit files and 16-bit grey ones, but not 16-bit colour: 16-bit
PNG goes through ``pypng`` and TIFF through ``tifffile`` (both pure Python).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Sequence

import numpy as np
import png  # pypng
from PIL import Image, UnidentifiedImageError

from zerodce_jax.formats import atomic

__all__ = ["ImageInfo", "ImageError", "read_image", "write_image",
           "check_pixels", "to_float", "from_float", "FORMATS",
           "IMAGE_EXTENSIONS", "list_images", "list_images_or_empty",
           "side_by_side"]

# output extension -> format name
FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp",
           ".tif": "tiff", ".tiff": "tiff", ".webp": "webp"}


class ImageError(ValueError):
  """An image file cannot be read or written; the message names the file."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """What ``write_image`` needs to give back the same kind of file.

  Attributes:
    bit_depth: 8 or 16.
    gray: the file had one colour channel.
    alpha: the alpha channel in [0, 1] (``[H, W]``), or None.
    format: ``png``, ``jpeg``, ``tiff``, ``bmp``, ...
  """
  bit_depth: int
  gray: bool
  alpha: np.ndarray | None
  format: str


def to_float(arr: np.ndarray) -> np.ndarray:
  """uint8 / uint16 / float array -> float32 in [0, 1] (floats are checked)."""
  if arr.dtype == np.uint8:
    return arr.astype(np.float32) / 255.0
  if arr.dtype == np.uint16:
    return arr.astype(np.float32) / 65535.0
  if arr.dtype == np.bool_:
    return arr.astype(np.float32)
  if np.issubdtype(arr.dtype, np.floating):
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
      raise ValueError("image holds NaN or infinite values")
    return np.clip(arr, 0.0, 1.0)
  if np.issubdtype(arr.dtype, np.integer):  # Pillow's 32-bit 'I' mode
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
      raise ValueError(f"{arr.dtype} values outside 0..65535")
    return arr.astype(np.float32) / 65535.0
  raise ValueError(f"unsupported pixel type {arr.dtype}")


def from_float(x: np.ndarray, bit_depth: int) -> np.ndarray:
  """float in [0, 1] -> uint8/uint16, rounding half up (as torchvision's
  ``save_image``: ``x * 255 + 0.5``, clamped, truncated)."""
  peak = 255 if bit_depth == 8 else 65535
  out = np.floor(np.clip(x, 0.0, 1.0) * peak + 0.5)
  return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _orient(arr: np.ndarray, orientation: int | None) -> np.ndarray:
  """Applies an EXIF orientation (1-8) so the array is upright."""
  o = orientation or 1
  ops = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1],
         4: lambda a: a[::-1], 5: lambda a: np.swapaxes(a, 0, 1),
         6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
         7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
         8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
  return np.ascontiguousarray(ops.get(o, ops[1])(arr))


def _split(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
  """``[H, W]`` / ``[H, W, 1..4]`` -> (colour ``[H, W, 1|3]``, alpha, gray)."""
  if arr.ndim == 2:
    arr = arr[..., None]
  if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
    raise ValueError(f"unsupported image layout {arr.shape}")
  c = arr.shape[-1]
  alpha = arr[..., -1] if c in (2, 4) else None
  colour = arr[..., :1] if c in (1, 2) else arr[..., :3]
  return colour, alpha, c in (1, 2)


def _read_png16(path: str) -> tuple[np.ndarray, int]:
  w, h, rows, meta = png.Reader(filename=path).asDirect()
  planes = meta["planes"]
  arr = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(
      h, w, planes)
  return arr, meta["bitdepth"]


def _png_header(path: str) -> tuple[int, int, int] | None:
  """``(width, height, bit_depth)`` from a PNG's IHDR, or None."""
  with open(path, "rb") as f:
    head = f.read(26)
  if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26:
    return None
  w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
  return w, h, head[24]


def check_pixels(width: int, height: int) -> None:
  """Pillow's decompression-bomb limit (twice ``Image.MAX_IMAGE_PIXELS``),
  for the decoders that lack one: 16-bit PNG, TIFF, video frames."""
  limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
  if limit and width * height > limit:
    raise Image.DecompressionBombError(
        f"{width}x{height} pixels exceed the limit of {limit} "
        "(decompression bomb?)")


def read_image(path: str) -> tuple[np.ndarray, ImageInfo]:
  """Reads an image file as upright RGB float32 in [0, 1].

  Args:
    path: any format Pillow reads (JPEG, PNG, BMP, WebP, ...), 16-bit PNG,
      TIFF (8/16-bit, float). Grey images are replicated to RGB; palette
      images are expanded; alpha is split off into ``ImageInfo.alpha``.

  Returns:
    ``(rgb, info)``: ``[H, W, 3]`` float32 and the file's ``ImageInfo``.

  Raises:
    ImageError: missing, empty, truncated, corrupt or unsupported files, and
      float images holding NaN/Inf; the message names the file.
  """
  if not os.path.exists(path):
    raise ImageError(f"{path}: no such file")
  if os.path.isdir(path):
    raise ImageError(f"{path}: is a folder, not an image")
  if os.path.getsize(path) == 0:
    raise ImageError(f"{path}: empty file")
  ext = os.path.splitext(path)[1].lower()
  try:
    png_header = _png_header(path)
    if ext in (".tif", ".tiff"):
      import tifffile  # noqa: PLC0415 - slow to import; TIFF only
      with tifffile.TiffFile(path) as tif:
        shape = tif.pages[0].shape  # (H, W) or (H, W, C): from the header
        check_pixels(int(shape[1]) if len(shape) > 1 else 1,
                      int(shape[0]))
        arr = tif.asarray()
        tag = tif.pages[0].tags.get("Orientation")
        orientation = int(tag.value) if tag is not None else 1
      fmt = "tiff"
    elif png_header is not None and png_header[2] == 16:
      check_pixels(png_header[0], png_header[1])
      arr, _ = _read_png16(path)
      orientation, fmt = 1, "png"
    else:
      with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
          im.load()
          fmt = (im.format or ext.lstrip(".")).lower()
          orientation = im.getexif().get(0x0112, 1)
          if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
          elif im.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("L" if im.mode == "1" else "RGB")
          elif im.mode == "PA":
            im = im.convert("RGBA")
          arr = np.asarray(im)  # L, LA, RGB, RGBA, I;16 (16-bit grey), I, F
      fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
  except (UnidentifiedImageError, Image.DecompressionBombError,
          Image.DecompressionBombWarning) as e:
    raise ImageError(f"{path}: not a readable image "
                     f"({' '.join(str(e).split())[:300]})") from None
  except MemoryError:
    raise ImageError(f"{path}: too large to decode in memory") from None
  except Exception as e:  # noqa: BLE001 - the file is untrusted: Pillow,
    # pypng and tifffile raise many kinds (OSError, SyntaxError, struct.error,
    # IndexError...) on damaged data; each is one clear line for this file.
    raise ImageError(f"{path}: cannot read image ({type(e).__name__}: "
                     f"{' '.join(str(e).split())[:200]})") from None
  try:
    colour, alpha, gray = _split(np.asarray(arr))
    bit_depth = 8 if colour.dtype in (np.uint8, np.bool_) else 16
    rgb = to_float(colour)
    alpha = None if alpha is None else to_float(alpha)
  except ValueError as e:
    raise ImageError(f"{path}: {e}") from None
  rgb = _orient(rgb, orientation)
  if alpha is not None:
    alpha = _orient(alpha, orientation)
  if gray:
    rgb = np.repeat(rgb, 3, axis=-1)
  return rgb, ImageInfo(bit_depth=bit_depth, gray=gray, alpha=alpha,
                        format=fmt)


def write_image(path: str, rgb: np.ndarray, info: ImageInfo, *,
                format: str | None = None, quality: int = 95) -> None:
  """Writes an enhanced image as the same kind of file it came from.

  Args:
    path: output file; written atomically (temporary file, then rename).
    rgb: ``[H, W, 3]`` float in [0, 1].
    info: from ``read_image``: bit depth, grey, alpha are restored.
    format: override the format (``png``, ``jpeg``, ``tiff``, ...); default
      from ``path``'s extension.
    quality: JPEG/WebP quality.

  Grey inputs are written grey (the mean of the three enhanced channels).
  A format that cannot hold 16 bits or alpha (JPEG, BMP) gets 8-bit RGB, with
  a warning, rather than a silent loss: pick ``png`` or ``tiff`` to keep them.
  """
  fmt = format or FORMATS.get(os.path.splitext(path)[1].lower())
  if fmt is None:
    raise ImageError(f"{path}: unknown output format (use one of "
                     f"{', '.join(sorted(set(FORMATS)))})")
  colour = rgb.mean(axis=-1, keepdims=True) if info.gray else rgb
  planes = [colour] + ([info.alpha[..., None]] if info.alpha is not None
                       else [])
  arr = np.concatenate(planes, axis=-1)
  depth = info.bit_depth
  if fmt in ("jpeg", "bmp", "webp") and (depth == 16 or (
      info.alpha is not None and fmt != "webp")):
    warnings.warn(f"{path}: {fmt} cannot hold 16 bits or alpha; writing "
                  "8-bit without alpha (use --format png to keep them)",
                  stacklevel=2)
    depth, arr = 8, colour
  data = from_float(arr, depth)
  if data.shape[-1] == 1:
    data = data[..., 0]
  try:
    with atomic.atomic_path(path) as tmp:
      _write_file(tmp, data, fmt, depth, quality)
  except Exception as e:  # noqa: BLE001 - one clear error, nothing left
    raise ImageError(f"{path}: cannot write image ({e})") from None


def _write_file(tmp: str, data: np.ndarray, fmt: str, depth: int,
                quality: int) -> None:
  """Encodes ``data`` (uint8/uint16, HW or HWC) into the file ``tmp``."""
  if fmt == "tiff":
    import tifffile  # noqa: PLC0415 - slow to import; TIFF only
    tifffile.imwrite(tmp, data, photometric="minisblack" if data.ndim == 2
                     else "rgb")
  elif fmt == "png" and depth == 16:
    h, w = data.shape[:2]
    planes_n = 1 if data.ndim == 2 else data.shape[-1]
    writer = png.Writer(w, h, bitdepth=16, greyscale=planes_n in (1, 2),
                        alpha=planes_n in (2, 4))
    with open(tmp, "wb") as f:
      writer.write(f, data.reshape(h, w * planes_n))
  else:
    im = Image.fromarray(data)
    kw = {"quality": quality} if fmt in ("jpeg", "webp") else {}
    im.save(tmp, format=fmt.upper(), **kw)


# ------------------------------------------------------------- folders --
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def list_images_or_empty(root: str, *,
                         extensions: Sequence[str] = IMAGE_EXTENSIONS
                         ) -> list[str]:
  """Files under ``root`` with one of ``extensions`` (recursive; images by
  default), sorted."""
  out = []
  for d, _, files in os.walk(root):
    out += [os.path.join(d, f) for f in files
            if f.lower().endswith(tuple(extensions))]
  return sorted(out)


def list_images(root: str) -> list[str]:
  """Image files under ``root`` (recursive), sorted; raises if none."""
  if not root or not os.path.isdir(root):
    raise FileNotFoundError(f"{root!r}: not a folder of images")
  out = list_images_or_empty(root)
  if not out:
    raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
  return out


def side_by_side(before: np.ndarray, after: np.ndarray, *,
                 gap: int = 8) -> np.ndarray:
  """``[H, 2W + gap, 3]`` image: input left, enhanced right, white gap."""
  h, w = before.shape[:2]
  out = np.ones((h, 2 * w + gap, 3), np.float32)
  out[:, :w], out[:, w + gap:] = before, after
  return out
