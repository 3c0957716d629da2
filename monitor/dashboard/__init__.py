"""A live view of a run in the browser, and its metrics for Prometheus (see docs/dashboard.md).

Modules (imported where needed: the server pulls in aiohttp):

``state``    `WardState`, the aggregate of the scored batches (vectorised per batch)
``server``   `DashboardServer`, aiohttp in a background thread: the page, /api/*, /events, /metrics
``live``     `Dashboard` and `DashboardTee`: a run's dashboard, fed by its record sink
``address``  `Address`, ``--dashboard [HOST:]PORT``, and the token rule
"""

__all__: list[str] = []
