#!/bin/sh
# Starts mosquitto for the compose stack and keeps its password and ACL files in step
# with the ones the control plane writes.
#
# Runs as root (the broker itself drops to the mosquitto user). The control plane writes
# passwd and acl into the shared mosquitto-auth volume, mounted read-only at $AUTH_SRC.
# This script copies them to $AUTH_DST, owned by the mosquitto user with mode 0600 (the
# broker reads them after dropping root, and warns about files it does not own or that
# others can read), starts the broker, and then every $AUTH_POLL_SECONDS seconds copies
# them again if they changed and sends the broker SIGHUP, which reloads both files
# without dropping any connection.

AUTH_SRC=${AUTH_SRC:-/mosquitto-auth}
AUTH_DST=${AUTH_DST:-/mosquitto/auth}
CONF=${MOSQUITTO_CONF:-/etc/edgeplane-mosquitto/mosquitto.conf}
POLL=${AUTH_POLL_SECONDS:-5}

log() {
    echo "run.sh: $*" >&2
}

# Copies passwd and acl from $AUTH_SRC when they differ from the live copies.
# Succeeds (status 0) when at least one of them changed.
sync_auth() {
    changed=1
    for name in passwd acl; do
        src="$AUTH_SRC/$name"
        dst="$AUTH_DST/$name"
        if [ ! -s "$src" ]; then
            [ -s "$dst" ] && log "$src is missing or empty; keeping the current copy"
            continue
        fi
        cmp -s "$src" "$dst" && continue
        if cp "$src" "$dst.tmp" && chmod 0600 "$dst.tmp"; then
            chown mosquitto:mosquitto "$dst.tmp" 2>/dev/null ||
                log "could not hand $name to the mosquitto user"
            mv -f "$dst.tmp" "$dst"
            log "loaded $name from $src"
            changed=0
        else
            rm -f "$dst.tmp"
            log "could not copy $src"
        fi
    done
    return "$changed"
}

mkdir -p "$AUTH_DST"
chown mosquitto:mosquitto "$AUTH_DST" 2>/dev/null
chmod 0700 "$AUTH_DST"
sync_auth
if [ ! -s "$AUTH_DST/passwd" ] || [ ! -s "$AUTH_DST/acl" ]; then
    log "no passwd or acl in $AUTH_SRC: the mosquitto-auth-init service creates them"
    exit 1
fi

mosquitto -c "$CONF" &
pid=$!
stopping=0
trap 'stopping=1; kill -TERM "$pid" 2>/dev/null' TERM INT
trap 'kill -HUP "$pid" 2>/dev/null' HUP

while kill -0 "$pid" 2>/dev/null; do
    # A background sleep, so that a signal interrupts `wait` at once.
    sleep "$POLL" &
    wait $!
    [ "$stopping" = 1 ] && break
    if sync_auth; then
        log "auth files changed: reloading mosquitto"
        kill -HUP "$pid" 2>/dev/null
    fi
done

# Let the broker finish writing its persistence file, even if signalled again meanwhile.
wait "$pid"
status=$?
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
    status=$?
done
exit "$status"
