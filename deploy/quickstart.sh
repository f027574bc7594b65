#!/usr/bin/env bash
# Quick start on a fresh Debian machine, as root: installs the host packages and npm
# dependencies, builds shoal, starts a shoald node with the default paths, and asks it
# `shoal info`. Safe to run again: a running daemon is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup-host.sh
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
ln -sf "$PWD/dist/src/bin/shoald.js" /usr/local/bin/shoald
ln -sf "$PWD/dist/src/bin/shoal.js" /usr/local/bin/shoal

if ! shoal info >/dev/null 2>&1; then
  mkdir -p /var/log/shoal
  setsid shoald >>/var/log/shoal/shoald.log 2>&1 </dev/null &
  for _ in $(seq 1 100); do shoal info >/dev/null 2>&1 && break; sleep 0.1; done
fi
shoal info
echo
echo "shoald is running (log: /var/log/shoal/shoald.log). Stop it with: pkill -TERM -x shoald || pkill -TERM -f dist/src/bin/shoald.js"
