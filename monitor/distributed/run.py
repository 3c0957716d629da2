"""``monitor serve`` and ``monitor replay redis://`` end to end: check the connection and the stored
layout, open the outputs, serve with live outputs, write the summary; return the exit status.

Outputs resumed: when the run resumes from a checkpoint (a shard's ``STREAM:state`` in Redis, or
replay's ``--state`` file), ``--out`` and ``--alerts`` are appended to, not truncated. A run
stopped by SIGINT/SIGTERM saves its checkpoints after its last outputs are written, so a stop and a
resume lose and double nothing; a process killed outright (SIGKILL) may have written the outputs of
its last call before the checkpoint covering them, and those are written again on resume.

SIGINT/SIGTERM: no new calls, the calls under way finish, the checkpoints are saved, the outputs
written; exit status 130/143. Usage and input errors raise monitor.errors.MonitorError (exit 2);
RedisLost and ServeFailed are RuntimeFailures (exit 1); the CLI prints them as one line.
"""

from __future__ import annotations

import json
import os
import sys

from monitor.errors import MonitorError
from monitor.distributed.config import EngineSpec, Hooks, ServeOutputs, ServeConfig

__all__ = ["run_serve", "resolve_streams"]


def resolve_streams(client, stream: str, shards: int | None, *, single: bool = False) -> tuple[list[str], list[str]]:
    """(the shard streams to read, those of them missing), following the layout stored at publish.

    Raises ValueError (one line) when ``shards`` contradicts the stored layout, or when ``single``
    (``replay redis://``) meets a stream published in several shards.
    """
    from streams.redis_stream import read_layout, shard_streams

    layout = read_layout(client, stream)
    if single:
        if layout is not None and layout["shards"] > 1:
            raise ValueError(f"{stream!r} was published in {layout['shards']} shards: serve it with "
                             f"`monitor serve`, or replay one shard, {stream}:0")
        names = [stream]
    else:
        if layout is not None and shards is not None and shards != layout["shards"]:
            raise ValueError(f"{stream!r} was published with --shards {layout['shards']}, not {shards}: serve it "
                             f"with --shards {layout['shards']} (or without --shards)")
        names = shard_streams(stream, layout["shards"] if layout is not None else (shards or 1))
    missing = [s for s in names if not client.exists(s)]
    return names, missing


def _wait_for_streams(client, target, engine: EngineSpec, single: bool, interrupts, note) -> list[str]:
    """The shard streams, once they all exist: an error (exit 2) unless ``engine.wait``."""
    said = False
    while True:
        try:
            streams, missing = resolve_streams(client, target.stream, engine.shards, single=single)
        except ValueError as e:
            raise MonitorError(str(e))
        if not missing:
            return streams
        if not engine.wait:
            raise MonitorError(f"stream {missing[0]!r} does not exist at {target.host}:{target.port}: publish to it first "
                        "(monitor publish), or give --wait to wait for it")
        if not said:
            note(f"waiting for stream {missing[0]!r} at {target.host}:{target.port}")
            said = True
        interrupts.sleep(0.2)


def _open_outputs(spec: ServeOutputs, stdout, append: bool) -> tuple[object, object, list]:
    """(records handle, alerts handle, the files opened); files appended to when ``append``."""
    mode = "a" if append else "w"
    opened = []
    try:
        rec_fh = al_fh = None
        if spec.out:
            rec_fh = open(spec.out, mode, encoding="utf-8")
            opened.append(rec_fh)
        elif not spec.alerts_only:
            rec_fh = stdout
        if spec.alerts:
            al_fh = open(spec.alerts, mode, encoding="utf-8")
            opened.append(al_fh)
        elif spec.alerts_only:
            al_fh = stdout
    except OSError as e:
        for fh in opened:
            fh.close()
        raise MonitorError(f"cannot write {e.filename}: {e.strerror}")
    return rec_fh, al_fh, opened


def _resuming(client, streams: list[str], single: bool, state: str | None) -> bool:
    """True when a checkpoint will be resumed from: the outputs are then appended to."""
    if single:
        return bool(state) and os.path.exists(state)
    return any(client.exists(f"{s}:state") for s in streams)


def _report(summary: dict, spec: ServeOutputs, what: str, interrupted: bool) -> None:
    if spec.summary_json:
        try:
            with open(spec.summary_json, "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)
                fh.write("\n")
        except OSError as e:
            raise MonitorError(f"cannot write {e.filename}: {e.strerror}")
    if spec.quiet:
        return
    for r in summary.get("first_rejects", []):
        sys.stderr.write(f"monitor: entry {r['entry']} rejected: {r['reason']}\n")
    if summary.get("rejected", 0) > len(summary.get("first_rejects", [])):
        sys.stderr.write(f"monitor: {summary['rejected'] - len(summary['first_rejects'])} more entries rejected\n")
    acc = summary["accuracy"]
    sys.stderr.write(
        f"monitor: {what}: readings {summary['readings']}  flags {summary['flags']}  "
        f"rejected {summary['rejected']}  episodes {summary['episodes']}  accuracy {'n/a' if acc is None else format(acc, '.4f')}  "
        f"({summary['readings_per_s'] or 0:,.0f} readings/s, {summary['elapsed_s']:.2f} s)"
        f"{'  interrupted' if interrupted else ''}\n"
        f"monitor: redis: processed {summary['processed']}  records written {summary['written']}  alerts "
        f"{summary['alerts_written']}  duplicates skipped {summary['duplicates_skipped']}  claimed "
        f"{summary['claimed']}  restarts {summary['restarts']}  lost calls {summary['lost_calls']}\n")


def _serve_with_outputs(url, target, streams, config, engine, outputs, note, single, state) -> tuple[dict, int | None]:
    """Serve under the signal handlers: (the summary, the signal that stopped it or None)."""
    from monitor.distributed.serve import serve
    from monitor.app.interrupts import Interrupts

    summary = None
    with Interrupts() as interrupts:
        try:
            with interrupts.critical():  # a signal is noted; the loop stops at the next result
                summary = serve(url=url, streams=streams, config=config, engine=engine,
                                checkpoint="redis" if not single else state, outputs=outputs,
                                consumer=None if not single else f"{target.stream}:c",
                                hooks=Hooks(stop=lambda: interrupts.signum is not None, note=note))
        except KeyboardInterrupt:
            pass
    return summary, interrupts.signum


def run_serve(url: str, config: ServeConfig, engine: EngineSpec, spec: ServeOutputs, *, single: bool = False,
              state: str | None = None, stdout=None) -> int:
    """`monitor serve`, and `monitor replay redis://` (``single``: one stream, in this process, its
    checkpoint in the file ``state`` or in memory); returns the exit status (0, 130, 143)."""
    from monitor.state.checkpoint import CheckpointError
    from monitor.distributed.connection import connect_or_fail
    from monitor.distributed.engines import RayNotes, start_ray
    from monitor.distributed.live_outputs import LiveOutputs
    from monitor.app.interrupts import Interrupts

    target, client = connect_or_fail(url)
    if engine.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MonitorError("--engine ray needs Ray: pip install 'monitor[dist]'")
    note = (lambda m: None) if spec.quiet else (lambda m: sys.stderr.write(f"monitor: {m}\n") or sys.stderr.flush())
    with Interrupts() as interrupts:
        try:
            streams = _wait_for_streams(client, target, engine, single, interrupts, note)
        except KeyboardInterrupt:  # stopped while waiting for the stream: nothing was read
            return 128 + (interrupts.signum or 2)
    rec_fh, al_fh, opened = _open_outputs(spec, stdout or sys.stdout, _resuming(client, streams, single, state))
    outputs = LiveOutputs(len(streams), records=rec_fh, alerts=al_fh)
    real_stdout = sys.stdout
    try:
        if engine.engine == "ray":
            start_ray(engine.address, engine.num_cpus)  # before our handlers: ray.init installs its own
            sys.stdout = RayNotes(note)  # Ray prints its error messages to stdout, where our records go
        summary, signum = _serve_with_outputs(url, target, streams, config, engine, outputs, note, single, state)
    except CheckpointError as e:  # (serve's InputError is a MonitorError already)
        raise MonitorError(str(e))
    finally:
        for fh in opened:
            fh.close()
        sys.stdout = real_stdout
    if summary is None:  # a signal before the loop began: nothing was served
        return 128 + (signum or 2)
    summary.update({"seed": config.seed, "interrupted": signum is not None, "records_out": outputs.n_records,
                    "alerts_out": outputs.n_alerts})
    if single:
        summary["header_lines"] = 0  # a stream has no header; its rejects are counted by the consumer
    what = "replay" if single else f"serve ({engine.engine}, {len(streams)} shard{'s' if len(streams) > 1 else ''})"
    _report(summary, spec, what, signum is not None)
    return 128 + signum if signum is not None else 0
