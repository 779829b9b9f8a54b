"""tier0 region services: region API, MQTT ingest worker, activity consumer."""
