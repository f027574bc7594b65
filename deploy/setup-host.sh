#!/usr/bin/env bash
# Prepares a Debian host (as root) to run shoald and its tests: installs the host packages
# shoal drives, and checks the kernel features it needs. Idempotent and non-interactive:
# run it again at any time. Exit status 0 means every required part is present.
#
#   deploy/setup-host.sh            install what is missing, then check
#   deploy/setup-host.sh --check    only check, install nothing
set -euo pipefail

check_only=0
[[ ${1:-} == --check ]] && check_only=1

# Package -> why shoal needs it.
declare -A why=(
  [runc]="OCI runtime that starts containers"
  [crun]="faster OCI runtime, used where the host's cgroup layout lets it run"
  [conmon]="per-container monitor: containers outlive shoald restarts"
  [containernetworking-plugins]="CNI plugins (bridge, host-local, portmap, loopback) for container networks"
  [nftables]="packet filtering for service VIPs, published ports and the lab's partitions"
  [iproute2]="ip and tc: network namespaces, veth pairs, netem"
  [busybox-static]="the static busybox that demo and test images are built from"
  [docker-registry]="the CNCF distribution registry that tests push to and pull from"
  [attr]="setfattr: marks opaque directories when unpacking image layers"
  [util-linux]="mount, umount, nsenter, unshare"
  [kmod]="modprobe: loads overlay, br_netfilter and vxlan when built as modules"
  [ca-certificates]="HTTPS to public registries"
  [wrk]="HTTP load generator for bench/mesh (routing mesh vs direct)"
)
packages=(runc crun conmon containernetworking-plugins nftables iproute2 busybox-static docker-registry attr util-linux kmod ca-certificates wrk)

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-host: run as root (it installs packages and checks kernel features)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $check_only -eq 1 ]]; then
    for p in "${missing[@]}"; do echo "missing package $p: ${why[$p]}" >&2; done
    echo "fix: deploy/setup-host.sh (without --check) installs them" >&2
    exit 1
  fi
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged registry starts a service on :5000; tests run their own registries.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

problems=0
problem() { echo "problem: $1" >&2; echo "  fix: $2" >&2; problems=$((problems + 1)); }
note() { echo "note: $1"; }

# overlayfs: the snapshotter mounts every container's root filesystem with it.
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || problem "the kernel has no overlay filesystem" "load it (modprobe overlay) or use a kernel built with CONFIG_OVERLAY_FS"

# network namespaces: one per container, and one per host in the local lab.
if ! ip netns add shoal-setup-probe 2>/dev/null; then
  problem "cannot create network namespaces" "run on a kernel with CONFIG_NET_NS, as root, outside a restricted container"
else
  ip netns del shoal-setup-probe
fi

# cgroups: v1, v2 or hybrid. crun 1.8 refuses hybrid hosts whose cgroup2 mount holds controllers.
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  note "cgroup v2 (unified): runc and crun both work"
elif [[ -d /sys/fs/cgroup/memory ]]; then
  if [[ -n $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null) ]]; then
    note "cgroup v1 with a hybrid cgroup2 mount holding '$(cat /sys/fs/cgroup/unified/cgroup.controllers)': crun refuses this layout, shoal uses runc"
  else
    note "cgroup v1: runc and crun both work"
  fi
else
  problem "no usable cgroup hierarchy under /sys/fs/cgroup" "mount cgroup v2 at /sys/fs/cgroup (or the v1 controllers memory, cpu, pids)"
fi

for bin in runc conmon /usr/lib/cni/bridge nft ip busybox; do
  command -v "$bin" >/dev/null 2>&1 || [[ -x $bin ]] || problem "$bin not found" "deploy/setup-host.sh installs it"
done

# 20.15 brought zlib.crc32, the checksum of snapshot files.
node_recent=$(node -p 'const [major, minor] = process.versions.node.split(".").map(Number); major > 20 || (major === 20 && minor >= 15) ? 1 : 0' 2>/dev/null || echo 0)
if [[ $node_recent != 1 ]]; then
  problem "Node.js 20.15 or newer is needed (found $(node --version 2>/dev/null || echo none))" "install nodejs >= 20.15"
fi

if [[ $problems -gt 0 ]]; then
  echo "setup-host: $problems problem(s); shoal will not run fully on this host" >&2
  exit 1
fi
echo "setup-host: ready ($(runc --version | head -1), conmon $(conmon --version | head -1 | awk '{print $3}'), $(uname -r))"
