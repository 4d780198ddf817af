#!/bin/sh
# One-shot, run by the `mosquitto-auth-init` service before the broker starts (as root,
# in the eclipse-mosquitto image, for mosquitto_passwd and chown).
#
# Makes sure the mosquitto-auth volume holds a password file and an ACL, and that the
# control-plane account in the password file has the password from .env. It never
# removes what the control plane wrote there: it creates missing files and sets that one
# account's password. Afterwards the control plane owns both files (uid:gid $AUTH_OWNER)
# and rewrites them as devices are enrolled and revoked; the broker's run.sh picks the
# changes up.
set -eu

dir=${AUTH_DIR:-/mosquitto-auth}
owner=${AUTH_OWNER:-10001:10001}
acl_template=${ACL_TEMPLATE:-/etc/edgeplane-mosquitto/acl.bootstrap}
user=${MQTT_USERNAME:-}
password=${MQTT_PASSWORD:-}

fail() {
    echo "auth-init: $*" >&2
    exit 1
}

[ -n "$user" ] || fail "EDGEPLANE_MQTT__USERNAME is empty: set it in .env"
[ -n "$password" ] || fail "EDGEPLANE_MQTT__PASSWORD is empty: set it in .env"
case "$password" in
    *CHANGE-ME*) fail "EDGEPLANE_MQTT__PASSWORD still has its placeholder value: set it in .env" ;;
esac
case "$user" in
    *[!A-Za-z0-9._-]*) fail "EDGEPLANE_MQTT__USERNAME may only contain letters, digits, '.', '_' and '-'" ;;
esac

umask 077
mkdir -p "$dir"

# Password file: the control-plane account is added or updated in a copy, which then
# replaces the file in one rename (the broker's watcher never sees a half-written file).
tmp="$dir/.passwd.auth-init.$$"
if [ -s "$dir/passwd" ]; then
    cp "$dir/passwd" "$tmp"
    mosquitto_passwd -b "$tmp" "$user" "$password"
else
    mosquitto_passwd -c -b "$tmp" "$user" "$password"
fi
mv -f "$tmp" "$dir/passwd"
echo "auth-init: control-plane account '$user' set in $dir/passwd"

# ACL: only when there is none yet (the control plane's own version wins).
if [ ! -s "$dir/acl" ]; then
    tmp="$dir/.acl.auth-init.$$"
    sed "s/@CONTROL_USER@/$user/g" "$acl_template" >"$tmp"
    mv -f "$tmp" "$dir/acl"
    echo "auth-init: wrote the bootstrap ACL to $dir/acl"
fi

chown "$owner" "$dir" "$dir/passwd" "$dir/acl"
chmod 0750 "$dir"
chmod 0640 "$dir/passwd" "$dir/acl"
