"""The telemetry contract shared by simulators and services: payloads, topics, Redis keys."""
