"""live domain: WebSocket channel, hub, fan-out, snapshots, join-instruction events, display tokens."""
