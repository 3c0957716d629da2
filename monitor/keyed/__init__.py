"""Many patients in one stream: the keyed monitor, its key table, alert episodes."""
