# Developer and CI entry points (GNU make). Works on a fresh Debian 12 machine with swift, gcc, make, git
# and python3: `make deps` installs the rest. Every target can be run again safely.
#
#   make deps            install librabbitmq-dev libsqlite3-dev rabbitmq-server pkg-config openssl time (if missing)
#   make broker          start the shared RabbitMQ node `saga` on 127.0.0.1:5672 (data in .broker/)
#   make broker-status   is it up?          make broker-stop    stop it
#   make build | release swift build (debug | release)
#   make test            deps + broker, then swift test (AMQP_URL exported)
#   make topology        declare the reference app's exchanges and queues on the broker
#   make demo            run the money-transfer demo against the broker
#   make bench           run saga-bench against the broker (throughput, latency, RSS)
#   make bench-scale     saga-bench's long suites: 1,000,000 live sagas, and a 1,000,000-message soak
#   make clean-broker    stop the node and delete .broker/
#
# BROKER=docker uses docker-compose.yml for the broker instead of the Debian package (needs a running
# Docker engine); nothing else depends on Docker.

SHELL := /bin/bash
.DEFAULT_GOAL := build

SWIFT ?= swift
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL

# The shared node (scripts/broker.sh reads these from its environment).
BROKER ?= debian
BROKER_NODE_NAME ?= saga
BROKER_NODE_PORT ?= 5672
BROKER_SCRIPT = BROKER_NAME=$(BROKER_NODE_NAME) BROKER_PORT=$(BROKER_NODE_PORT) scripts/broker.sh
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

SWIFT_TEST_FLAGS ?=
RELEASE_BIN ?= .build/release
# Passed to `saga-endpoint demo` (see `saga-endpoint demo --help`).
DEMO_ARGS ?= --transfers 1000 --batches 10
BENCH_ARGS ?=

.PHONY: deps broker broker-stop broker-status build release topology test demo bench bench-build bench-scale clean-broker docker-check

# scripts/deps.sh runs `apt-get update` and `apt-get install -y librabbitmq-dev libsqlite3-dev rabbitmq-server
# pkg-config openssl time` as root when any is missing (a fresh CI machine has none of them).
deps:
	@scripts/deps.sh

ifeq ($(BROKER),docker)
docker-check:
	@docker info >/dev/null 2>&1 || { echo "BROKER=docker needs a running Docker engine (docker info failed)" >&2; exit 1; }

broker: deps docker-check
	$(COMPOSE) up -d --wait rabbitmq

broker-stop: docker-check
	$(COMPOSE) stop rabbitmq

broker-status: docker-check
	@$(COMPOSE) ps rabbitmq

clean-broker:
	-@docker info >/dev/null 2>&1 && $(COMPOSE) down -v
	rm -rf .broker
else
broker: deps
	@$(BROKER_SCRIPT) start

broker-stop:
	@$(BROKER_SCRIPT) stop

broker-status:
	@$(BROKER_SCRIPT) status

clean-broker:
	@if [ -x /usr/lib/rabbitmq/bin/rabbitmqctl ]; then $(BROKER_SCRIPT) clean; fi
	rm -rf .broker
endif

build:
	$(SWIFT) build

release:
	$(SWIFT) build -c release

# The URL reaches the commands through the exported AMQP_URL: on a command line it would be echoed here
# and visible in `ps`, password included.
topology: broker
	$(SWIFT) run -c release saga-endpoint topology declare

# swift test prints its own summary last; its exit status is make's. Swift Testing runs every test at
# once by default: on two cores that put the load average past 50, starving the broker and the clients
# (missed heartbeats, slow rabbitmqctl). Twelve at a time takes as long (the chaos test is the critical
# path) at a third of the load. TEST_PARALLELISM=0 lifts the limit.
TEST_PARALLELISM ?= 12
test: deps broker
	$(if $(filter-out 0,$(TEST_PARALLELISM)),SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_PARALLELISM)) $(SWIFT) test $(SWIFT_TEST_FLAGS)

# The demo command starts the endpoint and the simulated bank as child processes itself.
# The demo starts the endpoint and the bank as child processes and stops them; a broker that was not
# running before `make demo` is stopped again at the end (its data stays in .broker/).
demo: deps release
	@started=0; \
	if [ "$(BROKER)" != docker ] && ! $(BROKER_SCRIPT) status >/dev/null 2>&1; then started=1; fi; \
	status=0; $(MAKE) --no-print-directory broker topology || status=$$?; \
	if [ $$status = 0 ]; then $(RELEASE_BIN)/saga-endpoint demo $(DEMO_ARGS) || status=$$?; fi; \
	if [ $$started = 1 ]; then $(BROKER_SCRIPT) stop; fi; \
	exit $$status

# saga-bench makes a vhost of its own through BENCH_CTL (rabbitmqctl against the broker) and deletes it at
# the end: the money-transfer cases use the reference app's fixed queue names, which a running demo owns
# in the default vhost. `make bench-scale` runs the long opt-in suites (1,000,000 live sagas; the soak).
ifeq ($(BROKER),docker)
BENCH_CTL ?= $(COMPOSE) exec -T rabbitmq rabbitmqctl
else
BENCH_CTL ?= $(BROKER_SCRIPT) ctl
endif
BENCH_SCALE_ARGS ?=

bench-build:
	$(SWIFT) build -c release --product saga-bench

bench: deps broker bench-build
	$(RELEASE_BIN)/saga-bench --ctl '$(BENCH_CTL)' $(BENCH_ARGS)

bench-scale: deps broker bench-build
	$(RELEASE_BIN)/saga-bench --ctl '$(BENCH_CTL)' --case scale --case soak $(BENCH_SCALE_ARGS)
