#!/bin/sh
# The default user from the environment (as the upstream image does), then the server itself
# (/usr/lib/rabbitmq/bin: Debian's /usr/sbin wrapper would switch users).
set -eu
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
  printf 'default_user = %s\ndefault_pass = %s\nloopback_users = none\n' \
    "$RABBITMQ_DEFAULT_USER" "${RABBITMQ_DEFAULT_PASS:-}" >/etc/rabbitmq/conf.d/05-default-user.conf
fi
exec /usr/lib/rabbitmq/bin/rabbitmq-server
