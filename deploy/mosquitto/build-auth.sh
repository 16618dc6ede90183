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
  mosquitto_passwd -b "$out/passwd" "$name" "$(cat "$file")"
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
    mosquitto_passwd -b "$out/passwd" "$name" "$(cat "$file")"
    printf '\nuser %s\ntopic write fan/messages\n' "$name" >> "$out/acl"
    added=$((added + 1))
  done
fi
echo "build-auth: $added users"
