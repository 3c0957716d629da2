"""The dashboard's web server: aiohttp on its own event loop, in a background thread.

Read-only (GET and HEAD only). Routes:

``GET /``             the page (package data: static/index.html, app.js, style.css)
``GET /api/state``    readings, keys, alerts, summary (see `WardState.state`)
``GET /api/series``   every key's recent readings, for the sparklines' first drawing
``GET /api/key?key=`` one key: its last reading, series and alert records
``GET /events``       Server-Sent Events: ``records`` (changed keys, once per tick) and ``alert``
``GET /metrics``      Prometheus text format

With a token (MONITOR_DASHBOARD_TOKEN), every request must carry it: an ``Authorization: Bearer``
header, or ``?token=`` in the URL (the page passes it on to its own requests; EventSource cannot
set headers).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
from importlib import resources

from aiohttp import web

from monitor.dashboard.state import WardState

__all__ = ["DashboardServer"]

STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html",
          "icon.svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def dumps(obj) -> str:
    """JSON with non-finite floats as null (JSON has no NaN)."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"))


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class DashboardServer:
    """Serve a `WardState` on host:port from a daemon thread.

    Parameters
    ----------
    state
        What to show.
    host, port
        Where to listen (port 0: any free port; `port` holds the one bound after `start`).
    token
        None, or the token every request must carry.
    tick
        Seconds between two ``records`` events on /events.
    """

    def __init__(self, state: WardState, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 tick: float = 0.25) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.token = token
        self.tick = tick
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._clients: set[asyncio.Queue] = set()
        self._stopping: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"DashboardServer({self.url}, token={'set' if self.token else 'none'})"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------ lifetime

    def start(self) -> "DashboardServer":
        """Bind and serve; OSError (address in use, no such address) is raised here, in the caller."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._setup())
            except BaseException as e:  # noqa: BLE001  handed to the starting thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(self._stopping.wait())
                loop.run_until_complete(self._shutdown())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="monitor-dashboard", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _setup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/api/series", self._api_series)
        app.router.add_get("/api/key", self._api_key)
        app.router.add_get("/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # the port actually bound (port 0: chosen by the system)
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._broadcast())

    async def _shutdown(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._runner.cleanup()

    def stop(self) -> None:
        """Close the clients and the listening socket; returns when the thread has ended (or 3 s)."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=3.0)

    # ------------------------------------------------------------------ guard

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], headers=HEADERS)
        if self.token is not None:
            given = request.query.get("token", "")
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return web.Response(status=401, text="401: this dashboard needs its token "
                                    "(Authorization: Bearer TOKEN, or ?token=TOKEN)\n", headers=HEADERS)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(HEADERS)
        return response

    # ------------------------------------------------------------------ routes

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        charset = None if STATIC[name].startswith("image/") else "utf-8"
        return web.Response(body=_asset(name), content_type=STATIC[name], charset=charset)

    async def _api_state(self, request: web.Request) -> web.Response:
        return _json(self.state.state())

    async def _api_series(self, request: web.Request) -> web.Response:
        return _json(self.state.sparklines())

    async def _api_key(self, request: web.Request) -> web.Response:
        detail = self.state.key_detail(request.query.get("key"))
        if detail is None:
            return _json({"error": "no such key"}, status=404)
        return _json(detail)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.state.metrics_text(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)
        self._clients.add(queue)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._stopping.is_set():
                try:
                    chunk = await asyncio.wait_for(queue.get(), timeout=15.0)
                except asyncio.TimeoutError:
                    chunk = b": keep-alive\n\n"
                if chunk is None:  # too slow a client, or the server stopping
                    break
                await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return response

    async def _broadcast(self) -> None:
        """Once per tick, with clients connected: one ``records`` event, one ``alert`` per record."""
        quiet = 0  # ticks since the last event sent
        while not self._stopping.is_set():
            await asyncio.sleep(self.tick)
            if not self._clients:
                continue
            t = self.state.tick()
            quiet += 1
            if not (t["records"] or t["alerts"] or quiet * self.tick >= 2.0):
                continue  # nothing new: the figures go out every 2 s (the page's clock of the run)
            quiet = 0
            chunks = [f"id: {i}\nevent: alert\ndata: {dumps(e)}\n\n" for i, e in t.pop("alerts")]
            chunks.append(f"event: records\ndata: {dumps(t)}\n\n")
            data = "".join(chunks).encode()
            for q in list(self._clients):
                try:
                    q.put_nowait(data)
                except asyncio.QueueFull:  # a client that does not read: dropped (it reconnects)
                    self._clients.discard(q)


def _json(obj, status: int = 200) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json")


def _asset(name: str) -> bytes:
    return resources.files("monitor.dashboard").joinpath("static", name).read_bytes()
