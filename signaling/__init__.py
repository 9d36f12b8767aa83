"""The chatrooms server: HTTP API, WebSocket signaling, backends and the SFU."""
