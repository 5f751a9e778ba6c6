"""Call intake (SPEC "Call record"): what bridges and device agents report about calls (legs), the
connection periods (records) merged from them, manual attendance marks. Usage statistics read the
records (``stats``); the agents authenticate with the inventory's agent tokens, beside endpoint status."""
