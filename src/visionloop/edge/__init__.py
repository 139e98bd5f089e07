"""The edge agent: capture, detect, sample, keep in a durable outbox, sync to the server."""
