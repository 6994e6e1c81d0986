"""The sensor stand-in: signals, faults, an HTTP client with an on-disk buffer, back-fill."""
