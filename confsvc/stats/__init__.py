"""Usage statistics over call records (SPEC "Usage statistics"): a domain of its own; only ``main`` imports it."""
