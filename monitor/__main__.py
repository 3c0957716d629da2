"""`python -m monitor` and the `monitor` script: the click CLI, with Ctrl-C during its imports exiting 130.

The CLI's own imports (click, typing, the option modules) take a few tenths of a second on a loaded
machine; a Ctrl-C there used to end in a KeyboardInterrupt traceback. It is held until they are done
(monitor.app.interrupts.held_until_done), then taken as everywhere else: "monitor: interrupted",
status 130. (Before Python has run this file, while the interpreter itself starts, Ctrl-C is
Python's own: a traceback from `site` or the import system, in the first ~30 ms.)
"""

import sys


def run() -> None:
    """Import the CLI with Ctrl-C held, then run it."""
    try:
        from monitor.app.interrupts import held_until_done  # signal, threading, contextlib: a few ms

        with held_until_done():
            from monitor.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("monitor: interrupted\n")
        sys.exit(130)
    main(prog_name="monitor")


if __name__ == "__main__":
    run()
