#!/usr/bin/env bash
# Installs (or upgrades) shoal on a Debian host, as root: host packages (deploy/setup-host.sh),
# a release tree in /opt/shoal, the commands /usr/local/bin/shoal and shoald, the data dir
# /var/lib/shoal, and the systemd unit shoald.service, enabled and (re)started. Idempotent:
# running it again upgrades the release in place and restarts shoald, whose containers keep
# running (the unit's KillMode=process; the new shoald adopts them).
#
#   deploy/install.sh                  build this checkout (npm ci, npm run build) and install it
#   deploy/install.sh --from DIR       install a tree that is already built (holds dist/ and package.json)
#   deploy/install.sh --no-start       install and enable, but do not start or restart shoald
#   deploy/install.sh --skip-setup     do not run deploy/setup-host.sh
#   deploy/install.sh --dry-run        print every command instead of running it (no root needed)
#   deploy/install.sh --prefix DIR     install the release in DIR instead of /opt/shoal
#   deploy/install.sh --root DIR       install every file under DIR (a staging root, as DESTDIR);
#                                      implies --skip-setup and --no-start, and leaves systemd alone
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/.." && pwd)
prefix=/opt/shoal
from=""
start=1
setup=1
dry_run=0
bin_dir=/usr/local/bin
data_dir=/var/lib/shoal
unit_dir=/etc/systemd/system
defaults_file=/etc/default/shoald
root=""

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --no-start) start=0; shift ;;
    --skip-setup) setup=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    --root) root=${2:?--root needs a directory}; setup=0; start=0; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Every command that changes the host goes through run, so --dry-run shows them all.
run() {
  if [[ $dry_run -eq 1 ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

say() { echo "install: $*"; }

# Everything below writes under $root (empty: the host itself).
prefix="$root$prefix"
bin_dir="$root$bin_dir"
data_dir="$root$data_dir"
unit_dir="$root$unit_dir"
defaults_file="$root$defaults_file"
if [[ -n $root ]]; then
  run mkdir -p "$(dirname "$prefix")" "$bin_dir" "$unit_dir" "$(dirname "$defaults_file")"
fi

if [[ $dry_run -eq 0 && -z $root && $(id -u) -ne 0 ]]; then
  echo "install: run as root (it installs packages, writes /opt, /usr/local/bin and /etc/systemd)" >&2
  exit 1
fi

# 20.15 brought zlib.crc32, the checksum of snapshot files.
node_recent=$(node -p 'const [major, minor] = process.versions.node.split(".").map(Number); major > 20 || (major === 20 && minor >= 15) ? 1 : 0' 2>/dev/null || echo 0)
if [[ $node_recent != 1 ]]; then
  echo "install: Node.js 20.15 or later is needed (found: $(node --version 2>/dev/null || echo none)); install the nodejs package from NodeSource or Debian backports" >&2
  exit 1
fi

if [[ $setup -eq 1 ]]; then
  say "checking host packages and kernel features (deploy/setup-host.sh)"
  run "$source_dir/deploy/setup-host.sh"
fi

# 1. A built tree: the given one, or this checkout built now.
if [[ -z $from ]]; then
  say "building $source_dir"
  run npm --prefix "$source_dir" ci --no-audit --no-fund
  run npm --prefix "$source_dir" run build
  from=$source_dir
fi
if [[ $dry_run -eq 0 && ! -f $from/dist/src/bin/shoald.js ]]; then
  echo "install: $from holds no built release (dist/src/bin/shoald.js is missing): run npm run build there, or drop --from" >&2
  exit 1
fi

# 2. The release, staged next to its final place and swapped in, so a failed copy or
#    dependency install leaves the running release untouched.
staging="$prefix.new"
say "installing the release in $prefix"
run rm -rf "$staging"
run mkdir -p "$staging"
run mkdir -p "$staging/dist"
run cp -a "$from/dist/src" "$staging/dist/"
run cp -a "$from/proto" "$from/package.json" "$from/package-lock.json" "$staging/"
[[ -f $from/README.md ]] && run cp -a "$from/README.md" "$staging/"
run npm --prefix "$staging" ci --omit=dev --ignore-scripts --no-audit --no-fund
run chmod 0755 "$staging/dist/src/bin/shoald.js" "$staging/dist/src/bin/shoal.js"
if [[ -d $prefix ]]; then
  run rm -rf "$prefix.old"
  run mv "$prefix" "$prefix.old"
fi
run mv "$staging" "$prefix"
run rm -rf "$prefix.old"

# 3. Commands, data dir, defaults file (kept when present: it holds this host's settings).
# The links name the installed location, not the staging root.
run ln -sfn "${prefix#"$root"}/dist/src/bin/shoald.js" "$bin_dir/shoald"
run ln -sfn "${prefix#"$root"}/dist/src/bin/shoal.js" "$bin_dir/shoal"
run install -d -m 0700 "$data_dir"
if [[ ! -f $defaults_file ]]; then
  say "writing $defaults_file (edit SHOAL_ADVERTISE_ADDR before joining a swarm)"
  if [[ $dry_run -eq 1 ]]; then
    echo "+ write $defaults_file"
  else
    cat >"$defaults_file" <<'DEFAULTS'
# shoald settings (environment variables; `shoald --help` lists them all).
SHOAL_DATA_DIR=/var/lib/shoal
SHOAL_LISTEN_ADDR=0.0.0.0:4242
# The address other nodes reach this one at, e.g. 10.0.0.11:4242 (needed when listening on 0.0.0.0).
#SHOAL_ADVERTISE_ADDR=
SHOAL_LOG_LEVEL=info
DEFAULTS
  fi
fi

# 4. The unit.
run install -m 0644 "$source_dir/deploy/systemd/shoald.service" "$unit_dir/shoald.service"
if [[ -n $root ]]; then
  say "installed under $root; systemd was left alone"
  exit 0
fi
run systemctl daemon-reload
run systemctl enable shoald.service
if [[ $start -eq 1 ]]; then
  # restart starts a stopped unit too; a running shoald is replaced and adopts its containers.
  run systemctl restart shoald.service
  say "shoald (re)started: check it with 'systemctl status shoald' and 'shoal info'"
else
  say "shoald is enabled but was not started (--no-start): 'systemctl start shoald' starts it"
fi
