"""tier0 development tooling: real local programs (Redis, Mosquitto, RabbitMQ, etcd, kube-apiserver)."""
