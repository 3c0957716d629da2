"""`monitor dashboard redis://...`, and the dashboard wrapped around a run of replay redis:// or serve.

Registered on the `monitor` group by monitor.cli.commands (this module does not import it); the work is
in monitor.dashboard.
"""

from __future__ import annotations

import sys
from typing import Callable

import click

from monitor.cli.options import CONTEXT, MonitorError, open_dashboard

__all__ = ["dashboard", "run_with_redis_dashboard"]


def _redis_feed(dash, url: str, shards: int | None):
    """Connect a RedisFeed for url (its own client) to the dashboard and start it; shards None:
    the shards whose records streams exist."""
    from monitor.dashboard.redis_feed import RedisFeed, find_shards
    from monitor.distributed.connection import connect_or_fail
    from streams.redis_stream import shard_streams

    target, client = connect_or_fail(url)
    streams = shard_streams(target.stream, shards) if shards else find_shards(client, target.stream)
    if not streams:
        raise MonitorError(f"no records stream for {target.stream} at {target.host}:{target.port} "
                           f"({target.stream}:records, or {target.stream}:0:records for shards): "
                           "start monitor serve first, or give --shards N to wait for them")
    dash.state.source = f"redis://{target.host}:{target.port}/{target.stream}"
    return RedisFeed(client, streams, dash.state).start()


def run_with_redis_dashboard(spec: str, url: str, *, shards: int, quiet: bool, hold: bool,
                             run: Callable[[], int]) -> int:
    """Serve a dashboard of the output streams of url's ``shards`` while ``run()`` works; then hold.

    Returns run()'s exit status, or 130/143 when the page was held and stopped by a signal.
    """
    dash = open_dashboard(spec, source=url, quiet=quiet)
    feed = None
    try:
        feed = _redis_feed(dash, url, shards)
        code = run()
        feed.catch_up()
        dash.state.set_summary(feed.summary(), final=True)
        if hold and code not in (130, 143):
            code = dash.hold()
        return code
    finally:
        if feed is not None:
            feed.stop()
        dash.__exit__(None, None, None)


@click.command(context_settings=CONTEXT)
@click.argument("url")
@click.option("--listen", default="127.0.0.1:8050", show_default=True, metavar="[HOST:]PORT",
              help="Where the page listens (PORT 0: any free port). A HOST that is not loopback needs "
                   "MONITOR_DASHBOARD_TOKEN set: every request must then carry it (Authorization: Bearer "
                   "TOKEN, or ?token=TOKEN).")
@click.option("--shards", type=click.IntRange(1),
              help="Read STREAM:0..N-1 (STREAM for 1) [default: the shards whose records streams exist].")
@click.option("-q", "--quiet", is_flag=True, help="Do not say the URL on stderr.")
def dashboard(url, listen, shards, quiet) -> None:
    """Show the records and alerts that `monitor serve` writes to Redis at URL, live, in a browser.

    URL is redis://HOST:PORT/STREAM, as given to serve; the page reads STREAM:records and
    STREAM:alerts (or STREAM:i:records and STREAM:i:alerts of each shard) from their start, and the
    pending entries of each shard's consumer group. Read-only: it writes nothing to Redis. Runs
    until Ctrl-C (exit 130) or SIGTERM (143). The Redis password, if any, is read from
    MONITOR_REDIS_PASSWORD.

    \b
    Examples:
      monitor dashboard redis://127.0.0.1:6379/ward
      monitor dashboard redis://127.0.0.1:6379/ward --shards 2 --listen 127.0.0.1:8051
    """
    dash = open_dashboard(listen, source=url, quiet=quiet)
    feed = None
    try:
        feed = _redis_feed(dash, url, shards)
        code = dash.hold("reading {url} from Redis until Ctrl-C".replace("{url}", url) + " ({url})")
    finally:
        if feed is not None:
            feed.stop()
        dash.__exit__(None, None, None)
    sys.exit(code)
