"""Inventory domain: units, rooms, endpoints, bridges; endpoint status."""
