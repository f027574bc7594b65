#!/usr/bin/env bash
# Quick start on a fresh Debian machine, as root: installs the host packages and npm
# dependencies, builds shoal, starts a shoald node with the default paths, builds the demo
# image from the host's busybox, runs a demo web container on port 8080, makes the node a
# one-node swarm and runs a 3-replica demo service. Safe to run again: what is already
# there (daemon, container, swarm, service) is reused.
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

shoal info --format json | grep -q '"LocalNodeState": "active"' || shoal swarm init --advertise-addr 127.0.0.1:4242
if ! shoal service inspect demo >/dev/null 2>&1; then
  shoal service create --name demo --replicas 3 shoal-demo/busybox sh -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait; done'
fi
shoal service ls
shoal service ps demo

echo
echo "shoald is running (log: /var/log/shoal/shoald.log); the demo web container answers on http://127.0.0.1:8080/."
echo "Clean up: shoal service rm demo; shoal container rm -f demo-web; shoal swarm leave --force; pkill -TERM -f bin/shoald"
