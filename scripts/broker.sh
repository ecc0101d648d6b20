#!/usr/bin/env bash
# Starts or stops a RabbitMQ node from Debian's rabbitmq-server package, with its data and logs in a
# git-ignored folder of the repo, listening on 127.0.0.1 only.
#
#   scripts/broker.sh start|stop|status|clean     (clean = stop, then delete the node's folder)
#   scripts/broker.sh ctl ARGS...        (rabbitmqctl against this node, e.g. `ctl list_queues`)
#
# Environment: BROKER_NAME (default saga), BROKER_PORT (5672), BROKER_DIST_PORT (BROKER_PORT + 20000),
# BROKER_EXTRA_CONFIG (a file appended to rabbitmq.conf, e.g. a TLS listener), BROKER_DIR (.broker).
# Tests that stop, restart or reconfigure a broker start their own node with another name and ports so
# they never disturb the shared one (see Tests/BrokerTestSupport). When run as root the node runs as the
# `rabbitmq` user, so BROKER_DIR and every folder above it must be reachable by that user (when the repo
# itself is not and BROKER_DIR is unset, the data goes to /var/tmp/saga-broker-<hash of the repo path>).
set -euo pipefail

cmd=${1:-start}
[ $# -gt 0 ] && shift
name=${BROKER_NAME:-saga}
port=${BROKER_PORT:-5672}
dist_port=${BROKER_DIST_PORT:-$((port + 20000))}
extra_config=${BROKER_EXTRA_CONFIG:-}

repo=$(cd "$(dirname "$0")/.." && pwd)
broker_dir=${BROKER_DIR:-$repo/.broker}
if [ -z "${BROKER_DIR:-}" ] && [ "$(id -u)" = 0 ] && ! runuser -u rabbitmq -- test -x "$repo" 2>/dev/null; then
  # A clone under a private folder (e.g. /root) is out of the rabbitmq user's reach: keep the data elsewhere.
  broker_dir="/var/tmp/saga-broker-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)"
fi
base="$broker_dir/$name"
node="$name@localhost"

as_rabbitmq() {
  # The service user owns the node's folder; HOME points at its Erlang cookie so rabbitmqctl can talk to it.
  if [ "$(id -u)" = 0 ]; then
    runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq "$@"
  else
    env HOME="${HOME}" "$@"
  fi
}

node_env=(
  RABBITMQ_NODENAME="$node"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  RABBITMQ_NODE_PORT="$port"
  RABBITMQ_DIST_PORT="$dist_port"
  RABBITMQ_MNESIA_BASE="$base/mnesia"
  RABBITMQ_LOG_BASE="$base/log"
  RABBITMQ_PID_FILE="$base/pid"
  RABBITMQ_CONFIG_FILE="$base/rabbitmq"
  RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
  RABBITMQ_ADVANCED_CONFIG_FILE="$base/advanced.config"
  ERL_EPMD_ADDRESS=127.0.0.1
  ERL_CRASH_DUMP="$base/log/erl_crash.dump"
)

ctl() { as_rabbitmq env "${node_env[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" "$@"; }

accepting() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# The distribution port epmd has registered for this node name, if a node of that name is up (quick: no VM).
registered_port() {
  local epmd
  epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1) || return 0
  [ -n "$epmd" ] || return 0
  { ERL_EPMD_ADDRESS=127.0.0.1 "$epmd" -names 2>/dev/null || true; } | awk -v n="$name" '$1 == "name" && $2 == n { print $5 }'
}

# Whether this very node (this name on this distribution port) is up, as opposed to a namesake elsewhere.
is_this_node() { [ "$(registered_port)" = "$dist_port" ]; }

# The node's Erlang VM, from its pid file, if that process is alive and really is this node.
vm_pid() {
  local pid
  pid=$(cat "$base/pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  local environment
  environment=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null) || return 1
  grep -qx "RABBITMQ_NODENAME=$node" <<< "$environment" || return 1
  echo "$pid"
}

fail_start() {
  echo "broker $node did not start: $1 (logs in $base/log)" >&2
  tail -20 "$base/log/startup.log" >&2 2>/dev/null || true
  exit 1
}

case "$cmd" in
  start)
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "rabbitmq-server is not installed (run: make deps)" >&2; exit 1; }
    registered=$(registered_port)
    if [ -n "$registered" ]; then
      if [ "$registered" = "$dist_port" ] && accepting; then echo "broker $node already running on 127.0.0.1:$port"; exit 0; fi
      echo "another node named $node is running (distribution port $registered): pick another BROKER_NAME" >&2
      exit 1
    fi
    if accepting; then
      echo "port 127.0.0.1:$port is taken by something other than broker $node" \
        "(a system rabbitmq-server service? stop it, or set BROKER_PORT)" >&2
      exit 1
    fi
    mkdir -p "$base/mnesia" "$base/log"
    [ -n "${BROKER_DIR:-}" ] || chmod 755 "$broker_dir"
    {
      echo "listeners.tcp.1 = 127.0.0.1:$port"
      echo "loopback_users = none"
      echo "log.console = false"
      echo "log.file.level = warning"
      echo "disk_free_limit.absolute = 50MB"
      if [ -n "$extra_config" ]; then cat "$extra_config"; fi
    } > "$base/rabbitmq.conf"
    echo "[]." > "$base/enabled_plugins"
    # The Erlang distribution port (rabbitmqctl talks to the node through it) listens on every interface
    # unless told otherwise: loopback only, like AMQP and epmd.
    echo "[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}]." > "$base/advanced.config"
    if [ "$(id -u)" = 0 ]; then
      chown -R rabbitmq:rabbitmq "$base"
      runuser -u rabbitmq -- test -w "$base/mnesia" \
        || fail_start "user rabbitmq cannot write $base (make the folders above it reachable, e.g. chmod 755)"
    fi
    (
      # Hand the node none of our caller's descriptors besides stdio: a node that inherits the write end
      # of a pipe keeps whoever reads that pipe waiting for EOF until the node stops.
      for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
      done
      cd "$base"
      exec > "$base/log/startup.log" 2>&1 < /dev/null
      as_rabbitmq env "${node_env[@]}" setsid -w /usr/lib/rabbitmq/bin/rabbitmq-server
    ) &
    server=$!
    # Up to 3 minutes: several nodes booting at once on a small CI machine are slow.
    for _ in $(seq 1 1800); do
      if ! kill -0 "$server" 2>/dev/null; then fail_start "the node exited during boot"; fi
      if accepting && is_this_node; then
        # The port opens a moment before the node finishes booting; await_startup closes that gap.
        if ctl await_startup --timeout 60 >/dev/null 2>&1; then
          echo "broker $node up on 127.0.0.1:$port (data in $base)"; exit 0
        fi
        kill -0 "$server" 2>/dev/null && ctl stop >/dev/null 2>&1 || true
        fail_start "the node did not finish booting"
      fi
      sleep 0.1
    done
    if pid=$(vm_pid); then kill -KILL "$pid" 2>/dev/null || true; fi
    fail_start "timed out waiting for 127.0.0.1:$port"
    ;;
  stop)
    registered=$(registered_port)
    if [ -n "$registered" ] && [ "$registered" != "$dist_port" ]; then
      echo "broker $node runs with distribution port $registered, not $dist_port: not stopping it" \
        "(check BROKER_PORT / BROKER_DIST_PORT)" >&2
      exit 1
    fi
    # Not `rabbitmqctl stop PIDFILE`: it waits forever for a pid file that a stopped node has removed.
    if pid=$(vm_pid); then
      ctl stop >/dev/null 2>&1 || true
      for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    elif is_this_node; then
      ctl stop >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 100); do accepting || break; sleep 0.1; done
    echo "broker $node stopped"
    ;;
  clean)
    "$BASH" "$0" stop
    rm -rf "$base"
    echo "broker $node data removed ($base)"
    ;;
  status)
    if accepting && is_this_node; then echo "broker $node up on 127.0.0.1:$port"; exit 0; fi
    if accepting; then echo "broker $node down (port 127.0.0.1:$port is taken by something else)"; exit 1; fi
    echo "broker $node down"; exit 1
    ;;
  ctl)
    cd /tmp && ctl "$@"
    ;;
  *) echo "usage: $0 start|stop|status|clean|ctl ARGS..." >&2; exit 2 ;;
esac
