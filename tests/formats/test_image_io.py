import numpy as np
import png
import pytest
from _support import optional
import tifffile
from PIL import Image

from zerodce_jax.formats import image_io


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def test_rgba16_png_round_trip(tmp_path, rng):
  x = (rng.random((5, 7, 3)) * 65535).astype(np.uint16)
  a = (rng.random((5, 7)) * 65535).astype(np.uint16)
  with open(tmp_path / "in.png", "wb") as f:
    png.Writer(7, 5, bitdepth=16, greyscale=False, alpha=True).write(
        f, np.dstack([x, a]).reshape(5, -1))
  rgb, info = image_io.read_image(str(tmp_path / "in.png"))
  assert (info.bit_depth, info.gray, info.format) == (16, False, "png")
  np.testing.assert_array_equal(image_io.from_float(rgb, 16), x)
  image_io.write_image(str(tmp_path / "out.png"), rgb, info)
  w, h, rows, meta = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
  back = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(5, 7, 4)
  assert meta["bitdepth"] == 16 and meta["alpha"]
  np.testing.assert_array_equal(back[..., :3], x)
  np.testing.assert_array_equal(back[..., 3], a)


def test_16bit_tiff_and_grey(tmp_path, rng):
  x = (rng.random((4, 6, 3)) * 65535).astype(np.uint16)
  tifffile.imwrite(tmp_path / "c.tif", x, photometric="rgb")
  rgb, info = image_io.read_image(str(tmp_path / "c.tif"))
  assert info.bit_depth == 16 and info.format == "tiff"
  np.testing.assert_array_equal(image_io.from_float(rgb, 16), x)
  g = (rng.random((4, 6)) * 65535).astype(np.uint16)
  Image.fromarray(g).save(tmp_path / "g.png")
  rgb, info = image_io.read_image(str(tmp_path / "g.png"))
  assert info.gray and info.bit_depth == 16 and rgb.shape == (4, 6, 3)
  image_io.write_image(str(tmp_path / "g_out.png"), rgb, info)
  back = np.asarray(Image.open(tmp_path / "g_out.png"))
  np.testing.assert_array_equal(back, g)


def test_palette_and_la(tmp_path):
  im = Image.new("P", (3, 2))
  im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
  im.putpixel((1, 1), 1)
  im.save(tmp_path / "p.png")
  rgb, info = image_io.read_image(str(tmp_path / "p.png"))
  np.testing.assert_array_equal(rgb[1, 1], [0, 1, 0])
  np.testing.assert_array_equal(rgb[0, 0], [1, 0, 0])
  Image.new("LA", (3, 2), (100, 50)).save(tmp_path / "la.png")
  rgb, info = image_io.read_image(str(tmp_path / "la.png"))
  assert info.gray and info.alpha is not None
  np.testing.assert_allclose(info.alpha, 50 / 255)


@pytest.mark.parametrize("orientation,expect", [
    (1, lambda a: a), (3, lambda a: a[::-1, ::-1]),
    (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))])
def test_exif_orientation(tmp_path, rng, orientation, expect):
  x = (rng.random((4, 6, 3)) * 255).astype(np.uint8)
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(x).save(tmp_path / "o.png", exif=exif)
  rgb, _ = image_io.read_image(str(tmp_path / "o.png"))
  np.testing.assert_array_equal(image_io.from_float(rgb, 8), expect(x))


def test_bad_files_name_the_file(tmp_path):
  cases = {"empty.jpg": b"", "text.png": b"hello world",
           "trunc.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"}
  for name, data in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(image_io.ImageError, match=name):
      image_io.read_image(str(tmp_path / name))
  with pytest.raises(image_io.ImageError, match="no such file"):
    image_io.read_image(str(tmp_path / "missing.jpg"))
  tifffile.imwrite(tmp_path / "nan.tif",
                   np.full((2, 2, 3), np.nan, np.float32), photometric="rgb")
  with pytest.raises(image_io.ImageError, match="NaN"):
    image_io.read_image(str(tmp_path / "nan.tif"))


def test_rounding_is_half_up_like_save_image():
  x = np.array([0.0, 0.5 / 255, 1.5 / 255 - 1e-7, 1.0, 1.2, -0.1])
  np.testing.assert_array_equal(image_io.from_float(x, 8), [0, 1, 1, 255, 255,
                                                           0])


def test_jpeg_cannot_hold_alpha_warns(tmp_path):
  info = image_io.ImageInfo(bit_depth=8, gray=False,
                            alpha=np.ones((2, 2), np.float32), format="png")
  with pytest.warns(UserWarning, match="cannot hold"):
    image_io.write_image(str(tmp_path / "x.jpg"), np.zeros((2, 2, 3)), info)
  assert Image.open(tmp_path / "x.jpg").mode == "RGB"


_FUZZ_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _valid_bytes(ext, tmp_path, rng):
  """A small valid image of that kind (16-bit for png/tiff: other decoders)."""
  path = tmp_path / f"valid{ext}"
  if ext in (".tif", ".tiff"):
    tifffile.imwrite(path, (rng.random((9, 11, 3)) * 65535).astype(np.uint16),
                     photometric="rgb")
  elif ext == ".png":
    with open(path, "wb") as f:
      png.Writer(11, 9, bitdepth=16, greyscale=False).write(
          f, (rng.random((9, 33)) * 65535).astype(np.uint16))
  else:
    Image.fromarray((rng.random((9, 11, 3)) * 255).astype(np.uint8)).save(
        path)
  return path.read_bytes()


def _read_or_one_line_error(path):
  try:
    rgb, info = image_io.read_image(str(path))
  except image_io.ImageError as e:
    assert str(e).startswith(str(path)) and "\n" not in str(e)
    return False
  assert rgb.ndim == 3 and rgb.shape[-1] == 3 and rgb.dtype == np.float32
  assert np.all(np.isfinite(rgb)) and rgb.min() >= 0 and rgb.max() <= 1
  return True


def test_fuzzed_files_under_every_extension(tmp_path):
  hypothesis = optional("hypothesis", extra="test")
  st = hypothesis.strategies
  rng = np.random.default_rng(0)
  valid = {ext: _valid_bytes(ext, tmp_path, rng) for ext in _FUZZ_EXTS}

  @hypothesis.settings(max_examples=300, deadline=None, database=None,
                       derandomize=True)
  @hypothesis.given(st.sampled_from(_FUZZ_EXTS), st.binary(max_size=300),
                    st.integers(0, 10**6), st.integers(0, 7),
                    st.sampled_from(["random", "truncated", "flipped"]))
  def check(ext, noise, where, bit, kind):
    data = valid[ext]
    if kind == "random":
      data = noise
    elif kind == "truncated":
      data = data[:where % len(data)]
    else:
      b = bytearray(data)
      b[where % len(b)] ^= 1 << bit
      data = bytes(b)
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(data)
    _read_or_one_line_error(path)

  check()


def test_pixel_limit_also_guards_16bit_png_and_tiff(tmp_path, rng,
                                                    monkeypatch):
  _valid_bytes(".png", tmp_path, rng)
  _valid_bytes(".tif", tmp_path, rng)
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # limit: 80 pixels
  for name in ("valid.png", "valid.tif"):
    with pytest.raises(image_io.ImageError, match="decompression bomb"):
      image_io.read_image(str(tmp_path / name))
