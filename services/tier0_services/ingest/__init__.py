"""MQTT ingest worker: device telemetry from the broker's shared subscription into Redis.

`batch` validates messages (pure), `store` applies a batch to Redis in one Lua call, `mqtt` is the
gmqtt client with batched acknowledgements, `worker` ties them together (role gating, retries).
"""
