#!/usr/bin/env bash
# Mosquitto's own clients with the payload size of the mqtt_roundtrip bench: the physical limit
# to compare it with. mosquitto_pub sends N messages of 1 KiB at QoS 1 (MQTT 5) to one topic,
# mosquitto_sub receives them; the time from the first publish to the last message received
# gives messages/s. A source -> agent -> status round trip moves two such messages.
#
#   source DIR/env && crates/ocm-ce-client/benches/mqtt_mosquitto_baseline.sh [N]
set -euo pipefail
N="${1:-20000}"
: "${OCM_CE_TEST_MQTT:?set OCM_CE_TEST_MQTT (scripts/test-env.sh start DIR; source DIR/env)}"
host="${OCM_CE_TEST_MQTT%:*}"
port="${OCM_CE_TEST_MQTT##*:}"
tmp="$(mktemp -d)"
sub_pid=""
cleanup() {
    [[ -n "$sub_pid" ]] && kill "$sub_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
head -c 1024 /dev/zero | tr '\0' x >"$tmp/payload"
topic="ocm-ce/bench/baseline-$$"

mosquitto_sub -V mqttv5 -h "$host" -p "$port" -q 1 -t "$topic" -C "$N" -W 300 >/dev/null &
sub_pid=$!
# The CLI has no "subscribed" signal; give the SUBSCRIBE time to reach the broker.
sleep 1
start="$(date +%s.%N)"
mosquitto_pub -V mqttv5 -h "$host" -p "$port" -q 1 -t "$topic" -f "$tmp/payload" --repeat "$N"
pub_end="$(date +%s.%N)"
wait "$sub_pid"
sub_pid=""
end="$(date +%s.%N)"
python3 - "$N" "$start" "$pub_end" "$end" <<'PY'
import sys
n, start, pub_end, end = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"mosquitto_pub -> mosquitto_sub, QoS 1, 1 KiB: {n} messages in {end - start:.2f} s = "
      f"{n / (end - start):.0f} messages/s (publisher alone {n / (pub_end - start):.0f}/s); "
      f"= {n / (end - start) / 2:.0f} two-message round trips/s")
PY
