"""models.learner_config: the options of a network and its learning, without torch.

The driver of `monitor serve --engine ray` builds the ServeConfig it hands to the shard actors and
runs the loop that collects their outputs; the actors train. Importing torch in the driver cost
~1.3 s of CPU at every start, on the path of the 2-shard run (docs/scaling.md), so the driver's
modules must not import it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from models.learner import LearnerConfig as FromLearner
from models.learner_config import ACTIVATION_NAMES, LearnerConfig, NetworkConfig, mini_batch_size
from models.network import ACTIVATIONS, NetworkConfig as FromNetwork
from tests.conftest import ROOT

DRIVER = """
import sys
import monitor.cli.commands, monitor.cli.distributed
import monitor.distributed.run, monitor.distributed.serve, monitor.distributed.engines
import monitor.distributed.live_outputs, monitor.distributed.redis_outputs, monitor.state.checkpoint
from monitor.cli.options import learner_config
from monitor.distributed.config import ServeConfig
c = ServeConfig(learner=learner_config(16, 0.05, 256, True, "renorm", "bce-logits"))
c.options(); c.monitor_kwargs()
print(sorted(m for m in ("torch", "pandas") if m in sys.modules))
"""


def test_the_serve_driver_imports_neither_torch_nor_pandas():
    # a fresh interpreter: what this test process has imported says nothing
    out = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_configs_are_the_ones_the_learner_and_network_use():
    assert FromLearner is LearnerConfig and FromNetwork is NetworkConfig
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    assert mini_batch_size(LearnerConfig(), 20_000, warm=False) == 1248


@pytest.mark.parametrize("bad, message", [(dict(activation="gelu"), "activation 'gelu'"),
                                          (dict(batchnorm="group"), "batchnorm 'group'"),
                                          (dict(lr=0.0), "lr must be a positive number")])
def test_bad_options_are_refused_without_torch(bad, message):
    with pytest.raises(ValueError, match=message):
        LearnerConfig(**bad)
