"""confsvc: videoconference scheduling and room management for a province's online meeting network."""

__version__ = "0.1.0"
