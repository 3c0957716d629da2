"""Where the shard workers run: in this process in turn (`LocalPool`), or as Ray actors (`RayPool`).

A local Ray is started bound to 127.0.0.1, with ``num_cpus`` CPUs, no dashboard and no usage
statistics (RAY_USAGE_STATS_ENABLED=0), its workers at niceness 0 (Ray's default of 15 starves the
shard actors on a busy node); docs/scaling.md lists what listens where. With ``address`` it joins
an existing cluster; every node needs ``monitor[dist]`` installed and, for a Redis password,
MONITOR_REDIS_PASSWORD in the environment of its ``ray start`` (and RAY_worker_niceness=0 for the
same priority). Ray's errors and what
it prints become one line each, without terminal escape codes.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Callable

from monitor.distributed.worker import ShardWorker

from monitor.errors import RuntimeFailure

__all__ = ["ServeFailed", "LocalPool", "RayPool", "start_ray", "one_line", "RayNotes"]


WORKER_NICENESS = 0  # Ray's default, 15, leaves the shard actors (the whole work) only what other processes spare


class ServeFailed(RuntimeFailure):
    """A failure of the engine (a Ray error), as one line: a runtime failure (exit 1)."""


def start_ray(address: str | None, num_cpus: int):
    """Join the Ray cluster at ``address``, or start a local one (see the module docstring); the
    ``ray`` module. A cluster that cannot be joined or started is one line, ServeFailed."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, configure_logging=False, log_to_driver=False)
            return ray
        root = str(Path(__file__).resolve().parents[2])  # the workers import monitor from where we run
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if root not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
        ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", _system_config={"worker_niceness": WORKER_NICENESS})
    except Exception as e:  # ConnectionError, an authentication error under it, RuntimeError: one line
        cause = e.__cause__ if isinstance(e.__cause__, BaseException) else e
        text = [ln.strip() for ln in _ESCAPES.sub("", str(cause)).splitlines() if ln.strip()]
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise ServeFailed(f"cannot {where}: {type(cause).__name__}: {text[0][:300] if text else ''}") from None
    return ray


_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(e: BaseException) -> str:
    """A Ray error as one line without terminal escape codes: its innermost cause's last line."""
    cause = getattr(e, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else e)
    lines = [ln.strip() for ln in _ESCAPES.sub("", text).splitlines() if ln.strip()]
    name = type(cause if isinstance(cause, BaseException) else e).__name__
    last = lines[-1] if lines else name
    return last if last.startswith(name) else f"{name}: {last}"


class LocalPool:
    """Workers in this process, called in turn: the same interface as the Ray engine."""

    def __init__(self, workers: list[ShardWorker]) -> None:
        self.workers = workers
        self.queue: list[tuple[int, str, tuple]] = []

    def submit(self, i: int, method: str, *args) -> None:
        self.queue.append((i, method, args))

    def busy(self) -> int:
        return len(self.queue)

    def next(self) -> tuple[int, str, dict | None] | None:
        if not self.queue:
            return None
        i, method, args = self.queue.pop(0)
        return i, method, getattr(self.workers[i], method)(*args)

    def finish(self) -> list[dict]:
        return [w.finish() for w in self.workers]


class RayPool:
    """Workers as Ray actors (max_restarts=-1): a call lost with its actor gives None."""

    def __init__(self, ray, workers_args: list[dict], shards: int) -> None:
        from ray.exceptions import RayActorError

        self.ray = ray
        self.dead = RayActorError
        cpus = float(ray.cluster_resources().get("CPU", 1))
        Actor = ray.remote(ShardWorker).options(max_restarts=-1, max_task_retries=0, num_cpus=min(1.0, cpus / shards))
        self.actors = [Actor.remote(**a) for a in workers_args]
        ray.get([a.pid.remote() for a in self.actors])  # every actor up
        self.calls: dict = {}

    def submit(self, i: int, method: str, *args) -> None:
        self.calls[getattr(self.actors[i], method).remote(*args)] = (i, method)

    def busy(self) -> int:
        return len(self.calls)

    def next(self) -> tuple[int, str, dict | None] | None:
        ready, _ = self.ray.wait(list(self.calls), num_returns=1, timeout=0.2)
        if not ready:
            return None
        i, method = self.calls.pop(ready[0])
        try:
            return i, method, self.ray.get(ready[0])
        except self.dead:  # the actor died during the call: Ray restarts it from its checkpoint
            return i, method, None

    def finish(self) -> list[dict]:
        out = []
        for a in self.actors:
            for attempt in range(20):  # an actor killed just now is being restarted: ask again
                try:
                    out.append(self.ray.get(a.finish.remote()))
                    break
                except self.dead:
                    time.sleep(0.2 * (attempt + 1))
            else:
                raise ServeFailed("a shard actor could not be reached to finish")
        return out


class RayNotes(io.TextIOBase):
    """Stands for stdout while Ray runs: what Ray prints there (a worker that died, ...) becomes one
    note line each on stderr, without escape codes, and stays out of the records."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.buf = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            line = _ESCAPES.sub("", line).strip()
            if line:
                first = line.split(". ")[0]
                self.note(f"ray: {first[:300]}")
        return len(text)
