"""``zerodce serve``: a local web page to enhance photos interactively.

One drops images on the page, compares before and after (a split view),
picks the model (the bundled Zero-DCE or Zero-DCE++, or the weights given
at start), strength, exposure and denoising, and downloads the result as
``zerodce enhance`` would write it, or a zip for several.

* ``engine``: images, previews (curve maps cached per image and model, so a
  new strength or exposure only re-renders the curves) and download jobs;
  no HTTP.
* ``server``: the standard library's ``ThreadingHTTPServer`` in front of it,
  with the checks every request passes (Host, origin, sizes).
* ``static/``: the page (HTML, JS, CSS), served from the package; nothing
  is fetched from elsewhere.

Usage from Python (what the command line does, in a background thread)::

    from zerodce_jax.apps import serve
    with serve.running(serve.Engine()) as srv:
        print(srv.url)
"""

from __future__ import annotations

import signal
from typing import Callable

from zerodce_jax.apps.serve.engine import (Engine, Job, Limits, ModelChoice,
                                          ServeError, display_name,
                                          parse_controls)
from zerodce_jax.apps.serve.server import Server, make_server, running

__all__ = ["Engine", "Job", "Limits", "ModelChoice", "ServeError", "Server",
           "display_name", "make_server", "parse_controls", "running",
           "serve_forever"]


def serve_forever(srv: Server, *,
                  announce: Callable[[str], None] = print) -> None:
  """Serves until Ctrl+C or SIGTERM, then closes the server and its engine
  (the temporary folder with every upload and result is removed)."""

  def stop(signum, frame):
    raise KeyboardInterrupt

  previous = signal.signal(signal.SIGTERM, stop)
  try:
    announce(f"zerodce serve: open {srv.url} (Ctrl+C to stop)")
    srv.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    signal.signal(signal.SIGTERM, previous)
    srv.close()
    announce("zerodce serve: stopped; temporary files removed")
