"""Call records and usage statistics (SPEC "Usage statistics"): a domain of its own; only ``main`` imports it."""
