"""`python -m monitor` and the `monitor` script (monitor.__main__.run): Ctrl-C during the CLI's imports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# A SIGINT sent at the moment `click` is looked for: inside the CLI's imports, deterministically
KICK = """
import os, signal, sys
class Kick:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Kick())
sys.argv = ["monitor", "--help"]
from monitor.__main__ import run
run()
"""


def test_ctrl_c_during_the_cli_imports_exits_130_without_a_traceback():
    proc = subprocess.run([sys.executable, "-c", KICK], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == b"monitor: interrupted\n"
    assert proc.stdout == b""  # --help never ran
