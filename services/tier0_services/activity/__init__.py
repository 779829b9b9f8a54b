"""User-activity consumer: RabbitMQ queue `webapp_active_users` into Redis, ack after the write.

`store` applies one message (idempotently, by message id), `consumer` runs the pika loop
(prefetch, dead-lettering of poison messages, reconnects).
"""
