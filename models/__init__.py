"""Learning: the running normaliser, the network, the online learner, and its river face.

``models.OnlineMLPClassifier`` is imported on first use (it needs river), so importing
``models.learner`` stays as light as before.
"""

__all__ = ["OnlineMLPClassifier"]


def __getattr__(name: str):
    if name == "OnlineMLPClassifier":
        from models.river_classifier import OnlineMLPClassifier
        return OnlineMLPClassifier
    raise AttributeError(f"module 'models' has no attribute {name!r}")
