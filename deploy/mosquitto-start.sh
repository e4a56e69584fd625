#!/bin/sh
# Starts the compose Mosquitto. Offsite's own account (MQTT_USERNAME / MQTT_PASSWORD) is
# written into the password file at every start, so a changed secret takes effect; the
# accounts of stations and terminals added there stay. The ACL is mosquitto.acl plus
# that account, which may use every topic (and read $SYS for the healthcheck).
set -eu
config="${MOSQUITTO_CONFIG:-/mosquitto/config}"
data="${MOSQUITTO_DATA:-/mosquitto/data}"
touch "$data/passwd"
mosquitto_passwd -b "$data/passwd" "$MQTT_USERNAME" "$MQTT_PASSWORD"
{
    cat "$config/mosquitto.acl"
    printf '\nuser %s\ntopic readwrite #\ntopic read $SYS/#\n' "$MQTT_USERNAME"
} > "$data/acl"
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto:mosquitto "$data/passwd" "$data/acl"
fi
chmod 0600 "$data/passwd" "$data/acl"
exec "${MOSQUITTO_BIN:-/usr/sbin/mosquitto}" -c "$config/mosquitto.conf"
