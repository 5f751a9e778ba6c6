"""web domain."""
