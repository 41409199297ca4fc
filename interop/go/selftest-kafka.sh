#!/usr/bin/env bash
# Self-test of the Go interop harness over Kafka (build tag kafka; cgo with the
# static librdkafka shipped in confluent-kafka-go): Go source <-> Go agent on
# sdk-go v0.15.0 through librdkafka's in-process mock cluster
# (cmd/kafka-mock-broker) on loopback, with the topics pre-created.
#
#   interop/go/selftest-kafka.sh           # builds, runs, exits non-zero on failure
#
# Needs: go, gcc, python3. Env: KEEP_WORKDIR=1 keeps the temporary directory.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d -t ocm-interop-kafka-selftest.XXXXXX)"
broker_pid=""
cleanup() {
	if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
	if [[ "${KEEP_WORKDIR:-0}" == "1" ]]; then echo "selftest: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "selftest: building (-tags kafka)" >&2
(cd "$here" && CGO_ENABLED=1 go build -tags kafka -o "$work/bin/" ./cmd/...)

topics="sourcebroadcast.source1,sourceevents.source1.cluster1,agentevents.source1.cluster1,agentbroadcast.cluster1"
stop_broker() {
	if [[ -n "$broker_pid" ]]; then
		echo '{"op":"quit"}' >&9 || true
		exec 9>&-
		wait "$broker_pid" 2>/dev/null || true
		broker_pid=""
	fi
}

# One fresh mock cluster per scenario: Kafka keeps the events of an earlier
# scenario (same work UIDs), which a new consumer would replay.
for mode in ${MODES:-holder manual}; do
	rm -f "$work/state.json" "$work/broker.in" "$work/broker.out"
	mkfifo "$work/broker.in"
	"$work/bin/kafka-mock-broker" --topics "$topics" <"$work/broker.in" >"$work/broker.out" 2>>"$work/broker.stderr.log" &
	broker_pid=$!
	exec 9>"$work/broker.in" # keeps the broker's stdin open
	bootstrap=""
	for _ in $(seq 1 100); do
		bootstrap="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e.get("event")=="ready": print(e["bootstrapServers"])' "$work/broker.out" 2>/dev/null || true)"
		[[ -n "$bootstrap" ]] && break
		sleep 0.1
	done
	[[ -n "$bootstrap" ]] || { echo "selftest: mock kafka did not start" >&2; cat "$work/broker.stderr.log" >&2; exit 1; }

	# Short group session timeouts: a restarted source rejoins its consumer
	# group (and gets its partitions back) quickly.
	for who in source1:source agent1:agent; do
		printf 'bootstrapServer: %s\ngroupID: %s\nsession.timeout.ms: 6000\nheartbeat.interval.ms: 500\n' \
			"$bootstrap" "${who%%:*}" >"$work/${who##*:}.yaml"
	done

	echo "selftest: mock kafka at $bootstrap; scenario with go-source --client-mode $mode" >&2
	SELFTEST_TIMEOUT="${SELFTEST_TIMEOUT:-90}" python3 "$here/selftest_scenario.py" "$work" kafka "$mode"
	stop_broker
done
echo "selftest: all scenarios passed" >&2
