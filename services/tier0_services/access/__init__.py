"""Who may talk to what, with which credential: the users and permissions of Redis, RabbitMQ and the
MQTT broker, spelled once and rendered from mounted Secret files into each server's own format.

The chart runs `python -m tier0_services.access <server>` as an init container beside each server
(the server's own image only reads files), the process stack and the test fixtures call the same
functions, so the permissions tested are the ones deployed. Each module says why its rules are
what they are: `redis` (ACL users), `rabbitmq` (definitions: vhost, users, permissions), `mqtt`
(the EMQX built-in database's users; the topic rules are the chart's `files/emqx/acl.conf`).
Passwords are read from files, written only into the servers' files (hashed wherever the server
accepts a hash), and never printed.
"""
