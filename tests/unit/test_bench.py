"""The benchmark's pure parts: percentiles, the ladder's decisions, /proc parsing, conditions."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import cpu
from bench.conditions import cpu_model
from bench.ladder import Targets, best, next_rate, verdict
from bench.load import OrderRun
from bench.observe import parse_lag
from bench.stats import figures, percentile


def test_percentiles_interpolate_between_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) != percentile([], 50)  # NaN


def run(post_ms: float, terminal_ms: float, delivery_ms: float, *, done: bool = True, gaps: int = 0) -> OrderRun:
    return OrderRun(post_started=0.0, post_ms=post_ms, http_status=202, order_id="o",
                    terminal_status="confirmed" if done else None, terminal_at=1.0 if done else None,
                    accept_to_terminal_ms=terminal_ms if done else None, delivery_ms=[delivery_ms], gaps=gaps)


def test_a_step_within_every_target_passes() -> None:
    f = figures([run(10, 100, 5) for _ in range(100)], began=0.0)
    assert verdict(f, Targets()) == []
    assert f.completed_per_s == 100.0


def test_a_step_fails_on_each_p99_over_its_target_and_says_which() -> None:
    slow = [run(60, 600, 30)] * 2 + [run(10, 100, 5)] * 98
    why = verdict(figures(slow, began=0.0), Targets())
    assert why == ["terminal p99 600 > 500 ms", "POST p99 60 > 50 ms", "WS p99 30 > 25 ms"]
    assert verdict(figures(slow, began=0.0), Targets(700, 70, 35)) == []


def test_a_step_fails_when_an_order_is_lost_has_a_gap_or_an_error() -> None:
    lost = [run(10, 100, 5)] * 9 + [run(10, 100, 5, done=False)]
    assert "1 of 10 not completed" in verdict(figures(lost, began=0.0), Targets())
    gapped = [run(10, 100, 5, gaps=1)] * 2
    assert "2 gaps/duplicates" in verdict(figures(gapped, began=0.0), Targets())
    failed = OrderRun(http_status=503, error="post: HTTP 503")
    why = verdict(figures([run(10, 100, 5), failed], began=0.0), Targets())
    assert "1 errors" in why and "1 of 2 not completed" in why


def test_the_ladder_doubles_while_steps_pass() -> None:
    assert next_rate([], [], start=10, precision=0.1) == 10
    assert next_rate([10], [], start=10, precision=0.1) == 20
    assert next_rate([10, 20, 40], [], start=10, precision=0.1) == 80


def test_the_ladder_bisects_between_the_best_pass_and_the_lowest_failure() -> None:
    assert next_rate([10, 20, 40], [80], start=10, precision=0.1) == 60
    assert next_rate([10, 20, 40, 60], [80], start=10, precision=0.1) == 70
    assert next_rate([10, 20, 40], [80, 60], start=10, precision=0.1) == 50
    assert best([10, 20, 40, 60], [80]) == 60


def test_the_ladder_stops_once_pass_and_failure_are_close_enough() -> None:
    assert next_rate([70, 72], [75], start=10, precision=0.1) is None
    assert next_rate([70], [80], start=10, precision=0.1) == 75


def test_a_first_failure_bisects_down_to_the_floor() -> None:
    assert next_rate([], [10], start=10, precision=0.1) == 5
    assert next_rate([], [10, 5, 2.5, 1.25], start=10, precision=0.1) == 0.625
    assert next_rate([], [10, 5, 2.5, 1.25, 0.625], start=10, precision=0.1) is None
    assert best([], [10]) is None


def test_a_pass_above_a_failure_is_not_the_best_rate() -> None:
    # Noise: 40 failed once, 60 passed; the best sustained rate is the highest below every failure.
    assert best([20, 60], [40]) == 20


def test_proc_stat_parses_a_command_name_with_spaces_and_parentheses() -> None:
    fields = " ".join(str(n) for n in range(3, 53))  # field n holds n, from state (3) on
    line = f"4242 (a (b) c) {fields}\n"
    stat = cpu.parse_stat(line)
    assert (stat.pid, stat.ppid, stat.ticks) == (4242, 4, 14 + 15 + 16 + 17)


def test_the_benchs_own_cpu_read_from_proc_grows_as_it_computes() -> None:
    mine = {"me": [os.getpid()]}
    before = cpu.cpu_seconds(mine)["me"]
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert cpu.cpu_seconds(mine)["me"] >= before + 0.03


def test_a_process_tree_holds_live_children_and_counts_their_cpu() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()+0.2\n"
                              "while time.process_time()<t: pass\ntime.sleep(30)"])
    try:
        stats = cpu.read_stats()
        assert child.pid in cpu.tree(stats, os.getpid())
        assert os.getpid() not in cpu.tree(stats, child.pid)
        deadline = time.monotonic() + 10
        while cpu.cpu_seconds({"child": [child.pid]})["child"] < 0.2 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = cpu.read_stats()
        alone = stats[os.getpid()].ticks / cpu.TICK
        assert cpu.cpu_seconds({"tree": [os.getpid()]})["tree"] >= alone + 0.19
    finally:
        child.kill()
        child.wait()


def test_memory_and_open_files_limit_of_the_own_process() -> None:
    assert cpu.rss_kb(os.getpid()) > 1000
    assert cpu.open_files_limit(os.getpid()) > 0


def test_machine_cpu_is_the_busy_share_of_proc_stat() -> None:
    assert cpu.parse_machine("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 ...") == (161, 1181)
    assert cpu.machine_busy_seconds() > 0


def test_roles_are_found_by_command_line() -> None:
    assert cpu.role(["/venv/bin/python", "-m", "services.gateway"]) == "gateway"
    assert cpu.role(["/venv/bin/nats-server", "--addr", "127.0.0.1"]) == "nats"
    assert cpu.role(["/usr/lib/postgresql/15/bin/postgres", "-D", "/tmp/pg"]) == "postgres"
    assert cpu.role(["postgres: writer engine 127.0.0.1(5000) idle"]) is None  # a backend, in its parent's tree
    assert cpu.role(["/venv/bin/python", "-m", "bench"]) is None
    assert cpu.role([]) is None


def test_conditions_read_the_cpu_model_and_the_projector_lag() -> None:
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n") == "AMD EPYC 7B13"
    assert cpu_model("processor\t: 0\n") == "unknown"
    page = ('# HELP engine_projector_lag_seconds Age\n# TYPE engine_projector_lag_seconds gauge\n'
            'engine_projector_lag_seconds{service="projector"} 0.0125\n')
    assert parse_lag(page) == 0.0125
    assert parse_lag("engine_other 1\n") is None
