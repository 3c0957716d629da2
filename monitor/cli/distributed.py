"""`monitor publish` and `monitor serve`: the commands that put the monitor on Redis Streams and Ray.

Registered on the `monitor` group by monitor.cli.commands (this module does not import it); the work is
in monitor.distributed (streams.redis_stream for publish).
"""

from __future__ import annotations

import sys

import click

from monitor.cli.options import (CONTEXT, FORMATS_IN, MonitorError, dashboard_option, learner_config, model_options,
                             range_options, redis_wait_options, span, valid_range)

__all__ = ["publish", "serve", "replay_redis"]


def replay_redis(url: str, config, engine, spec, *, state: str | None, dashboard: str | None, hold: bool) -> None:
    """`monitor replay redis://...`: one consumer on one stream, in this process (monitor.distributed.run),
    its checkpoint in the file ``state`` (or in memory); with a dashboard of its output streams."""
    from monitor.app.replay_run import _configure_torch, _lock_state

    lock = _lock_state(state, MonitorError) if state else None  # one run per --state
    try:
        _configure_torch()
        code = _run(url, config, engine, spec, state=state, single=True, dashboard=dashboard, hold=hold, shards=1)
    finally:
        if lock is not None:
            lock.release()
    sys.exit(code)


def _run(url: str, config, engine, spec, *, state, single: bool, dashboard, hold: bool, shards) -> int:
    """run_serve, with a dashboard around it if asked."""
    from monitor.distributed.run import run_serve

    def run() -> int:  # its MonitorError/RuntimeFailure (a lost Redis, a Ray failure) become one line in the group
        return run_serve(url, config, engine, spec, single=single, state=state)

    if dashboard:  # the page reads the output streams, from this process (see monitor.cli.dashboard)
        from monitor.cli.dashboard import run_with_redis_dashboard
        return run_with_redis_dashboard(dashboard, url, shards=shards, quiet=spec.quiet, hold=hold, run=run)
    return run()


@click.command(context_settings=CONTEXT)
@click.argument("args", nargs=-1, metavar="[FILE] URL")
@click.option("--stream", type=click.Choice(["sample", "synthetic", "ward"]),
              help="A built-in stream instead of FILE (then give only URL).")
@click.option("--n", "n", type=click.IntRange(1), help="Length of a synthetic stream, or of a ward (minutes).")
@click.option("--patients", type=click.IntRange(1), help="Patients of --stream ward [default: 50].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a generated stream.")
@click.option("--column", help="Column holding the heart rate.")
@click.option("--time-column", help="Column holding the time.")
@click.option("--label-column", help="Column with the data's own 0/1 labels.")
@click.option("--key", "--key-column", "key_column", help="Column holding the patient or device id.")
@click.option("--format-in", type=click.Choice(FORMATS_IN), help="Input format of FILE.")
@click.option("--shards", type=click.IntRange(1), default=1, show_default=True,
              help="Input streams: STREAM for 1, else STREAM:0..N-1, by crc32 of the key.")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Readings per second (0: as fast as possible).")
@click.option("--maxlen", type=click.IntRange(1), help="Trim each input stream to about this many entries.")
@click.option("--pack", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Readings per entry (a packed block, format 1, docs/scaling.md); 1: one entry per reading.")
@range_options("rejected (not published), as by replay", accept="Publish")
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
def publish(args, stream, n, patients, seed, column, time_column, label_column, key_column, format_in,
            shards, rate, maxlen, pack, min_bpm, max_bpm, no_range_check, quiet) -> None:
    """Write the readings of FILE (or --stream) into Redis Streams at URL, sharded by key.

    Readings go in packed entries of up to --pack readings (format 1: float64 arrays time, value,
    label and a JSON list of keys; see docs/scaling.md), or one entry per reading with fields time,
    value, key and label (--pack 1, as any other producer may write them: both are read). The
    layout (shards, format) is stored in the hash STREAM:layout; a stream published before with
    another --shards is refused. The Redis password, if any, is read from MONITOR_REDIS_PASSWORD.

    \b
    Examples:
      monitor publish hr.csv redis://127.0.0.1:6379/hr
      monitor publish --stream ward redis://127.0.0.1:6379/ward --shards 2
      monitor publish ward.csv redis://127.0.0.1:6379/ward --shards 4 --rate 1000
    """
    import json

    from monitor.app.sources import SourceSpec, open_source
    from streams import SourceError
    from streams.redis_stream import LayoutMismatch, connect, parse_url, publish as publish_batches

    if len(args) not in (1, 2) or (len(args) == 2) == (stream is not None):
        raise click.UsageError("give FILE or --stream, and the redis://HOST:PORT/STREAM URL")
    file, url = (args[0] if len(args) == 2 else None), args[-1]
    try:
        target = parse_url(url)
        spec = SourceSpec(file=file, stream=stream, n=n, patients=patients, format_in=format_in, column=column,
                          time_column=time_column, label_column=label_column, key_column=key_column,
                          valid_range=valid_range(min_bpm, max_bpm, no_range_check))
        choice = open_source(spec, seed=seed,
                             on_note=None if quiet else (lambda m: click.echo(f"monitor: {m}", err=True)))
        client = connect(target)
        result = publish_batches(client, target.stream, choice.source, shards=shards, rate=rate, maxlen=maxlen,
                                 pack=pack)
    except LayoutMismatch as e:
        raise MonitorError(str(e))
    except SourceError as e:
        raise MonitorError(str(e))
    except Exception as e:
        if type(e).__module__.startswith("redis"):
            raise MonitorError(f"Redis at {target.host}:{target.port}: {type(e).__name__}: {e}")
        raise
    if not quiet:
        click.echo(f"monitor: published {json.dumps(result)}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--engine", type=click.Choice(["ray", "local"]), default="ray", show_default=True,
              help="ray: one Ray actor per shard; local: every shard in this process, in turn.")
@click.option("--shards", type=click.IntRange(1),
              help="Input streams STREAM:0..N-1 (STREAM for 1) [default: as published, stored in STREAM:layout; "
                   "else 1]; another number than the published one is refused.")
@redis_wait_options
@click.option("--address", help="Ray cluster to join (ray://... or HOST:PORT); default: start a local Ray.")
@click.option("--num-cpus", type=click.IntRange(1), default=2, show_default=True,
              help="CPUs of a local Ray (without --address).")
@model_options
@click.option("--key-model", type=click.Choice(["shared", "per-key", "shared-z", "global"]), default="shared",
              show_default=True, help="As for replay; a shared network is shared by the keys of one shard.")
@click.option("--max-keys", type=click.IntRange(1), help="Keys kept per shard.")
@click.option("--alert-after", default="1m", show_default=True, help="As for replay.")
@click.option("--alert-clear", default="2m", show_default=True, help="As for replay.")
@click.option("--alerts", "alerts_path", type=click.Path(dir_okay=False, writable=True),
              help="Write alerts to this JSON Lines file as they happen (flushed per batch).")
@click.option("--alerts-only", is_flag=True, help="No records on stdout; alerts there unless --alerts.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write records to this JSON Lines file as they come (default: stdout), each shard in order.")
@click.option("--records-stream/--no-records-stream", default=True, show_default=True,
              help="Write records back to Redis (STREAM:i:records, in blocks); alerts are always written.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True),
              help="Write the summary (totals and one entry per shard) as JSON.")
@click.option("--until-idle", is_flag=True, help="Stop once every input stream is drained.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=5_000, show_default=True,
              help="Readings between a shard's checkpoints (kept in Redis, key STREAM:i:state).")
@click.option("--maxlen", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Trim the output streams to about this many entries.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@dashboard_option
def serve(url, engine, shards, wait, address, num_cpus, threshold, seed, hidden, lr, batch_size, normalise,
          batchnorm, loss, key_model, max_keys, alert_after, alert_clear, alerts_path, alerts_only, out,
          records_stream, retry_for, summary_json, until_idle, checkpoint_every, maxlen, quiet, dashboard,
          dashboard_hold) -> None:
    """Run the monitor on the shard streams at URL: one consumer per shard; records to stdout (or
    --out) and alerts to --alerts as they happen, and to the output streams STREAM:i:records and
    STREAM:i:alerts (formats in docs/scaling.md).

    A shard's consumer acknowledges its input only once the records and the checkpoint covering it
    are written; a consumer that dies is restarted (by Ray) from its checkpoint and takes over its
    pending entries; outputs computed again are written once. A lost Redis is retried for
    --retry-for seconds (one note), then exit 1. Ray's head, when started here, is local, with 2
    CPUs, no dashboard and no usage statistics (what listens where: docs/scaling.md).

    \b
    Examples:
      monitor serve redis://127.0.0.1:6379/ward --until-idle --alerts-only
      monitor serve redis://10.0.0.5:6379/ward --shards 8 --address 10.0.0.5:6379
    """
    from monitor.distributed.config import EngineSpec, ServeOutputs, ServeConfig

    config = ServeConfig(learner=learner_config(hidden, lr, batch_size, normalise, batchnorm, loss), threshold=threshold,
                         seed=seed, key_model=key_model, max_keys=max_keys,
                         alert_after=span(alert_after, "--alert-after"), alert_clear=span(alert_clear, "--alert-clear"),
                         checkpoint_every=checkpoint_every, maxlen=maxlen, records_stream=records_stream)
    engine_spec = EngineSpec(engine=engine, shards=shards, address=address, num_cpus=num_cpus, wait=wait,
                             retry_for=retry_for, until_idle=until_idle)
    spec = ServeOutputs(out=out, alerts=alerts_path, alerts_only=alerts_only, summary_json=summary_json, quiet=quiet)
    sys.exit(_run(url, config, engine_spec, spec, state=None, single=False, dashboard=dashboard, hold=dashboard_hold,
                  shards=shards))
