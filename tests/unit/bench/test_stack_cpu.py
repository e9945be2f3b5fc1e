"""The CPU attribution of the benches (bench/stack_cpu.py): the arithmetic, and finding pids."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from bench.stack_cpu import (
    CpuProbe,
    compiler_seconds,
    cpu_seconds,
    infra_ports,
    listening_pid,
    machine_seconds,
    ms_per_order,
    percent_of_core,
    request_table,
    requests_per_order,
    stolen_percent,
    table,
    total,
)


def test_cpu_per_order_and_share_of_a_core_come_from_the_difference_of_two_reads():
    before = {"gateway": 10.0, "kafka broker": 100.0, "redis": None, "gone": 1.0}
    after = {"gateway": 10.4, "kafka broker": 100.8, "redis": None, "gone": None}
    per_order = ms_per_order(before, after, orders=100)
    assert abs(per_order["gateway"] - 4.0) < 1e-9
    assert abs(per_order["kafka broker"] - 8.0) < 1e-9
    assert per_order["redis"] is None and per_order["gone"] is None
    assert abs(total(per_order) - 12.0) < 1e-9
    share = percent_of_core(before, after, seconds=10)
    assert abs(share["kafka broker"] - 8.0) < 1e-9 and abs(share["gateway"] - 4.0) < 1e-9
    assert ms_per_order(before, after, orders=0)["gateway"] is None  # nothing to divide by
    assert ms_per_order({}, {"new": 1.0}, orders=5)["new"] is None


def test_the_stolen_share_is_of_the_machine_time_between_two_reads():
    assert stolen_percent((100.0, 5.0), (120.0, 8.0)) == 15.0
    assert stolen_percent((100.0, 5.0), (100.0, 5.0)) == 0.0  # no time passed
    every, stolen = machine_seconds()
    assert every > 0 and 0 <= stolen <= every


def test_the_table_puts_the_largest_first_and_says_what_is_unknown():
    rows = table({"wallet": 1.5, "kafka broker": 7.25, "redis": None}, "CPU ms per order")
    assert rows == [
        "| process | CPU ms per order |",
        "| --- | ---: |",
        "| kafka broker | 7.25 |",
        "| wallet | 1.50 |",
        "| redis | unknown (process not found) |",
        "| total of the known | 8.75 |",
    ]
    assert table({"a": 1.0}, "x")[-1] == "| total | 1.00 |"


SPAWNER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def test_a_process_counts_its_children_but_not_those_named_on_their_own():
    # a parent of its own: this test process may have other children still running
    parent = subprocess.Popen([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())  # type: ignore[union-attr]
    try:
        with_child = CpuProbe({"parent": parent.pid, "nobody": None})
        apart = CpuProbe({"parent": parent.pid, "child": child})
        while (cpu_seconds(child) or 0.0) < 0.2:
            time.sleep(0.01)  # the child spins
        own, child_time = cpu_seconds(parent.pid), cpu_seconds(child)
        together, separate = with_child.read(), apart.read()
        assert together["nobody"] is None
        assert together["parent"] >= own + child_time
        assert own <= separate["parent"] < own + child_time  # the parent sleeps
        assert separate["child"] >= child_time
    finally:
        os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
    assert cpu_seconds(parent.pid) is None


def test_the_listener_of_a_port_is_found():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert listening_pid(server.getsockname()[1]) == os.getpid()


def test_the_infrastructure_ports_come_from_the_environment():
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092,127.0.0.1:19093",
        "REDIS_URL": "redis://127.0.0.1:16379/0",
        "DATABASE_URL": "postgresql://exchange:exchange@127.0.0.1:15432/exchange",
    }
    assert infra_ports(env) == {"kafka broker": 19092, "redis": 16379, "postgres": 15432}
    assert infra_ports({}) == {"kafka broker": None, "redis": None, "postgres": None}


def test_requests_per_order_counts_only_what_each_process_sent_between_the_reads() -> None:
    before = {"wallet": {"Produce": 10.0, "Fetch": 40.0}, "gateway": {}}
    after = {
        "wallet": {"Produce": 30.0, "Fetch": 80.0, "EndTxn": 2.0},
        "gateway": {"Produce": 10.0},
    }
    per = requests_per_order(before, after, 10)
    assert per == {
        "wallet": {"Produce": 2.0, "Fetch": 4.0, "EndTxn": 0.2},
        "gateway": {"Produce": 1.0},
    }
    assert requests_per_order(before, after, 0) == {}
    rows = request_table(per)
    assert rows[2] == "| wallet | 2.00 | 4.00 | 0.20 | 6.20 |"  # the most requests first
    assert rows[-1] == "| total | 3.00 | 4.00 | 0.20 | 7.20 |"


SPIN = """
class Spin {
    public static void main(String[] args) throws Exception {
        System.out.println("compiled");
        System.out.flush();
        Thread.sleep(60_000);
    }
}
"""


def test_the_jit_compiler_threads_of_a_jvm_are_found(tmp_path):
    # java runs a source file by compiling it in-process first: its JIT has work by then
    source = tmp_path / "Spin.java"
    source.write_text(SPIN)
    jvm = subprocess.Popen(["java", str(source)], stdout=subprocess.PIPE, text=True)
    try:
        assert jvm.stdout is not None and jvm.stdout.readline().strip() == "compiled"
        compiled = compiler_seconds(jvm.pid)
        assert compiled is not None and 0 < compiled <= cpu_seconds(jvm.pid)
        probe = CpuProbe({"kafka broker": jvm.pid, "gateway": os.getpid()})
        assert probe.compiling()["kafka broker"] >= compiled
    finally:
        jvm.kill()
        jvm.wait()
    assert compiler_seconds(jvm.pid) is None  # gone
    assert compiler_seconds(os.getpid()) == 0.0  # CPython has no such threads
    assert CpuProbe({"gateway": os.getpid()}).compiling() == {"kafka broker": None}
