#!/usr/bin/env bash
# Tears down one lab instance, found by its prefix (e.g. grlab1), and nothing else.
#
# One script serves lab.stop(), the process-exit safety net and the clean-up of labs left behind by
# a crashed run, and it can be run by hand: `bash test/lab/teardown.sh grlab1`. It is idempotent and
# copes with a half-built lab, so every step tolerates "already gone". Exits 1 if anything remains.
set -u
P=${1:?usage: teardown.sh PREFIX}
[[ $P =~ ^grlab[0-9]+$ ]] || { echo "teardown: bad prefix '$P'" >&2; exit 2; }
STOP_WAIT_S=${GRLAB_STOP_WAIT_S:-15}
RUN=/run/graceroll-lab
BASE=$RUN/$P

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then CG_ROOTS=(/sys/fs/cgroup)
else CG_ROOTS=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified); fi

# Only pids we recorded, and only while their command line still names this lab (pid reuse).
lab_nspawn_pids() {
  local f pid
  for f in "$BASE"/*/nspawn.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-M $P-" && echo "$pid"
  done
}

# Of the given pids, those still running (an exiting process loses its cmdline first; a zombie
# has released everything).
running() {
  local pid state
  for pid in "$@"; do
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] && echo "$pid"
  done
}

# 1. Containers: SIGTERM makes nspawn shut the node's systemd down cleanly; SIGKILL after a while.
pids=$(lab_nspawn_pids)
if [ -n "$pids" ]; then
  kill -TERM $pids 2>/dev/null
  for _ in $(seq $((STOP_WAIT_S * 20))); do
    [ -z "$(running $pids)" ] && break
    sleep 0.05
  done
  left=$(running $pids)
  [ -n "$left" ] && { echo "teardown: SIGKILL nspawn $left" >&2; kill -KILL $left 2>/dev/null; }
fi
# Whatever is still in the lab's cgroups (a node whose nspawn died first) or its namespaces
# (commands run with lab.exec) belongs to the lab.
for root in "${CG_ROOTS[@]}"; do
  [ -d "$root/graceroll-lab/$P" ] || continue
  find "$root/graceroll-lab/$P" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
sleep 0.1

# 2. Files nspawn keeps on the host for a machine (it refuses to delete them when /run is on disk).
rm -rf /run/systemd/nspawn/propagate/"$P"-* 2>/dev/null
for f in "$BASE"/*/nspawn.lock; do [ -f "$f" ] && rm -f "/run/systemd/nspawn/locks/$(cat "$f")"; done

# 3. Mounts: the overlays (and anything under them), then the lab's tmpfs.
if [ -d "$BASE" ]; then
  findmnt -rn -o TARGET | grep "^$BASE/" | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  mountpoint -q "$BASE" && { umount "$BASE" 2>/dev/null || umount -l "$BASE"; }
  rmdir "$BASE" 2>/dev/null
fi

# 4. Network: namespaces (their veth ends go with them), then the bridge and any stray host veth.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-"); do ip netns del "$ns"; done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$P(-br|v)"); do
  ip link del "$link" 2>/dev/null
done

# 5. Cgroups, deepest first.
for root in "${CG_ROOTS[@]}"; do
  [ -d "$root/graceroll-lab/$P" ] && find "$root/graceroll-lab/$P" -depth -type d -exec rmdir {} + 2>/dev/null
  rmdir "$root/graceroll-lab" 2>/dev/null
done

# 6. The ownership claim goes last: until it is gone no other lab reuses this prefix.
left=$(
  ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" | sed 's/^/netns /'
  ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$P(-br|v)" | sed 's/^/link /'
  findmnt -rn -o TARGET | grep -E "^$BASE(/|$)" | sed 's/^/mount /'
  for root in "${CG_ROOTS[@]}"; do [ -d "$root/graceroll-lab/$P" ] && echo "cgroup $root/graceroll-lab/$P"; done
  lab_nspawn_pids | sed 's/^/nspawn pid /'
)
if [ -n "$left" ]; then
  echo "teardown: $P left behind:" >&2
  echo "$left" >&2
  exit 1
fi
rm -f "$RUN/$P.owner"
rmdir "$RUN" 2>/dev/null
exit 0
