#!/usr/bin/env bash
# Starts or stops a RabbitMQ node from Debian's rabbitmq-server package, with its data and logs in a
# git-ignored folder of the repo, listening on 127.0.0.1 only.
#
#   scripts/broker.sh start|stop|status
#   scripts/broker.sh ctl ARGS...        (rabbitmqctl against this node, e.g. `ctl list_queues`)
#
# Environment: BROKER_NAME (default saga), BROKER_PORT (5672), BROKER_DIST_PORT (BROKER_PORT + 20000),
# BROKER_EXTRA_CONFIG (a file appended to rabbitmq.conf, e.g. a TLS listener), BROKER_DIR (.broker).
# Tests that stop, restart or reconfigure a broker start their own node with another name and ports so
# they never disturb the shared one.
set -euo pipefail

cmd=${1:-start}
[ $# -gt 0 ] && shift
name=${BROKER_NAME:-saga}
port=${BROKER_PORT:-5672}
dist_port=${BROKER_DIST_PORT:-$((port + 20000))}
extra_config=${BROKER_EXTRA_CONFIG:-}

repo=$(cd "$(dirname "$0")/.." && pwd)
base="${BROKER_DIR:-$repo/.broker}/$name"
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
)

ctl() { as_rabbitmq env "${node_env[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" "$@"; }

is_up() { ctl await_startup --timeout 1 >/dev/null 2>&1 || ctl status >/dev/null 2>&1; }

accepting() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

case "$cmd" in
  start)
    if accepting && ctl status >/dev/null 2>&1; then echo "broker $node already running on 127.0.0.1:$port"; exit 0; fi
    mkdir -p "$base/mnesia" "$base/log"
    {
      echo "listeners.tcp.1 = 127.0.0.1:$port"
      echo "loopback_users = none"
      echo "log.console = false"
      echo "log.file.level = warning"
      echo "disk_free_limit.absolute = 50MB"
      [ -n "$extra_config" ] && cat "$extra_config"
    } > "$base/rabbitmq.conf"
    echo "[]." > "$base/enabled_plugins"
    echo "[]." > "$base/advanced.config"
    if [ "$(id -u)" = 0 ]; then chown -R rabbitmq:rabbitmq "$base"; fi
    as_rabbitmq env "${node_env[@]}" setsid /usr/lib/rabbitmq/bin/rabbitmq-server \
      > "$base/log/startup.log" 2>&1 < /dev/null &
    for _ in $(seq 1 300); do
      if accepting; then
        # The port opens a moment before the node finishes booting; await_startup closes that gap.
        ctl await_startup --timeout 60 >/dev/null 2>&1 || true
        echo "broker $node up on 127.0.0.1:$port (data in $base)"; exit 0
      fi
      sleep 0.2
    done
    echo "broker $node did not start; see $base/log" >&2; tail -20 "$base/log/startup.log" >&2 || true; exit 1
    ;;
  stop)
    if ctl status >/dev/null 2>&1; then ctl stop "$base/pid" >/dev/null 2>&1 || ctl stop >/dev/null 2>&1 || true; fi
    for _ in $(seq 1 100); do accepting || break; sleep 0.1; done
    echo "broker $node stopped"
    ;;
  status)
    if accepting; then echo "broker $node up on 127.0.0.1:$port"; else echo "broker $node down"; exit 1; fi
    ;;
  ctl)
    cd /tmp && ctl "$@"
    ;;
  *) echo "usage: $0 start|stop|status|ctl ARGS..." >&2; exit 2 ;;
esac
