#!/usr/bin/env bash
# Installs what the tests need (Debian's dovecot-imapd and systemd's systemd-analyze, mailbot
# with its test extra in .venv),
# checks lint and types, and runs the whole suite. Extra arguments go to pytest.
# The tests spend most of their time waiting for servers and subprocesses, so four of them
# run at once even on two cores; TEST_WORKERS=0 runs them one after another.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} from Debian's packages..."
  echo 'man-db man-db/auto-update boolean false' | as_root debconf-set-selections || true
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check mailbot tests bench
.venv/bin/mypy mailbot
exec .venv/bin/pytest -n "${TEST_WORKERS:-4}" "$@"
