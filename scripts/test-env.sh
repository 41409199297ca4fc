#!/usr/bin/env bash
# Test-broker environment for ocm-ce integration tests (loopback only).
#
# Starts real brokers on free 127.0.0.1 ports and writes STATE_DIR/env
# (lines `export NAME='value'`) for the tests to source.
#
#   scripts/test-env.sh start STATE_DIR [--no-kafka|--no-mqtt|--no-kube]
#       Installs what is missing (apt: mosquitto, mosquitto-clients; Maven
#       Central: Kafka jars, cached in $HOME/.cache/ocm-ce/kafka; the Go module
#       proxy: kube-apiserver and etcd, built once and cached in
#       $HOME/.cache/ocm-ce/kube, see scripts/kube-env.sh), then starts four
#       Mosquitto instances, one single-node KRaft Kafka broker and a
#       Kubernetes API server (etcd + kube-apiserver with the ManifestWork CRDs).
#       Idempotent: components already running are kept (same ports).
#   scripts/test-env.sh stop STATE_DIR          stop everything started there
#   scripts/test-env.sh kube-build              build (or find cached) etcd and kube-apiserver
#   scripts/test-env.sh kubectl-build           build (or find cached) kubectl of the same
#                                               version; prints its path
#   scripts/test-env.sh kube-start STATE_DIR    start (only) the Kubernetes API server
#   scripts/test-env.sh kube-stop STATE_DIR     stop it
#   scripts/test-env.sh kafka-stop STATE_DIR [--kill]
#                                               stop Kafka (SIGTERM, or SIGKILL)
#   scripts/test-env.sh kafka-start STATE_DIR   restart Kafka on the same port
#                                               and data dir; waits until ready
#   scripts/test-env.sh kafka-topics STATE_DIR ARGS...
#                                               kafka-topics passthrough, e.g.
#                                               --create --topic NAME --partitions 3
#   scripts/test-env.sh kafka-produce STATE_DIR TOPIC      lines from stdin
#   scripts/test-env.sh kafka-consume STATE_DIR TOPIC N    N messages from the start
#   scripts/test-env.sh status STATE_DIR
#   scripts/test-env.sh selftest STATE_DIR      MQTT + Kafka produce/consume checks
#
# Environment written to STATE_DIR/env:
#   OCM_CE_TEST_MQTT, OCM_CE_TEST_MQTT_SMALLQ, OCM_CE_TEST_MQTT_TLS,
#   OCM_CE_TEST_MQTT_AUTH, OCM_CE_TEST_MQTT_USER, OCM_CE_TEST_MQTT_PASSWORD,
#   OCM_CE_TEST_CERTS, OCM_CE_MOSQUITTO_BIN,
#   OCM_CE_TEST_KAFKA, OCM_CE_TEST_KAFKA_SSL (a listener that requires a client
#   certificate), OCM_CE_KAFKA_JAVA_CP,
#   OCM_CE_TEST_KUBECONFIG (admin), OCM_CE_TEST_KUBECONFIG_LIMITED (a user
#   without permissions), OCM_CE_TEST_KUBE_LIMITED_USER, OCM_CE_TEST_OCM_API_DIR
#   (the Go module open-cluster-management.io/api the CRDs came from),
#   OCM_CE_TEST_ENV_SCRIPT, OCM_CE_TEST_STATE_DIR
#
# Tunables (environment): OCM_CE_CACHE (default $HOME/.cache/ocm-ce),
#   OCM_CE_KAFKA_VERSION (default 4.4.0), OCM_CE_KAFKA_HEAP (default -Xms256m -Xmx512m),
#   OCM_CE_KAFKA_READY_TIMEOUT (default 90 s), OCM_CE_MQTT_READY_TIMEOUT (default 15 s),
#   OCM_CE_KUBE_VERSION (default v1.37.2), OCM_CE_ETCD_VERSION (default v3.7.3),
#   OCM_CE_OCM_API_VERSION (default v0.15.0), OCM_CE_KUBE_READY_TIMEOUT (default 90 s).
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
CACHE_ROOT="${OCM_CE_CACHE:-$HOME/.cache/ocm-ce}"
KAFKA_VERSION="${OCM_CE_KAFKA_VERSION:-4.4.0}"
SLF4J_VERSION="2.0.17"
KAFKA_HOME_CACHE="$CACHE_ROOT/kafka/$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME_CACHE/lib"
KAFKA_HEAP="${OCM_CE_KAFKA_HEAP:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${OCM_CE_KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
KAFKA_READY_TIMEOUT="${OCM_CE_KAFKA_READY_TIMEOUT:-90}"
MQTT_READY_TIMEOUT="${OCM_CE_MQTT_READY_TIMEOUT:-15}"
MQTT_USER="ocm-ce-test"
MQTT_PASSWORD="ocm-ce-test-password"
MQTT_INSTANCES=(plain smallq tls auth)

# shellcheck source=scripts/kube-env.sh
source "$(dirname "$SCRIPT_PATH")/kube-env.sh"

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { printf '[test-env] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

usage() {
    sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- state dir

init_state() {
    [[ -n "${1:-}" ]] || usage
    mkdir -p "$1"
    STATE="$(cd "$1" && pwd)"
    PIDS="$STATE/pids"
    mkdir -p "$PIDS"
}

# Ports are persisted so restarts (and a second `start`) reuse them.
load_ports() {
    if [[ -f "$STATE/ports" ]]; then
        # shellcheck disable=SC1091
        source "$STATE/ports"
    fi
}

save_ports() {
    {
        for v in PORT_MQTT_PLAIN PORT_MQTT_SMALLQ PORT_MQTT_TLS PORT_MQTT_AUTH PORT_KAFKA PORT_KAFKA_CONTROLLER PORT_KAFKA_SSL \
            PORT_ETCD PORT_ETCD_PEER PORT_KUBE; do
            [[ -n "${!v:-}" ]] && printf '%s=%s\n' "$v" "${!v}"
        done
    } >"$STATE/ports.tmp"
    mv "$STATE/ports.tmp" "$STATE/ports"
}

# free_ports N: prints N distinct free loopback TCP ports.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

port_is_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- processes

# pid_alive NAME: true when STATE/pids/NAME.pid names a live process whose
# command line mentions this state dir (guards against pid reuse).
pid_alive() {
    local f="$PIDS/$1.pid" pid cmd
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # zombies count as dead
    [[ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != "Z" ]] || return 1
    # Ours (not a reused pid) when its command line names the state dir. It reads empty while
    # the process is between its two execs (setsid, then the program): still ours then. (Taking
    # such a moment for death once made a start fail with "exited during startup" and an
    # empty log, and then wait forever on the live process.)
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ -z "$cmd" || "$cmd" == *"$STATE/"* ]]
}

# stop_pid NAME GRACE_SECONDS [SIGNAL]
stop_pid() {
    local name="$1" grace="$2" sig="${3:-TERM}" pid deadline
    if ! pid_alive "$name"; then
        rm -f "$PIDS/$name.pid"
        return 0
    fi
    pid="$(cat "$PIDS/$name.pid")"
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$(($(now) + grace))
    while pid_alive "$name" && (($(now) < deadline)); do sleep 0.2; done
    if pid_alive "$name"; then
        log "$name (pid $pid) did not stop within ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$(($(now) + 10))
        while pid_alive "$name" && (($(now) < deadline)); do sleep 0.2; done
    fi
    rm -f "$PIDS/$name.pid"
}

# spawn NAME LOGFILE CMD...: starts CMD detached (own session, no tty, no
# inherited stdio) and records its pid.
spawn() {
    local name="$1" logf="$2"
    shift 2
    setsid "$@" </dev/null >>"$logf" 2>&1 &
    local pid=$! i
    echo "$pid" >"$PIDS/$name.pid"
    # Until the forked shell has exec'd the program, /proc/PID/cmdline is this script's and
    # pid_alive would take the process for dead: wait (bounded) for the exec.
    for ((i = 0; i < 100; i++)); do
        [[ -r "/proc/$pid/cmdline" ]] || break
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE/" && break
        sleep 0.05
    done
}

# fail_with_log MESSAGE LOGFILE: prints the message and the tail of the log
# (for the Kafka log only the part written since the last launch), exits 1.
LOG_FROM_BYTE=0
fail_with_log() {
    local msg="$1" logf="$2" from=0
    [[ "$logf" == "${STATE:-}/kafka.log" ]] && from="$LOG_FROM_BYTE"
    {
        printf '[test-env] ERROR: %s\n' "$msg"
        if [[ -f "$logf" ]]; then
            printf '[test-env] ---- last 60 lines of %s ----\n' "$logf"
            tail -c "+$((from + 1))" "$logf" | tail -n 60
            printf '[test-env] ---- (full log: %s)\n' "$logf"
        fi
    } >&2
    exit 1
}

# On a failed start, stop what this invocation may have half-started.
CLEANUP_ON_FAIL=()
on_exit() {
    local rc=$?
    if ((rc != 0)) && ((${#CLEANUP_ON_FAIL[@]} > 0)); then
        log "start failed (exit $rc); stopping: ${CLEANUP_ON_FAIL[*]}"
        local c
        for c in "${CLEANUP_ON_FAIL[@]}"; do "$c" || true; done
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- installs

apt_install() {
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || apt-get update
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" >/dev/null ||
        apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends "$@"
}

ensure_mosquitto() {
    local pkgs=()
    command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || pkgs+=(mosquitto)
    command -v mosquitto_pub >/dev/null 2>&1 || pkgs+=(mosquitto-clients)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
    MOSQUITTO_BIN="$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)"
    [[ -x "$MOSQUITTO_BIN" ]] || die "mosquitto not found after install"
}

ensure_java() {
    local pkgs=()
    command -v java >/dev/null 2>&1 || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
}

kafka_jars_present() { [[ -f "$KAFKA_LIB/.complete" ]]; }

ensure_kafka_jars() {
    kafka_jars_present && return 0
    ensure_java
    mkdir -p "$KAFKA_HOME_CACHE"
    # Serialise concurrent first runs on one machine.
    exec 9>"$KAFKA_HOME_CACHE/.lock"
    flock -w 600 9 || die "timed out waiting for lock $KAFKA_HOME_CACHE/.lock"
    if kafka_jars_present; then exec 9>&-; return 0; fi
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central (one-time, cached in $KAFKA_HOME_CACHE)"
    cat >"$KAFKA_HOME_CACHE/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by ocm-ce scripts/test-env.sh: runtime classpath of a test Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ocm-ce.test</groupId>
  <artifactId>kafka-test-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    rm -rf "$KAFKA_LIB.tmp"
    if ! (cd "$KAFKA_HOME_CACHE" && mvn -B -q dependency:copy-dependencies \
        -DoutputDirectory="$KAFKA_LIB.tmp" -DincludeScope=runtime >"$KAFKA_HOME_CACHE/mvn.log" 2>&1); then
        fail_with_log "mvn dependency:copy-dependencies failed" "$KAFKA_HOME_CACHE/mvn.log"
    fi
    [[ -f "$KAFKA_LIB.tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        fail_with_log "kafka_2.13-$KAFKA_VERSION.jar missing after mvn" "$KAFKA_HOME_CACHE/mvn.log"
    touch "$KAFKA_LIB.tmp/.complete"
    rm -rf "$KAFKA_LIB"
    mv "$KAFKA_LIB.tmp" "$KAFKA_LIB"
    exec 9>&-
}

# ---------------------------------------------------------------- certificates

ensure_certs() {
    local d="$STATE/certs" f missing=0
    for f in ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem; do
        [[ -s "$d/$f" ]] || missing=1
    done
    if ((missing == 0)) && openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in "$d/client.pem" >/dev/null 2>&1; then
        return 0
    fi
    log "generating test CA and certificates in $d"
    rm -rf "$d"
    mkdir -p "$d"
    (
        cd "$d"
        cat >ext.cnf <<'EOF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = DNS:ocm-ce-test-client
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ca-key.pem 2>/dev/null
        openssl req -new -key ca-key.pem -out ca.csr -subj "/O=ocm-ce test/CN=ocm-ce test CA"
        openssl x509 -req -in ca.csr -signkey ca-key.pem -days 3650 -sha256 \
            -set_serial "0x$(openssl rand -hex 16)" -extfile ext.cnf -extensions ca -out ca.pem 2>/dev/null
        rm -f ca.csr
        for who in server client; do
            if [[ $who == server ]]; then cn=localhost; else cn=ocm-ce-test-client; fi
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$who-key.pem" 2>/dev/null
            openssl req -new -key "$who-key.pem" -out "$who.csr" -subj "/O=ocm-ce test/CN=$cn"
            openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca-key.pem \
                -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
                -extfile ext.cnf -extensions "$who" -out "$who.pem" 2>/dev/null
            rm -f "$who.csr"
        done
        chmod 644 ./*.pem
    ) || die "certificate generation failed"
    openssl verify -CAfile "$d/ca.pem" "$d/server.pem" "$d/client.pem" >/dev/null ||
        die "generated certificates do not verify"
    [[ "$(openssl x509 -noout -text -in "$d/ca.pem" | grep -c 'Version: 3')" == 1 ]] ||
        die "generated CA is not X.509 v3"
}

# ---------------------------------------------------------------- mosquitto

mqtt_port_var() {
    case "$1" in
    plain) echo PORT_MQTT_PLAIN ;; smallq) echo PORT_MQTT_SMALLQ ;;
    tls) echo PORT_MQTT_TLS ;; auth) echo PORT_MQTT_AUTH ;;
    esac
}

write_mosquitto_conf() {
    local inst="$1" port="$2" d="$STATE/mosquitto"
    mkdir -p "$d"
    {
        echo "# generated by test-env.sh ($inst)"
        echo "user root"
        echo "persistence false"
        echo "log_dest stderr"
        echo "log_type error"
        echo "log_type warning"
        echo "log_type notice"
        echo "log_type information"
        echo "connection_messages true"
        echo "log_timestamp true"
        echo "max_keepalive 65535"
        echo "listener $port 127.0.0.1"
        case "$inst" in
        plain)
            echo "allow_anonymous true"
            echo "max_queued_messages 100000"
            echo "max_inflight_messages 0"
            ;;
        smallq)
            echo "allow_anonymous true"
            echo "max_queued_messages 5"
            ;;
        tls)
            echo "allow_anonymous false"
            echo "max_queued_messages 100000"
            echo "cafile $STATE/certs/ca.pem"
            echo "certfile $STATE/certs/server.pem"
            echo "keyfile $STATE/certs/server-key.pem"
            echo "require_certificate true"
            echo "use_identity_as_username true"
            ;;
        auth)
            echo "allow_anonymous false"
            echo "max_queued_messages 100000"
            echo "password_file $d/passwd"
            ;;
        esac
    } >"$d/$inst.conf"
}

start_mosquitto_instance() {
    local inst="$1"
    local name="mosquitto-$inst" var port
    var="$(mqtt_port_var "$inst")"
    if pid_alive "$name"; then
        log "$name already running on 127.0.0.1:${!var} (pid $(cat "$PIDS/$name.pid"))"
        return 0
    fi
    port="${!var:-}"
    if [[ -z "$port" ]] || ! port_is_free "$port"; then
        port="$(free_ports 1)"
        printf -v "$var" '%s' "$port"
    fi
    write_mosquitto_conf "$inst" "$port"
    spawn "$name" "$STATE/mosquitto/$inst.log" "$MOSQUITTO_BIN" -c "$STATE/mosquitto/$inst.conf"
}

wait_mosquitto_instance() {
    local inst="$1"
    local name="mosquitto-$inst" var port deadline
    var="$(mqtt_port_var "$inst")"
    port="${!var}"
    deadline=$(($(now) + MQTT_READY_TIMEOUT))
    until tcp_open "$port"; do
        pid_alive "$name" || fail_with_log "$name exited during startup" "$STATE/mosquitto/$inst.log"
        (($(now) < deadline)) || fail_with_log "$name not listening on 127.0.0.1:$port after ${MQTT_READY_TIMEOUT}s" "$STATE/mosquitto/$inst.log"
        sleep 0.1
    done
}

start_mosquitto() {
    ensure_mosquitto
    ensure_certs
    mkdir -p "$STATE/mosquitto"
    if [[ ! -s "$STATE/mosquitto/passwd" ]]; then
        rm -f "$STATE/mosquitto/passwd"
        mosquitto_passwd -b -c "$STATE/mosquitto/passwd" "$MQTT_USER" "$MQTT_PASSWORD" >/dev/null 2>&1 ||
            die "mosquitto_passwd failed"
        chmod 600 "$STATE/mosquitto/passwd"
    fi
    local inst
    for inst in "${MQTT_INSTANCES[@]}"; do start_mosquitto_instance "$inst"; done
    save_ports
    for inst in "${MQTT_INSTANCES[@]}"; do wait_mosquitto_instance "$inst"; done
    mqtt_check
}

# MQTT v5 end-to-end checks (retained message so there is no subscribe race;
# the retained message is cleared again afterwards).
mqtt_roundtrip() {
    # mqtt_roundtrip LABEL PORT EXTRA_ARGS...
    local label="$1" port="$2"
    shift 2
    local topic="ocm-ce/test-env/selfcheck/$$-$RANDOM" got
    mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$port" "$@" -q 1 -r -t "$topic" -m "hello-$label" \
        -D publish user-property ocm-ce-check "$label" ||
        return 1
    got="$(mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$port" "$@" -q 1 -t "$topic" -C 1 -W 5 -F '%p|%P')" || true
    mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$port" "$@" -q 1 -r -t "$topic" -n || true
    [[ "$got" == "hello-$label|ocm-ce-check:$label" ]] || {
        printf '[test-env] %s round trip returned %q\n' "$label" "$got" >&2
        return 1
    }
}

mqtt_check() {
    local c="$STATE/certs"
    mqtt_roundtrip plain "$PORT_MQTT_PLAIN" ||
        fail_with_log "MQTT v5 round trip (user property) failed on plain broker" "$STATE/mosquitto/plain.log"
    mqtt_roundtrip smallq "$PORT_MQTT_SMALLQ" ||
        fail_with_log "MQTT v5 round trip failed on small-queue broker" "$STATE/mosquitto/smallq.log"
    mqtt_roundtrip tls "$PORT_MQTT_TLS" --cafile "$c/ca.pem" --cert "$c/client.pem" --key "$c/client-key.pem" ||
        fail_with_log "MQTT v5 mTLS round trip failed" "$STATE/mosquitto/tls.log"
    mqtt_roundtrip auth "$PORT_MQTT_AUTH" -u "$MQTT_USER" -P "$MQTT_PASSWORD" ||
        fail_with_log "MQTT v5 username/password round trip failed" "$STATE/mosquitto/auth.log"
    # Negative checks: wrong password and missing client certificate are refused.
    if mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$PORT_MQTT_AUTH" -u "$MQTT_USER" -P wrong \
        -t ocm-ce/test-env/neg -m x >/dev/null 2>&1; then
        die "auth broker accepted a wrong password"
    fi
    if mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$PORT_MQTT_TLS" --cafile "$c/ca.pem" \
        -t ocm-ce/test-env/neg -m x >/dev/null 2>&1; then
        die "TLS broker accepted a client without certificate"
    fi
    log "mosquitto ready: plain=$PORT_MQTT_PLAIN smallq=$PORT_MQTT_SMALLQ tls=$PORT_MQTT_TLS auth=$PORT_MQTT_AUTH"
}

stop_mosquitto() {
    local inst
    for inst in "${MQTT_INSTANCES[@]}"; do stop_pid "mosquitto-$inst" 10; done
}

# ---------------------------------------------------------------- kafka

kafka_java() {
    # kafka_java [JVM_OPTS...] -- CLASS ARGS...
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dlog4j2.statusLoggerLevel=OFF \
        -Djava.awt.headless=true -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
        -cp "$KAFKA_LIB/*" "$@"
}

write_kafka_conf() {
    local d="$STATE/kafka"
    mkdir -p "$d"
    cat >"$d/server.properties" <<EOF
# generated by test-env.sh: single-node KRaft broker, loopback only
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT_KAFKA,CONTROLLER://127.0.0.1:$PORT_KAFKA_CONTROLLER,SSL://127.0.0.1:$PORT_KAFKA_SSL
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT_KAFKA,SSL://127.0.0.1:$PORT_KAFKA_SSL
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL
# The SSL listener requires a client certificate (sdk-go turns Kafka TLS on only with one).
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$STATE/kafka/server-keystore.pem
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$STATE/certs/ca.pem
listener.name.ssl.ssl.client.auth=required
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.voters=1@127.0.0.1:$PORT_KAFKA_CONTROLLER
log.dirs=$STATE/kafka-data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
# Faster re-registration after an unclean stop (kafka-stop --kill).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=16777216
# Each partition preallocates its offset and time indexes at this size (default 10 MiB each);
# the test suites create thousands of partitions, which at the default filled the disk. 64 KiB
# indexes a whole 16 MiB segment at the default index interval.
log.index.size.max.bytes=65536
log.retention.check.interval.ms=300000
EOF
}

kafka_format_if_needed() {
    [[ -f "$STATE/kafka-data/meta.properties" ]] && return 0
    local cluster_id
    # (an id starting with "-" would be taken for an option by the storage tool: 1 run in 64)
    cluster_id="$(python3 -c 'import base64,uuid
while True:
    i = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not i.startswith("-"):
        print(i)
        break')"
    mkdir -p "$STATE/kafka-data"
    if ! kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE/kafka/server.properties" \
        >"$STATE/kafka/format.log" 2>&1; then
        fail_with_log "kafka storage format failed" "$STATE/kafka/format.log"
    fi
}

# Kafka ApiVersions v0 request over raw TCP: succeeds once the broker serves
# client requests on its PLAINTEXT listener.
kafka_api_probe() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, struct, sys
port = int(sys.argv[1])
client = b"ocm-ce-test-env"
body = struct.pack(">hhih", 18, 0, 4242, len(client)) + client
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(body)) + body)
    data = b""
    while len(data) < 10:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(1)
        data += chunk
    size, corr, err = struct.unpack(">iih", data[:10])
    sys.exit(0 if corr == 4242 and err == 0 else 1)
except Exception:
    sys.exit(1)
EOF
}

kafka_launch() {
    local logf="$STATE/kafka.log"
    write_kafka_conf
    kafka_format_if_needed
    LOG_FROM_BYTE="$(stat -c %s "$logf" 2>/dev/null || echo 0)"
    printf '\n==== %s starting kafka on 127.0.0.1:%s ====\n' "$(date -Is)" "$PORT_KAFKA" >>"$logf"
    # shellcheck disable=SC2086
    spawn kafka "$logf" java $KAFKA_HEAP $KAFKA_JVM_OPTS \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS" \
        -Dorg.slf4j.simpleLogger.log.state.change.logger=warn \
        -Dorg.slf4j.simpleLogger.log.kafka.log=warn \
        -Dorg.slf4j.simpleLogger.log.org.apache.kafka.storage=warn \
        -Dlog4j2.statusLoggerLevel=OFF \
        -Dkafka.logs.dir="$STATE/kafka" \
        -cp "$KAFKA_LIB/*" kafka.Kafka "$STATE/kafka/server.properties"
}

kafka_wait_ready() {
    local logf="$STATE/kafka.log" deadline t0
    t0=$(now)
    deadline=$((t0 + KAFKA_READY_TIMEOUT))
    until kafka_api_probe "$PORT_KAFKA"; do
        pid_alive kafka || fail_with_log "kafka exited during startup" "$logf"
        (($(now) < deadline)) || fail_with_log "kafka not ready on 127.0.0.1:$PORT_KAFKA after ${KAFKA_READY_TIMEOUT}s" "$logf"
        sleep 0.25
    done
    # Metadata round trip through the admin client (also proves the tools work).
    if ! kafka_topics_cmd --list >"$STATE/kafka/probe.log" 2>&1; then
        cat "$STATE/kafka/probe.log" >>"$logf"
        fail_with_log "kafka-topics --list failed against 127.0.0.1:$PORT_KAFKA" "$logf"
    fi
    log "kafka ready on 127.0.0.1:$PORT_KAFKA (controller $PORT_KAFKA_CONTROLLER) after $(($(now) - t0))s"
}

kafka_topics_cmd() {
    timeout 60 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dlog4j2.statusLoggerLevel=OFF \
        -Djava.awt.headless=true -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
        -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$PORT_KAFKA" "$@"
}

start_kafka() {
    ensure_kafka_jars
    if pid_alive kafka; then
        log "kafka already running on 127.0.0.1:$PORT_KAFKA (pid $(cat "$PIDS/kafka.pid"))"
        kafka_wait_ready
        return 0
    fi
    if [[ -z "${PORT_KAFKA:-}" || -z "${PORT_KAFKA_CONTROLLER:-}" || -z "${PORT_KAFKA_SSL:-}" ]] ||
        ! port_is_free "$PORT_KAFKA" || ! port_is_free "$PORT_KAFKA_CONTROLLER" || ! port_is_free "$PORT_KAFKA_SSL"; then
        read -r PORT_KAFKA PORT_KAFKA_CONTROLLER PORT_KAFKA_SSL < <(free_ports 3)
    fi
    # The SSL listener's key and certificate, one PEM file (Kafka's PEM key store).
    ensure_certs
    mkdir -p "$STATE/kafka"
    cat "$STATE/certs/server-key.pem" "$STATE/certs/server.pem" >"$STATE/kafka/server-keystore.pem"
    save_ports
    kafka_launch
    kafka_wait_ready
}

stop_kafka() {
    local sig=TERM
    [[ "${1:-}" == "--kill" ]] && sig=KILL
    stop_pid kafka 30 "$sig"
}

# ---------------------------------------------------------------- env file

write_env() {
    local f="$STATE/env.tmp"
    q() { printf "export %s='%s'\n" "$1" "$2"; }
    {
        echo "# generated by scripts/test-env.sh; source this file"
        q OCM_CE_TEST_ENV_SCRIPT "$SCRIPT_PATH"
        q OCM_CE_TEST_STATE_DIR "$STATE"
        if [[ -n "${PORT_MQTT_PLAIN:-}" ]] && pid_alive mosquitto-plain; then
            q OCM_CE_TEST_MQTT "127.0.0.1:$PORT_MQTT_PLAIN"
            q OCM_CE_TEST_MQTT_SMALLQ "127.0.0.1:$PORT_MQTT_SMALLQ"
            q OCM_CE_TEST_MQTT_TLS "127.0.0.1:$PORT_MQTT_TLS"
            q OCM_CE_TEST_MQTT_AUTH "127.0.0.1:$PORT_MQTT_AUTH"
            q OCM_CE_TEST_MQTT_USER "$MQTT_USER"
            q OCM_CE_TEST_MQTT_PASSWORD "$MQTT_PASSWORD"
            q OCM_CE_TEST_CERTS "$STATE/certs"
            q OCM_CE_MOSQUITTO_BIN "$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)"
        fi
        if [[ -n "${PORT_KAFKA:-}" ]] && pid_alive kafka; then
            q OCM_CE_TEST_KAFKA "127.0.0.1:$PORT_KAFKA"
            q OCM_CE_TEST_KAFKA_SSL "127.0.0.1:$PORT_KAFKA_SSL"
            q OCM_CE_TEST_CERTS "$STATE/certs"
            q OCM_CE_KAFKA_JAVA_CP "$KAFKA_LIB/*"
        fi
        kube_env_lines
    } >"$f"
    mv "$f" "$STATE/env"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local want_mqtt=1 want_kafka=1 want_kube=1 t0
    t0=$(now)
    for a in "${@:2}"; do
        case "$a" in
        --no-kafka | --mqtt-only) want_kafka=0 ;;
        --no-mqtt | --kafka-only) want_mqtt=0 ;;
        --no-kube) want_kube=0 ;;
        *) die "unknown option: $a" ;;
        esac
    done
    init_state "$1"
    load_ports
    CLEANUP_ON_FAIL=(stop_kafka stop_mosquitto stop_kube)
    # Fetch Kafka jars and build Kubernetes before starting anything, so a
    # slow first download does not delay mosquitto readiness checks.
    ((want_kafka == 0)) || ensure_kafka_jars
    ((want_kube == 0)) || ensure_kube_binaries
    ((want_mqtt == 0)) || start_mosquitto
    ((want_kafka == 0)) || start_kafka
    ((want_kube == 0)) || start_kube
    save_ports
    write_env
    log "environment ready in $(($(now) - t0))s; source $STATE/env"
}

cmd_stop() {
    [[ -n "${1:-}" ]] || usage
    [[ -d "$1" ]] || return 0
    init_state "$1"
    stop_kube
    stop_kafka
    stop_mosquitto
    log "stopped (state kept in $STATE)"
}

need_kafka_state() {
    init_state "$1"
    load_ports
    [[ -n "${PORT_KAFKA:-}" && -n "${PORT_KAFKA_CONTROLLER:-}" ]] ||
        die "no Kafka ports recorded in $STATE; run '$0 start $1' first"
    kafka_jars_present || die "Kafka jars missing in $KAFKA_LIB; run '$0 start $1' first"
}

cmd_kafka_stop() {
    [[ -n "${1:-}" ]] || usage
    [[ -d "$1" ]] || return 0
    init_state "$1"
    stop_kafka "${2:-}"
    log "kafka stopped"
}

cmd_kafka_start() {
    need_kafka_state "$1"
    CLEANUP_ON_FAIL=(stop_kafka)
    if pid_alive kafka; then
        kafka_wait_ready
        return 0
    fi
    local deadline=$(($(now) + 30))
    # Same port as before; wait briefly if the old socket is still held.
    until port_is_free "$PORT_KAFKA" && port_is_free "$PORT_KAFKA_CONTROLLER"; do
        (($(now) < deadline)) || die "Kafka ports $PORT_KAFKA/$PORT_KAFKA_CONTROLLER are still in use"
        sleep 0.5
    done
    kafka_launch
    kafka_wait_ready
    write_env
}

cmd_kafka_topics() {
    need_kafka_state "$1"
    shift
    kafka_topics_cmd "$@"
}

cmd_kafka_produce() {
    need_kafka_state "$1"
    [[ -n "${2:-}" ]] || usage
    timeout 60 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dlog4j2.statusLoggerLevel=OFF \
        -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m -cp "$KAFKA_LIB/*" \
        org.apache.kafka.tools.ConsoleProducer --bootstrap-server "127.0.0.1:$PORT_KAFKA" \
        --topic "$2" --command-property acks=all
}

cmd_kafka_consume() {
    need_kafka_state "$1"
    [[ -n "${2:-}" && -n "${3:-}" ]] || usage
    timeout 90 java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dlog4j2.statusLoggerLevel=OFF \
        -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m -cp "$KAFKA_LIB/*" \
        org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "127.0.0.1:$PORT_KAFKA" \
        --topic "$2" --from-beginning --max-messages "$3" --timeout-ms 60000
}

cmd_status() {
    init_state "$1"
    load_ports
    local n
    for n in mosquitto-plain mosquitto-smallq mosquitto-tls mosquitto-auth kafka etcd kube-apiserver; do
        if pid_alive "$n"; then echo "$n: running (pid $(cat "$PIDS/$n.pid"))"; else echo "$n: stopped"; fi
    done
    [[ -f "$STATE/ports" ]] && cat "$STATE/ports"
}

cmd_kube_start() {
    init_state "$1"
    load_ports
    CLEANUP_ON_FAIL=(stop_kube)
    start_kube
    write_env
}

cmd_kube_stop() {
    [[ -n "${1:-}" ]] || usage
    [[ -d "$1" ]] || return 0
    init_state "$1"
    stop_kube
    write_env
    log "kubernetes stopped"
}

cmd_selftest() {
    init_state "$1"
    load_ports
    if pid_alive mosquitto-plain; then mqtt_check; fi
    if pid_alive kafka; then
        local topic="ocm-ce-selftest-$$-$RANDOM" got
        kafka_topics_cmd --create --topic "$topic" --partitions 1 --replication-factor 1 >/dev/null
        printf 'one\ntwo\nthree\n' | cmd_kafka_produce "$1" "$topic"
        got="$(cmd_kafka_consume "$1" "$topic" 3 2>/dev/null | tr '\n' ' ')"
        [[ "$got" == "one two three " ]] || die "kafka consume returned: $got"
        kafka_topics_cmd --delete --topic "$topic" >/dev/null
        log "kafka produce/consume ok"
    fi
    if pid_alive kube-apiserver; then
        [[ "$(kube_curl admin /readyz)" == ok ]] || die "kube-apiserver is not ready"
        kube_curl admin /apis/work.open-cluster-management.io/v1 | grep -q '"manifestworks"' ||
            die "the ManifestWork CRD is not served"
        # The second identity is authenticated but has no permission.
        kube_curl limited -o /dev/null -w '%{http_code}' /api/v1/namespaces | grep -qx 403 ||
            die "the limited identity is not refused"
        check_loopback_only etcd
        check_loopback_only kube-apiserver
        log "kubernetes ok: ready, ManifestWork CRD served, RBAC enforced, loopback only"
    fi
}

main() {
    local cmd="${1:-}"
    [[ -n "$cmd" ]] || usage
    shift
    case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kafka-stop) cmd_kafka_stop "$@" ;;
    kafka-start) cmd_kafka_start "$@" ;;
    kafka-topics) cmd_kafka_topics "$@" ;;
    kafka-produce) cmd_kafka_produce "$@" ;;
    kafka-consume) cmd_kafka_consume "$@" ;;
    kube-build) ensure_kube_binaries && printf '%s\n%s\n' "$(kube_apiserver_bin)" "$(etcd_bin)" ;;
    kubectl-build) ensure_kubectl && kubectl_bin ;;
    kube-start) cmd_kube_start "$@" ;;
    kube-stop) cmd_kube_stop "$@" ;;
    status) cmd_status "$@" ;;
    selftest) cmd_selftest "$@" ;;
    mqtt-only)
        [[ "${1:-}" == start ]] || usage
        shift
        cmd_start "$1" --no-kafka
        ;;
    -h | --help | help) usage ;;
    *) usage ;;
    esac
}

main "$@"
