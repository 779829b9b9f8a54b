"""MQTT ingest worker: device telemetry from the broker's shared subscription into Redis.

`batch` validates messages (pure), `store` applies a batch to Redis in one Lua call, `mqtt` is the
gmqtt client with batched acknowledgements, `session` the broker session (connected and subscribed),
`inbox` what was received and not yet acknowledged, `delivery` a batch from write to acknowledgement
(the I/O of the pure `ackpolicy`), `worker` wires them and runs the loops (role gating, heartbeat).
"""
