#!/usr/bin/env bash
# Self-test of the Go interop harness over MQTT (Go source <-> Go agent, both on
# sdk-go v0.15.0) through a local Mosquitto broker on a free loopback port.
#
#   interop/go/selftest-mqtt.sh            # builds, runs, exits non-zero on failure
#
# Needs: go, python3, mosquitto (apt-get install -y mosquitto).
# Env: KEEP_WORKDIR=1 keeps the temporary directory (logs, configs, state file);
# MODES="holder manual" which go-source --client-mode values to run;
# AGENT=latest runs go-agent-latest (sdk-go v1.3.0) instead of go-agent.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d -t ocm-interop-selftest.XXXXXX)"
mosq_pid=""
cleanup() {
	if [[ -n "$mosq_pid" ]]; then kill "$mosq_pid" 2>/dev/null || true; wait "$mosq_pid" 2>/dev/null || true; fi
	if [[ "${KEEP_WORKDIR:-0}" == "1" ]]; then echo "selftest: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

MOSQUITTO="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"
[[ -x "$MOSQUITTO" ]] || { echo "selftest: mosquitto not found (apt-get install -y mosquitto)" >&2; exit 2; }

echo "selftest: building" >&2
(cd "$here" && go build -o "$work/bin/" ./cmd/...)
if [[ "${AGENT:-v0.15}" == "latest" ]]; then
	# cross-version: the v0.15.0 source against go-agent-latest (sdk-go v1.3.0, v2 MQTT transport)
	echo "selftest: using go-agent-latest as the agent" >&2
	(cd "$here/../go-latest" && go build -o "$work/bin/" ./cmd/go-agent-latest)
	ln -sf go-agent-latest "$work/bin/go-agent"
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 100000
persistence false
EOF
"$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mosq_pid=$!
for _ in $(seq 1 100); do
	if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2).close()" 2>/dev/null; then break; fi
	sleep 0.1
done

cat >"$work/source.yaml" <<EOF
brokerHost: 127.0.0.1:$port
topics:
  sourceEvents: sources/source1/clusters/+/sourceevents
  agentEvents: sources/source1/clusters/+/agentevents
  sourceBroadcast: sources/+/sourcebroadcast
EOF
cat >"$work/agent.yaml" <<EOF
brokerHost: 127.0.0.1:$port
topics:
  sourceEvents: sources/source1/clusters/cluster1/sourceevents
  agentEvents: sources/source1/clusters/cluster1/agentevents
  sourceBroadcast: sources/+/sourcebroadcast
EOF

echo "selftest: broker on 127.0.0.1:$port, work dir $work" >&2
for mode in ${MODES:-holder manual}; do
rm -f "$work/state.json"
echo "selftest: scenario with go-source --client-mode $mode" >&2
python3 "$here/selftest_scenario.py" "$work" mqtt "$mode"
done
echo "selftest: all scenarios passed" >&2
