"""Several CPU devices under a data-parallel step: thousands of fast steps
in a row finish (``step.in_lockstep``).

Before the fix, a 2-core machine aborted after one or two hundred fast
2-device steps with XLA:CPU's "Termination timeout for all reduce ...
Expected 2 threads to join the rendezvous": the host dispatched steps ahead
while every device's program shares one thread per core. The run goes in a
fresh process (the device count is fixed when JAX starts) and its exit
status is the verdict: XLA aborts the process when the rendezvous times out.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from zerodce_jax import training
    from zerodce_jax.core import models
    parallel, steps = sys.argv[1], int(sys.argv[2])
    model = models.make_model("3-32-8", bias_init="torch")
    state = training.create_train_state(
        model, training.make_optimizer(), key=jax.random.key(0),
        image_size=16)
    loss_fn = training.make_loss_fn(model, weights="official",
                                    color_eps=1e-8, exposure_patch=8)
    devices = jax.devices()
    assert len(devices) == 2, devices
    step = training.make_parallel_step(loss_fn, devices=devices,
                                       parallel=parallel)
    data = np.random.default_rng(0).random((2, 1, 16, 16, 3),
                                           np.float32) * 0.5
    for _ in range(steps):
        state, metrics = step(state, data)
    assert int(jax.device_get(state.step)) == steps
    assert np.isfinite(float(jax.device_get(metrics["loss"])))
    print("ok", steps)
""")


@pytest.mark.parametrize("parallel", ["shard_map", "pmap"])
def test_many_fast_steps_on_two_cpu_devices_finish(parallel):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  # the XLA abort comes 40 s after a stuck rendezvous: 150 s is ample for
  # the steps themselves and fails a hang that XLA would not abort
  r = subprocess.run([sys.executable, "-c", SCRIPT, parallel, "1500"],
                     env=env, capture_output=True, text=True, timeout=150)
  assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
  assert "ok 1500" in r.stdout
