#!/usr/bin/env bash
# Installs the Debian packages Offsite runs on, only those missing. Idempotent; needs root
# (or sudo) the first time. Used by `make demo` and `make test`.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have_pg_server() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
have_pg_server || need+=(postgresql)
have_cmd mosquitto || need+=(mosquitto)
have_cmd mosquitto_pub || need+=(mosquitto-clients)
have_cmd ffmpeg || need+=(ffmpeg)
have_cmd rtsp-server-perl || need+=(rtsp-server-perl)  # the real RTSP server the tests use
have_cmd chromium || need+=(chromium)  # headless browser for the page tests
have_cmd make || need+=(make)
# a CJK font, so that the pages' Chinese text renders in the browser tests and screenshots
[ -d /usr/share/fonts/opentype/noto ] && compgen -G "/usr/share/fonts/opentype/noto/NotoSansCJK*" >/dev/null \
    || need+=(fonts-noto-cjk)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "Offsite needs these Debian packages: ${need[*]}; run as root or install them." >&2
        exit 1
    fi
fi

# Offsite makes its own PostgreSQL cluster in its state folder: skip Debian's default one.
$SUDO mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
    echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi

echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
