#!/usr/bin/env bash
# The hand-written baseline graceroll is timed against (bench/roll-speed.ts): the same steps per node,
# one node at a time, written the way a careful operator would, polling every 100 ms.
#
#   bench/shell-loop.sh SOCKET BACKEND SSH_CONFIG PORT NODE=IP [NODE=IP ...]
#
#   SOCKET      HAProxy's runtime API socket (level admin), reached with socat
#   BACKEND     the HAProxy backend; its servers are named like the nodes
#   SSH_CONFIG  an ssh_config for the nodes (user, key, known_hosts); connections are multiplexed
#   PORT        the service's port: /health is checked there and no established connection may remain
#
# Per node: drain + maint in HAProxy, wait for 0 sessions; read the main PID and send SIGUSR1
# (systemctl kill); wait until that process is gone and no connection is established on PORT; restart;
# wait for a new PID and HEALTH_CONSECUTIVE healthy /health answers in a row; ready in HAProxy, wait for UP.
# Each step's duration goes to stderr as `phase NODE STEP MS` (for the per-step comparison).
# Exits 1 at the first step that does not finish within its deadline, leaving that node as it is.
set -euo pipefail

if (($# < 5)); then
  echo "usage: $0 SOCKET BACKEND SSH_CONFIG PORT NODE=IP [NODE=IP ...]" >&2
  exit 2
fi
sock=$1 backend=$2 ssh_config=$3 port=$4
shift 4
poll=${POLL:-0.1}
consecutive=${HEALTH_CONSECUTIVE:-3}
deadline_s=${STEP_DEADLINE:-60}

mux=$(mktemp -d /tmp/shell-loop-mux.XXXXXX)
sshn() {
  ssh -F "$ssh_config" -o ControlMaster=auto -o "ControlPath=$mux/%h" -o ControlPersist=120 "$@"
}
cleanup() {
  for spec in "${nodes[@]}"; do sshn -O exit "${spec#*=}" 2>/dev/null || true; done
  rm -rf "$mux"
}
nodes=("$@")
trap cleanup EXIT

hap() { printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$sock"; }
# "scur status" of one server, from `show stat` (CSV field 5 = scur, 18 = status)
server_stat() { hap "show stat" | awk -F, -v b="$backend" -v s="$1" '$1 == b && $2 == s { print $5, $18 }'; }

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
step_started=0
begin() { step_started=$(now_ms); }
end() { echo "phase $1 $2 $(($(now_ms) - step_started))" >&2; }

# until_ok WHAT CMD...: polls CMD every $poll seconds until it succeeds, for at most $deadline_s.
until_ok() {
  local what=$1 limit=$((SECONDS + deadline_s))
  shift
  until "$@"; do
    if ((SECONDS >= limit)); then
      echo "shell-loop: $what: not within ${deadline_s}s" >&2
      exit 1
    fi
    sleep "$poll"
  done
}

out_of_rotation_and_idle() {
  local s
  s=$(server_stat "$1")
  [[ $s == "0 MAINT" ]]
}
old_gone_and_idle() {
  sshn "$1" "[ \"\$(systemctl show -p MainPID --value web.service)\" != $2 ] &&
    [ -z \"\$(ss -Htn state established '( sport = :$port )')\" ]"
}
healthy_streak=0
new_and_healthy() {
  local pid
  pid=$(sshn "$1" systemctl show -p MainPID --value web.service)
  if [[ $pid != 0 && $pid != "$2" ]] && curl -fsS -o /dev/null --max-time 2 "http://$3:$port/health"; then
    healthy_streak=$((healthy_streak + 1))
  else
    healthy_streak=0
  fi
  ((healthy_streak >= consecutive))
}
# Serving again: HAProxy's status is UP, or "UP 1/2" right after leaving MAINT (traffic flows to it;
# graceroll and Ansible's haproxy module accept the same).
is_up() {
  local s
  s=$(server_stat "$1")
  [[ ${s#* } == UP* ]]
}

for spec in "${nodes[@]}"; do
  node=${spec%%=*} ip=${spec#*=}

  begin
  hap "set server $backend/$node state drain" >/dev/null
  hap "set server $backend/$node state maint" >/dev/null
  until_ok "$node: 0 sessions in HAProxy" out_of_rotation_and_idle "$node"
  end "$node" lb-drain

  begin
  pid=$(sshn "$ip" 'systemctl show -p MainPID --value web.service &&
    systemctl kill -s USR1 --kill-whom=main web.service')
  end "$node" signal

  begin
  until_ok "$node: drain" old_gone_and_idle "$ip" "$pid"
  end "$node" drain

  begin
  sshn "$ip" systemctl restart web.service
  end "$node" restart

  begin
  healthy_streak=0
  until_ok "$node: new process, healthy" new_and_healthy "$ip" "$pid" "$ip"
  end "$node" verify

  begin
  hap "set server $backend/$node state ready" >/dev/null
  until_ok "$node: UP in HAProxy" is_up "$node"
  end "$node" register
done
