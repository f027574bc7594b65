#!/usr/bin/env bash
# Quick start on a fresh Debian machine, as root: installs the host packages and npm
# dependencies, builds shoal, starts a shoald node with the default paths, builds the demo
# image from the host's busybox and runs a demo web container on port 8080. Safe to run
# again: a running daemon and demo container are reused.
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
shoal image build-demo
shoal container run --rm --network none shoal-demo/busybox echo "hello from a shoal container"
if ! shoal container inspect demo-web >/dev/null 2>&1; then
  shoal container run -d --name demo-web -p 8080:80 shoal-demo/busybox \
    sh -c 'mkdir -p /www && echo "hello from shoal-demo/busybox in $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'
fi
for _ in $(seq 1 50); do
  node -e 'fetch("http://127.0.0.1:8080/").then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))' 2>/dev/null && break
  sleep 0.1
done
echo
echo "shoald is running (log: /var/log/shoal/shoald.log); the demo web container answers on http://127.0.0.1:8080/."
echo "Remove it with: shoal container rm -f demo-web. Stop shoald with: pkill -TERM -f dist/src/bin/shoald.js"
