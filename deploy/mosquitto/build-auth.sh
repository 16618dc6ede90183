#!/bin/sh
# Builds Mosquitto's password file and ACL: build-auth.sh USERS FANS ACL OUT
#   USERS  a folder with one file per service user (connector, predict, telegraf, ...): its password
#   FANS   a folder with one file per fan, named fan-<name>: its password (may be empty or missing)
#   ACL    the services' ACL (deploy/mosquitto/acl); each fan gets a block that only lets it publish
#          readings
#   OUT    where passwd and acl are written (mode 0600)
# Fans connect on the TLS listener, where their username is their client id: the fan- prefix keeps a
# fan's id apart from every service's (mqtt-connector-0, fanwatch-telegraf-..., predict-...).
set -eu
users=$1 fans=$2 acl=$3 out=$4
umask 077
: > "$out/passwd"
cp "$acl" "$out/acl"
added=0
for file in "$users"/*; do
  [ -f "$file" ] || continue
  name=${file##*/}
  case $name in
    fan-*) echo "build-auth: service user $name: names starting with fan- are for fans (FANS)" >&2; exit 1 ;;
  esac
  printf '%s:%s\n' "$name" "$(cat "$file")" >> "$out/passwd"
  added=$((added + 1))
done
if [ -d "$fans" ]; then
  for file in "$fans"/*; do
    [ -f "$file" ] || continue
    name=${file##*/}
    case $name in
      fan-*) ;;
      *) echo "build-auth: fan $name: a fan's username must start with fan-" >&2; exit 1 ;;
    esac
    printf '%s:%s\n' "$name" "$(cat "$file")" >> "$out/passwd"
    printf '\nuser %s\ntopic write fan/messages\n' "$name" >> "$out/acl"
    added=$((added + 1))
  done
fi
# Hashed in place: a password never appears on a command line, where ps would show it.
mosquitto_passwd -U "$out/passwd"
echo "build-auth: $added users"
