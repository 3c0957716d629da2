"""Shared helpers: seeded streams and a way to run the real `monitor` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """One torch thread in every process that runs tests (tiny networks: one thread is fastest, and CI
    has 2 cores). xdist's controller runs none, so it does not import torch (1.9 s of CPU here, taken
    from the workers while they collect)."""
    controller = getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")
    if not controller:
        import torch
        torch.set_num_threads(1)
    config.option.loadscopereorder = False  # xdist: hand out the files in HEAVIEST_FIRST's order, not by
    # their number of tests


# The test files that cost most CPU, heaviest first (seconds of CPU each on this 2-core machine, from
# `python -m pytest -q -n auto --dist loadfile -p tests.cpu_per_file`, 30 Nov 2026 at 303b30a). xdist gives
# each worker the next file when it is free, so handing out the long files first keeps the two workers'
# ends close (longest-processing-time first); the others follow in collection order. A stale list costs
# balance, never a test.
HEAVIEST_FIRST = (
    "tests/models/test_scripted_steps.py",  # 8.2
    "tests/monitor/lab/test_ablate.py",  # 5.1
    "tests/monitor/core/test_background.py",  # 5.0
    "tests/monitor/app/test_bad_input.py",  # 4.6
    "tests/monitor/dashboard/test_dashboard_browser.py",  # 4.4 (and a browser's CPU, not counted)
    "tests/monitor/cli/test_output_errors.py",  # 3.7
    "tests/streams/test_fhir.py",  # 3.7
    "tests/monitor/core/test_background_learner.py",  # 3.6
    "tests/monitor/state/test_exactly_once.py",  # 3.5
    "tests/monitor/cli/test_cli_replay.py",  # 3.4
    "tests/models/test_regime.py",  # 3.2
    "tests/monitor/keyed/test_keyed.py",  # 3.2
    "tests/models/test_recentre.py",  # 2.9
    "tests/monitor/state/test_resume.py",  # 2.9
    "tests/monitor/distributed/test_redis_io.py",  # 2.8
    "tests/models/test_learner.py",  # 2.6
    "tests/monitor/cli/test_cli_process.py",  # 2.6
    "tests/monitor/state/test_checkpoint.py",  # 2.5
    "tests/models/test_river_classifier.py",  # 2.4
    "tests/streams/test_formats.py",  # 2.3
)


def pytest_collection_modifyitems(config, items) -> None:
    """The files of HEAVIEST_FIRST first, in its order; every file's tests stay together and in order."""
    rank = {path: i for i, path in enumerate(HEAVIEST_FIRST)}
    first = len(HEAVIEST_FIRST)
    order = {id(item): (rank.get(item.nodeid.split("::")[0], first), n) for n, item in enumerate(items)}
    items.sort(key=lambda item: order[id(item)])


def has_module(module: str) -> bool:
    """True when ``module`` is installed (optional extras: redis, ray); found, not imported: a skip mark
    asks at collection, in every xdist worker, and importing ray there cost 0.3-0.5 s of CPU each."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run_monitor(*args: str, input: bytes | None = None, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    """Run `python -m monitor ARGS` as a user would, capturing bytes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "monitor", *args], input=input, capture_output=True,
                          timeout=timeout, env=env, cwd=cwd)


def hr_series() -> np.ndarray:
    """1,000 seeded heart-rate-like readings around 90 bpm (a new array each call)."""
    rng = np.random.default_rng(7)
    return 90 + 3 * np.sin(np.arange(1000) / 80) + rng.normal(0, 4, 1000)


@pytest.fixture
def hr_values() -> np.ndarray:
    """1,000 seeded heart-rate-like readings around 90 bpm."""
    return hr_series()


@pytest.fixture
def hr_csv(tmp_path, hr_values) -> Path:
    path = tmp_path / "hr.csv"
    t = np.arange(len(hr_values)) * 0.5
    path.write_text("t,hr\n" + "".join(f"{a},{b!r}\n" for a, b in zip(t.tolist(), hr_values.tolist())))
    return path


def random_splits(rng: np.random.Generator, n: int, max_size: int = 9) -> list[tuple[int, int]]:
    """Consecutive (start, stop) slices covering range(n), sizes 0..max_size; 1 and 0 come first."""
    sizes = [1, 0, 1] + rng.integers(0, max_size + 1, size=n).tolist()
    out, i = [], 0
    for k in sizes:
        if i >= n:
            break
        out.append((i, min(n, i + k)))
        i += k
    if i < n:
        out.append((i, n))
    return out


def cuts(rng: np.random.Generator, n: int, most: int = 50) -> list[tuple[int, int]]:
    """Random chunk boundaries of 0..n (chunks of 1..most readings)."""
    out = [0]
    while out[-1] < n:
        out.append(min(n, out[-1] + int(rng.integers(1, most + 1))))
    return list(zip(out[:-1], out[1:]))


@pytest.fixture
def redis_url():
    """A fresh stream name on the test redis-server (MONITOR_TEST_REDIS_PORT); its keys deleted after."""
    port = os.environ.get("MONITOR_TEST_REDIS_PORT")
    redis = pytest.importorskip("redis", reason="no Redis client: pip install '.[dist]'")
    if not port:
        pytest.skip("no Redis: set MONITOR_TEST_REDIS_PORT (as .ci/run does) and install redis")
    import uuid
    stream = f"t-{uuid.uuid4().hex[:8]}"
    yield f"redis://127.0.0.1:{port}/{stream}"
    client = redis.Redis(host="127.0.0.1", port=int(port), password=os.environ.get("MONITOR_REDIS_PASSWORD"))
    for name in client.scan_iter(f"{stream}*"):
        client.delete(name)


def redis_client(url: str):
    """A client for the server of a redis:// URL, as the monitor connects."""
    from streams.redis_stream import connect, parse_url
    return connect(parse_url(url))
