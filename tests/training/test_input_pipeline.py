import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
import ml_collections

from zerodce_jax.formats import image_io
from zerodce_jax.training import input_pipeline as ip, loop


def test_batch_order_is_deterministic_per_seed_and_resumable():
  a = [b.tolist() for b, _ in zip(ip.batch_indices(20, batch_size=4, seed=1),
                                  range(12))]
  b = [b.tolist() for b, _ in zip(ip.batch_indices(20, batch_size=4, seed=1),
                                  range(12))]
  c = [b.tolist() for b, _ in zip(ip.batch_indices(20, batch_size=4, seed=2),
                                  range(12))]
  assert a == b and a != c
  # each epoch (5 batches) visits every index once
  assert sorted(sum(a[:5], [])) == list(range(20))
  assert sorted(sum(a[5:10], [])) == list(range(20))
  assert a[:5] != a[5:10]  # a fresh permutation per epoch
  resumed = [b.tolist() for b, _ in zip(
      ip.batch_indices(20, batch_size=4, seed=1, start_step=7), range(5))]
  assert resumed == a[7:12]


def test_batches_layout_and_flips():
  images = (np.arange(8 * 4 * 4 * 3) % 256).astype(np.uint8).reshape(
      8, 4, 4, 3)
  it = ip.batches(images, batch_size=4, seed=0, num_devices=2,
                  random_flip=True)
  b = next(it)
  assert b.shape == (2, 2, 4, 4, 3) and b.dtype == np.float32
  flat = b.reshape(4, 4, 4, 3)
  idx = next(ip.batch_indices(8, batch_size=4, seed=0))
  for img, i in zip(flat, idx):
    orig = images[i] / 255
    assert (np.allclose(img, orig) or np.allclose(img, orig[:, ::-1]))
  again = next(ip.batches(images, batch_size=4, seed=0, num_devices=2,
                          random_flip=True))
  np.testing.assert_array_equal(b, again)
  with pytest.raises(ValueError, match="does not split"):
    next(ip.batches(images, batch_size=3, seed=0, num_devices=2))


def test_folder_loading_skips_corrupt_files_with_a_report(tmp_path):
  Image.new("RGB", (20, 10), (200, 10, 10)).save(tmp_path / "a.png")
  (tmp_path / "sub").mkdir()
  Image.new("L", (8, 8), 50).save(tmp_path / "sub" / "b.jpg")
  (tmp_path / "bad.jpg").write_bytes(b"nope")
  (tmp_path / "notes.txt").write_text("not an image")
  paths = image_io.list_images(str(tmp_path))
  assert [p.split("/")[-1] for p in paths] == ["a.png", "bad.jpg", "b.jpg"]
  reports = []
  images, kept = ip.load_resized(paths, 16, report=reports.append)
  assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
  assert len(reports) == 2
  assert "bad.jpg" in reports[0] and "b.jpg: grey image used as RGB" in \
      reports[1]
  assert images[1].min() == images[1].max() == 50  # grey -> RGB


def test_missing_folder_message(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a folder of images"):
    image_io.list_images("")
  with pytest.raises(FileNotFoundError, match="no images"):
    image_io.list_images(str(tmp_path))
  config = ml_collections.ConfigDict(
      {"seed": 0, "data": {"source": "folder", "path": "", "image_size": 8}})
  with pytest.raises(FileNotFoundError, match="data.path"):
    loop.load_training_images(config)


def test_synthetic_images_span_exposures():
  x = ip.synthetic_images(64, 16, seed=0)
  means = x.reshape(64, -1).mean(axis=1) / 255
  assert means.min() < 0.15 and means.max() > 0.6
  np.testing.assert_array_equal(x, ip.synthetic_images(64, 16, seed=0))


def test_prefetch_keeps_order_and_raises_errors():
  assert list(ip.prefetch(iter(range(10)), depth=3)) == list(range(10))

  def broken():
    yield 1
    raise RuntimeError("disk gone")

  it = ip.prefetch(broken())
  assert next(it) == 1
  with pytest.raises(RuntimeError, match="disk gone"):
    next(it)


def test_16bit_and_rgba_training_files(tmp_path):
  import png
  x = np.full((6, 6, 3), 30000, np.uint16)
  with open(tmp_path / "a16.png", "wb") as f:
    png.Writer(6, 6, bitdepth=16, greyscale=False).write(f, x.reshape(6, -1))
  Image.new("RGBA", (6, 6), (10, 20, 30, 128)).save(tmp_path / "b.png")
  reports = []
  images, kept = ip.load_resized(image_io.list_images(str(tmp_path)), 4,
                                 report=reports.append)
  assert images.shape == (2, 4, 4, 3)
  assert images[0].min() == images[0].max() == round(30000 / 65535 * 255)
  np.testing.assert_array_equal(images[1][0, 0], [10, 20, 30])
  assert any("RGBA" in r for r in reports)


def test_random_crop_and_exposure_mixing_are_deterministic():
  images = (np.random.default_rng(0).random((8, 12, 12, 3)) * 255).astype(
      np.uint8)
  kw = dict(batch_size=4, seed=3, crop_size=8, exposure_mixing=True)
  a = next(ip.batches(images, **kw))
  b = next(ip.batches(images, **kw))
  assert a.shape == (1, 4, 8, 8, 3)
  np.testing.assert_array_equal(a, b)
  assert a.min() >= 0 and a.max() <= 1
  c = next(ip.batches(images, **{**kw, "seed": 4}))
  assert not np.array_equal(a, c)


def test_exposure_mix_spans_exposures():
  x = np.full((200, 4, 4, 3), 0.5, np.float32)
  y = ip.exposure_mix(x, key=(0,), read_noise=0, shot_noise=0)
  means = y.mean(axis=(1, 2, 3))
  # 2**-3 .. 2**1.5 on linear light, re-encoded with gamma 1/2.2
  lo = (0.5**2.2 * 2**-3) ** (1 / 2.2)
  hi = min(1.0, (0.5**2.2 * 2**1.5) ** (1 / 2.2))
  assert means.min() >= lo - 1e-6 and means.max() <= hi + 1e-6
  assert means.min() < 0.3 and means.max() > 0.65


def _u8(n=6, size=12, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3),
                                              dtype=np.uint8)


def test_device_batch_gathers_and_splits_consistently():
  images = _u8()
  idx = jnp.asarray([4, 1, 1, 5], jnp.int32)
  kw = dict(seed=3, crop_size=8, random_flip=True, exposure_mixing=True)
  whole = ip.device_batch(jnp.asarray(images), idx, step=7, **kw)
  assert whole.shape == (4, 8, 8, 3) and whole.dtype == jnp.float32
  assert 0 <= float(whole.min()) and float(whole.max()) <= 1
  halves = [ip.device_batch(jnp.asarray(images), idx[i:i + 2], step=7,
                            first_position=i, **kw) for i in (0, 2)]
  np.testing.assert_array_equal(whole, np.concatenate(halves))
  jitted = jax.jit(lambda s: ip.device_batch(jnp.asarray(images), idx,
                                             step=s, **kw))(7)
  np.testing.assert_allclose(whole, jitted, atol=1e-6)
  assert not np.allclose(whole, ip.device_batch(jnp.asarray(images), idx,
                                                step=8, **kw))
  plain = ip.device_batch(jnp.asarray(images), idx, step=0, seed=0)
  np.testing.assert_allclose(plain, images[np.asarray(idx)] / np.float32(255),
                             rtol=0, atol=1e-7)


def test_device_batch_flips_and_crops_are_windows_of_the_image():
  images = _u8(n=4, size=10)
  idx = jnp.asarray(np.arange(4).repeat(8), jnp.int32)
  flipped = ip.device_batch(jnp.asarray(images), idx, step=1, seed=0,
                            random_flip=True)
  src = images[np.asarray(idx)] / np.float32(255)
  eq = lambda a, b: np.allclose(a, b, rtol=0, atol=1e-7)
  same = [eq(f, s) for f, s in zip(flipped, src)]
  mirror = [eq(f, s[:, ::-1]) for f, s in zip(flipped, src)]
  assert all(a or b for a, b in zip(same, mirror))
  assert 0 < sum(mirror) < len(mirror)
  crops = np.asarray(ip.device_batch(jnp.asarray(images), idx, step=1,
                                     seed=0, crop_size=6))
  offsets = set()
  for c, s in zip(crops, src):
    hits = [(y, x) for y in range(5) for x in range(5)
            if eq(c, s[y:y + 6, x:x + 6])]
    assert hits
    offsets.add(hits[0])
  assert len(offsets) > 3
  with pytest.raises(ValueError, match="crop 11 larger"):
    ip.device_batch(jnp.asarray(images), idx, step=1, seed=0, crop_size=11)


def test_index_batches_are_slices_of_the_global_batch():
  full = next(ip.index_batches(20, batch_size=8, seed=2, num_devices=2))
  parts = [next(ip.index_batches(20, batch_size=8, seed=2, num_devices=1,
                                 process_index=p, process_count=2))
           for p in (0, 1)]
  np.testing.assert_array_equal(full.reshape(-1),
                                np.concatenate(parts).reshape(-1))
  host = [next(ip.batches(_u8(20, 4), batch_size=8, seed=2, num_devices=1,
                          process_index=p, process_count=2,
                          random_flip=True)) for p in (0, 1)]
  both = next(ip.batches(_u8(20, 4), batch_size=8, seed=2, num_devices=2,
                         random_flip=True))
  np.testing.assert_array_equal(np.concatenate(host), both)


def test_data_pack_writes_resized_jpegs(tmp_path, capsys):
  from zerodce_jax import cli
  src = tmp_path / "src"
  (src / "sub").mkdir(parents=True)
  rng = np.random.default_rng(0)
  for name in ("a.png", "sub/b.jpg"):
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), np.uint8)).save(
        src / name)
  (src / "broken.png").write_bytes(b"\x89PNG not really")
  out = tmp_path / "packed"
  assert cli.main(["data", "pack", str(src), "--out", str(out), "--size",
                   "16", "--quality", "95"]) == 0
  got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
  assert got == ["a.jpg", "sub/b.jpg"]
  captured = capsys.readouterr()
  assert "2 images, 16x16 JPEG q95" in captured.out
  assert "broken.png" in captured.err
  packed, _ = ip.load_resized(image_io.list_images(str(out)), 16)
  direct, _ = ip.load_resized([str(src / "a.png"), str(src / "sub/b.jpg")],
                              16)
  assert packed.shape == (2, 16, 16, 3)
  assert np.abs(packed.astype(int) - direct).mean() < 4  # JPEG error only
  assert not list(out.rglob("*.part"))
  (tmp_path / "empty").mkdir()
  assert cli.main(["data", "pack", str(tmp_path / "empty"), "--out",
                   str(out)]) == 2
  assert cli.main(["data", "pack", str(src)]) == 2
