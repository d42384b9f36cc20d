"""`zerodce serve`: how long a preview takes, over HTTP on loopback.

    python -m benchmarks.serve [--quick] [--out benchmarks/results]

A 1152x864 (1 MP) dark photo is uploaded to a server in this process; the
first preview (the network's curve maps, then cached) is timed, then the
previews after a change of strength or exposure alone (curves only), with
the bundled models' default controls (exposure and denoising) and with the
plain curves. Median of the repeats, HTTP, rendering and JPEG included.
Writes OUT/serve.json; ``markdown_table(doc)`` makes the docs' table.
"""

import http.client
import io
import json
import os
import statistics
import tempfile
import time
import urllib.parse

import numpy as np
from PIL import Image

from benchmarks import _common

SIZE = (864, 1152)


def _get(srv, path, body=None, headers=None, method="GET"):
  conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
  h = {"Host": f"127.0.0.1:{srv.port}", "X-Zerodce": "1", **(headers or {})}
  try:
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()
  finally:
    conn.close()


def measure(model: str, *, repeats: int, size=SIZE) -> dict:
  from zerodce_jax.apps import serve
  rng = np.random.default_rng(3)
  yy, xx = np.mgrid[:size[0], :size[1]]
  scene = 0.5 + 0.3 * np.sin(xx / 41.0) * np.cos(yy / 53.0)
  rgb = np.clip(scene[..., None] * 40 + rng.normal(0, 3, size + (3,)), 0,
                255).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
  with tempfile.TemporaryDirectory() as d:
    engine = serve.Engine(tmp_parent=d)
    with serve.running(engine) as srv:
      status, body = _get(srv, "/api/images", buf.getvalue(),
                          {"X-Filename": urllib.parse.quote("dark.jpg")},
                          method="POST")
      assert status == 200, body
      image_id = json.loads(body)["id"]
      base = f"/api/images/{image_id}/preview?model={model}&"

      def timed(query):
        t = time.perf_counter()
        status, data = _get(srv, base + query)
        assert status == 200 and data[:2] == b"\xff\xd8", (status, data[:200])
        return time.perf_counter() - t

      out = {"model": model, "width": size[1], "height": size[0]}
      out["first_preview_s"] = timed("")
      for label, queries in (
          ("default_strength_change_s", [f"strength={s}" for s in
                                         ("1.2", "1.4", "0.8")]),
          ("default_exposure_change_s", [f"exposure={e}" for e in
                                         ("0.4", "0.5", "0.55")]),
          ("plain_strength_change_s", [f"strength={s}&denoise=off" for s in
                                       ("1.2", "1.4", "0.8")])):
        timed(queries[0])  # compiles this combination
        ts = [timed(q) for q in queries * repeats]
        out[label] = statistics.median(ts)
  return out


def markdown_table(doc) -> str:
  load = doc.get("load_average")
  rows = [f"A {doc['records'][0]['width']}x{doc['records'][0]['height']} "
          "photo, seconds per preview over HTTP on loopback (median)"
          + (f"; load average {load:.1f} when it ended (other work shared "
             "the cores)" if load is not None else "") + ".", "",
          "| model | first preview (network) | strength change, default "
          "controls | exposure change, default controls | strength change, "
          "no denoising |", "|---|---|---|---|---|"]
  for r in doc["records"]:
    rows.append(f"| {r['model']} | {r['first_preview_s']:.2f} | "
                f"{r['default_strength_change_s']:.2f} | "
                f"{r['default_exposure_change_s']:.2f} | "
                f"{r['plain_strength_change_s']:.2f} |")
  return "\n".join(rows)


def main(argv=None):
  ap = _common.parser(__doc__)
  args = ap.parse_args(argv)
  from benchmarks import harness
  size = (96, 128) if args.quick else SIZE
  records = [measure(m, repeats=1 if args.quick else args.repeats,
                     size=size)
             for m in ("zerodce-default", "zerodce-pp-default")]
  # a shared machine shows in the load average (the previews are timed)
  doc = {"machine": harness.machine_info(), "records": records,
         "load_average": os.getloadavg()[0]}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "serve.json"), "w") as f:
    json.dump(doc, f, indent=1)
  print(markdown_table(doc))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
