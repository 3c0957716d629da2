"""The replay application: settings to source, loop, summary; pacing, signals, progress."""
