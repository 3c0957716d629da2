"""The monitor on Redis Streams and Ray: ``monitor publish``, ``monitor serve``, ``monitor replay redis://``.

One module a concept (import them by name; this package imports nothing itself):

config
    `ServeConfig`, `EngineSpec`, `ServeOutputs`, `Hooks`: what a serve is run with (frozen).
connection
    connecting to Redis as one line on failure; `RedisLost`; what a lost connection looks like.
checkpoints
    where a shard's checkpoint is kept: in Redis (saved with the XACK), a file, or memory.
redis_outputs
    the output streams ``STREAM:records`` and ``STREAM:alerts``: ids, the writer, the export.
live_outputs
    records and alerts written to files (or stdout) as they are produced, each once.
consumer
    `ShardConsumer`: one input stream through one KeyedMonitor.
worker
    `ShardWorker`: a consumer that survives a lost Redis, the body of a Ray actor.
engines
    the workers in this process, or as Ray actors; Ray's start and errors as one line.
serve
    the driver loop: calls every worker until every shard is drained, retries a lost Redis.
run
    ``monitor serve`` and ``monitor replay redis://`` end to end: streams, outputs, summary.
"""
