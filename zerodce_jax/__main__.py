"""``python -m zerodce_jax`` is the ``zerodce`` command."""
import sys

from zerodce_jax.cli import main

sys.exit(main())
