#!/usr/bin/env bash
# Installs redis-server from Debian's packages when it is missing.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
echo "lobby: installing redis-server (Debian package)" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null
