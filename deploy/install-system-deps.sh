#!/usr/bin/env bash
# Install the Debian packages deskgate's demo, tests and build need, and only those missing.
#
# Idempotent and quiet when everything is present: it asks dpkg first, and runs
# `apt-get update` + `apt-get install` only for what is missing. As non-root it prints
# the exact command to run and fails.
#
# Environment:
#   PYTHON  the interpreter the venv will be built from (default python3); when it
#           cannot create a venv (Debian splits ensurepip out), python3-venv is added.
set -euo pipefail

packages=(
    ca-certificates
    tigervnc-standalone-server   # Xvnc: the demo desktop and the functional tests' VNC target
    tigervnc-tools               # vncpasswd
    openssh-server               # sshd: the terminal tests' SSH target
    openssh-client               # ssh-keygen (test keys); ssh and sftp: the native SSH listener tests
    x11-apps                     # xwd: screenshots
    x11-utils
    x11-xserver-utils
    xterm
    openbox
    xdotool
    chromium                     # end-to-end browser tests
    fonts-dejavu-core
    fonts-noto-cjk               # Japanese on the demo desktop (Noto Sans/Serif/Mono CJK JP)
    tesseract-ocr                # OCR of recordings' screen text (recorder/ocr.py), reading Japanese and English
    tesseract-ocr-jpn
    tesseract-ocr-eng
    locales                      # ja_JP.UTF-8 for the demo desktop's session (generated below)
    ibus-mozc                    # a Japanese input method on the demo desktop: ibus with Mozc, over XIM
    xclip                        # the clipboard e2e test sets and reads the desktop's clipboard
    slapd                        # OpenLDAP server: the LDAP backend's functional tests
    ldap-utils
    libldap2-dev                 # python-ldap builds against libldap and libsasl
    libsasl2-dev
    gcc libc6-dev                # python-ldap ships no wheel: pip compiles it
    python3-dev
    prometheus                   # functional test: a real Prometheus scrapes /metrics; promtool tests the alerts
    docker-compose               # tests/test_deploy.py: docker-compose config validates deploy/docker-compose.yml
    postgresql                   # the many-node mode's database: functional tests start a throwaway cluster
    zbar-tools                   # zbarimg: the enrollment e2e test scans the QR code the browser shows
    websockify                   # the benchmarks' peer (bench/), with numpy, outside deskgate's venv
)

# A node/npm already on PATH (e.g. from NodeSource, whose nodejs conflicts with Debian's
# npm) is used as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    packages+=(python3-venv)
fi

missing=()
for package in "${packages[@]}"; do
    # grep without -q reads all of dpkg's output: no SIGPIPE to trip pipefail.
    if ! dpkg -s "$package" 2>/dev/null | grep -x 'Status: install ok installed' >/dev/null; then
        missing+=("$package")
    fi
done

# The demo desktop's Japanese UTF-8 locale (Debian ships it in /etc/locale.gen, commented out).
ensure_japanese_locale() {
    if locale -a 2>/dev/null | grep -qix 'ja_JP.utf8' || [ "$(id -u)" -ne 0 ] || ! command -v locale-gen >/dev/null; then
        return 0
    fi
    sed -i 's/^# *\(ja_JP.UTF-8 UTF-8\)/\1/' /etc/locale.gen
    grep -qx 'ja_JP.UTF-8 UTF-8' /etc/locale.gen || echo 'ja_JP.UTF-8 UTF-8' >> /etc/locale.gen
    locale-gen >/dev/null
}

if [ "${#missing[@]}" -eq 0 ]; then
    ensure_japanese_locale
    exit 0
fi

install_command="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deskgate: missing Debian packages: ${missing[*]}" >&2
    echo "deskgate: run as root, then re-run make:" >&2
    echo "    apt-get update && DEBIAN_FRONTEND=noninteractive $install_command" >&2
    exit 1
fi

echo "deskgate: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
ensure_japanese_locale
