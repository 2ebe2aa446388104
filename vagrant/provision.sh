#!/bin/sh
# Provisions a dev box: installs tend from the repository's own build when
# the box has none, then converges the box as its host entry of
# manifests/dev.yaml says, with exactly what converges production.
#   provision.sh HOST [REPO]   (REPO defaults to /srv/tend)
set -eu
host=${1:?usage: provision.sh HOST [REPO]}
repo=${2:-/srv/tend}

if ! command -v tend >/dev/null 2>&1; then
    deb=$(ls "$repo"/target/debian/tend_*.deb 2>/dev/null | tail -n 1 || true)
    if [ -n "$deb" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb"
    elif [ -x "$repo/target/release/tend" ]; then
        install -m 0755 "$repo/target/release/tend" /usr/local/bin/tend
    else
        echo "provision: no tend to install; run scripts/build-deb target/debian in the repository first" >&2
        exit 1
    fi
fi

exec tend converge --repo "$repo" --env dev --host "$host"
