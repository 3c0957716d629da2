"""The monitor itself: label, score, learn, metrics, batch by batch (test-then-train)."""
