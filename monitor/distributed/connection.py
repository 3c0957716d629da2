"""Connecting to Redis, and what a lost connection is: one line, never a traceback."""

from __future__ import annotations

from monitor.errors import MonitorError, RuntimeFailure

__all__ = ["RedisLost", "connect_or_fail", "is_lost", "BACKOFF"]

BACKOFF = (0.1, 2.0)  # first delay, longest delay between reconnection attempts (seconds)


class RedisLost(RuntimeFailure):
    """Redis unreachable after the retries, or back without the stream: a runtime failure (exit 1)."""


def is_lost(e: BaseException) -> bool:
    """True for the errors of a lost Redis connection (redis-py's, and the OS's under them)."""
    import redis
    return isinstance(e, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError))


def connect_or_fail(url: str):
    """Parse a redis:// URL, connect and ping: (target, client); any failure is a MonitorError (one line, exit 2)."""
    from streams import SourceError
    from streams.redis_stream import connect, parse_url

    try:
        target = parse_url(url)
    except SourceError as e:
        raise MonitorError(str(e))
    try:
        client = connect(target)
        client.ping()
    except SourceError as e:
        raise MonitorError(str(e))
    except Exception as e:  # redis.ConnectionError, AuthenticationError: one line
        raise MonitorError(f"cannot reach Redis at {target.host}:{target.port}: {type(e).__name__}: {e}")
    return target, client
