#!/usr/bin/env bash
# Run an Apache Kafka (KRaft) broker from jars that Maven resolves (infra/kafka/pom.xml): a
# single node, or one node of a cluster whose controllers are its brokers.
#
#   scripts/kafka.sh fetch                              resolve the jars into .cache/kafka/libs (once)
#   scripts/kafka.sh start DATA_DIR PORT CONTROLLER_PORT [NODE_ID VOTERS]
#                                                       format DATA_DIR once, then exec the broker
#   scripts/kafka.sh wait HOST:PORT[,...] [TIMEOUT_S]   wait until metadata, group and transaction
#                                                       coordinators answer
#
# Alone, the node is its own quorum (formatted --standalone) and keeps one copy of each topic.
# With NODE_ID and VOTERS (the static quorum, `1@127.0.0.1:9093,2@127.0.0.1:9193,...`) it is one
# node of that cluster: three copies of each topic (fewer on a smaller cluster), two in sync for
# an acks=all write; the nodes share the cluster id kept beside their data dirs.
#
# `start` runs in the foreground (exec) so a supervisor owns the java process; SIGTERM stops it
# cleanly. DATA_DIR keeps the cluster id and the topics across restarts. KAFKA_JVM_OPTS replaces
# the JVM options below and KAFKA_EXTRA_PROPERTIES (lines of key=value) is appended to the
# broker's properties, where it wins: for probes of broker settings (scripts/broker_cost.py);
# KAFKA_CPUS pins it to those CPUs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIBS="$ROOT/.cache/kafka/libs"
POM="$ROOT/infra/kafka/pom.xml"
STAMP="$LIBS/.fetched"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
    # The stamp records which pom the jars came from: a changed pom fetches again.
    local want
    want="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    if ! command -v java >/dev/null; then
        "$ROOT/scripts/apt-install.sh" openjdk-17-jre-headless || die "java not found: install Java 17+"
    fi
    if ! command -v mvn >/dev/null; then
        "$ROOT/scripts/apt-install.sh" maven || die "mvn not found: install Maven 3.8+"
    fi
    echo "kafka.sh: resolving Kafka jars with Maven into $LIBS" >&2
    rm -rf "$LIBS"
    mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS" -DincludeScope=runtime
    echo "$want" >"$STAMP"
}

start() {
    [[ $# -eq 3 || $# -eq 5 ]] || die "usage: kafka.sh start DATA_DIR PORT CONTROLLER_PORT [NODE_ID VOTERS]"
    local data_dir port cport node_id quorum replicas min_isr id_file format_mode
    data_dir="$(mkdir -p "$1" && cd "$1" && pwd)"
    port="$2"
    cport="$3"
    if [[ $# -eq 5 ]]; then
        local voters="$5" count
        node_id="$4"
        quorum="controller.quorum.voters=$voters"
        count="$(tr ',' '\n' <<<"$voters" | grep -c .)"
        replicas=$((count < 3 ? count : 3))
        min_isr=$((replicas > 1 ? replicas - 1 : 1))
        id_file="$(dirname "$data_dir")/cluster.id"  # one id for every node of the cluster
        format_mode=()
    else
        node_id=1
        quorum="controller.quorum.bootstrap.servers=127.0.0.1:$cport"
        replicas=1
        min_isr=1
        id_file="$data_dir/cluster.id"
        format_mode=(--standalone)
    fi
    [[ -f "$STAMP" ]] || die "Kafka jars missing: run 'scripts/kafka.sh fetch' (or 'make up')"
    command -v java >/dev/null || die "java not found: install Java 17+"

    local props="$data_dir/server.properties"
    sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@LOG_DIRS@|$data_dir/logs|g" \
        -e "s|@NODE_ID@|$node_id|g" -e "s|@QUORUM@|$quorum|g" \
        -e "s|@REPLICAS@|$replicas|g" -e "s|@MIN_ISR@|$min_isr|g" \
        "$ROOT/infra/kafka/server.properties.template" >"$props"
    if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
        printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$props"
    fi

    # The cluster id is made once and kept next to the data, so meta.properties always matches.
    # Like Kafka's own Uuid.randomUuid, never one starting with "-": the storage tool's option
    # parser read such an id as an option and refused to format (1 start in 64).
    # The nodes of a cluster may start at once: the first to take the lock makes the id.
    (
        flock 9
        if [[ ! -s "$id_file" ]]; then
            python3 -c 'import base64, uuid
while (id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
    pass
print(id)' >"$id_file"
        fi
    ) 9>"$id_file.lock"
    if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
        echo "kafka.sh: formatting $data_dir/logs (cluster id $(cat "$id_file"))" >&2
        java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
            kafka.tools.StorageTool format "${format_mode[@]}" \
            --cluster-id="$(cat "$id_file")" -c "$props"
    fi

    # KAFKA_CPUS (a taskset list) pins the broker: a probe (ADR 0001, point 8)
    local pin=()
    [[ -n "${KAFKA_CPUS:-}" ]] && pin=(taskset -c "$KAFKA_CPUS")
    # shellcheck disable=SC2086  # the options are words
    exec "${pin[@]}" java ${KAFKA_JVM_OPTS:--Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20} -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
        -cp "$LIBS/*" kafka.Kafka "$props"
}

wait_ready() {
    [[ $# -ge 1 ]] || die "usage: kafka.sh wait HOST:PORT[,...] [TIMEOUT_S]"
    local py="$ROOT/.venv/bin/python"
    [[ -x "$py" ]] || die "$py missing: run 'make venv'"
    "$py" - "$1" "${2:-60}" <<'PY'
import sys, time
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

bootstrap, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
left = lambda: max(0.5, deadline - time.monotonic())
quiet = {"bootstrap.servers": bootstrap, "log_level": 0}


def retry(what, step):
    error = None
    while time.monotonic() < deadline:
        try:
            return step()
        except KafkaException as exc:  # the broker or a coordinator is still coming up
            error = exc
            time.sleep(0.5)
    sys.exit(f"kafka.sh: {what} at {bootstrap} not ready within {timeout:g}s: {error}")


admin = AdminClient(quiet)
retry("metadata", lambda: admin.list_topics(timeout=min(5.0, left())))


# Ready means ready for the exchange's clients: make the broker create its internal
# __consumer_offsets and __transaction_state topics now, so that the first consumer group and
# the first transactional producer do not race their creation (NOT_COORDINATOR errors).
def group_coordinator():
    (future,) = admin.describe_consumer_groups(["exchange-warmup"], request_timeout=left()).values()
    future.result()


retry("group coordinator", group_coordinator)
producer = Producer({**quiet, "transactional.id": "exchange-warmup"})
retry("transaction coordinator", lambda: producer.init_transactions(left()))
PY
}

case "${1:-}" in
    fetch) fetch ;;
    start) shift; start "$@" ;;
    wait) shift; wait_ready "$@" ;;
    *) die "usage: kafka.sh {fetch|start DATA_DIR PORT CONTROLLER_PORT [NODE_ID VOTERS]|wait HOST:PORT[,...] [TIMEOUT_S]}" ;;
esac
