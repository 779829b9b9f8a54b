"""tier0 simulators: MQTT device fleet and user-activity publisher."""
