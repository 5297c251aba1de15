"""shared.metricsfiles on real prometheus_client files, written by real processes of their own pids.

Each writer is a separate Python process with ``PROMETHEUS_MULTIPROC_DIR`` set, so the files are
exactly what a gunicorn worker leaves behind; the totals are read with prometheus_client's own
``MultiProcessCollector``, as ``/metrics`` reads them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from shared.metricsfiles import fold_dead_process, remove_stale

WRITER = r"""
import os, sys
from prometheus_client import Counter, Gauge, Histogram

n = int(sys.argv[1])
requests = Counter("t_requests_total", "requests", ["route"])
requests.labels("/a").inc(n)
requests.labels("/b").inc(2 * n)
if n == 2:
    requests.labels("/only-two").inc(7)
latency = Histogram("t_latency_seconds", "latency", ["route"], buckets=(0.1, 1.0))
for value in (0.05, 0.5, 5.0)[:n]:
    latency.labels("/a").observe(value)
Gauge("t_sum", "sum", multiprocess_mode="sum").set(n)
Gauge("t_max", "max", multiprocess_mode="max").set(10 - n)
Gauge("t_min", "min", multiprocess_mode="min").set(10 + n)
Gauge("t_recent", "recent", multiprocess_mode="mostrecent").set(100 + n)
Gauge("t_live", "live", multiprocess_mode="livesum").set(n)
Gauge("t_all", "all", multiprocess_mode="all").set(n)
print(os.getpid(), flush=True)
if len(sys.argv) > 2:
    sys.stdin.read()  # stays alive until the test closes its stdin
"""

# series of a dead process that are dropped rather than folded, by design
PER_PROCESS = ("t_live", "t_all")


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}


def write(folder: Path, n: int) -> int:
    """Run a writer to its end; returns its (now dead) pid."""
    done = subprocess.run([sys.executable, "-c", WRITER, str(n)], env=_env(folder),
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def totals(folder: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
    }


def without_per_process(figures: dict[tuple[str, tuple[tuple[str, str], ...]], float]
                        ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: value for key, value in figures.items() if not key[0].startswith(PER_PROCESS)}


def files_of(folder: Path, pid: int | str) -> list[str]:
    return sorted(path.name for path in folder.glob(f"*_{pid}.db"))


def test_folding_dead_processes_keeps_every_total_and_removes_their_files(tmp_path: Path) -> None:
    pids = [write(tmp_path, n) for n in (1, 2, 3)]
    before = without_per_process(totals(tmp_path))
    assert before[("t_requests_total", (("route", "/a"),))] == 6
    assert before[("t_latency_seconds_count", (("route", "/a"),))] == 6
    assert all(files_of(tmp_path, pid) for pid in pids)

    for folded, pid in enumerate(pids, start=1):
        fold_dead_process(tmp_path, pid)
        assert files_of(tmp_path, pid) == []
        assert without_per_process(totals(tmp_path)) == pytest.approx(before), f"after {folded}"

    # only the archives remain: one file per kind, whatever the number of dead workers
    assert sorted(path.name for path in tmp_path.glob("*.db")) == [
        "counter_archive.db", "gauge_max_archive.db", "gauge_min_archive.db",
        "gauge_mostrecent_archive.db", "gauge_sum_archive.db", "histogram_archive.db",
    ]
    figures = totals(tmp_path)
    assert figures[("t_requests_total", (("route", "/b"),))] == 12
    assert figures[("t_requests_total", (("route", "/only-two"),))] == 7
    assert figures[("t_latency_seconds_bucket", (("le", "0.1"), ("route", "/a")))] == 3
    assert figures[("t_latency_seconds_bucket", (("le", "1.0"), ("route", "/a")))] == 5
    assert figures[("t_latency_seconds_bucket", (("le", "+Inf"), ("route", "/a")))] == 6
    assert figures[("t_sum", ())] == 6
    assert figures[("t_max", ())] == 9
    assert figures[("t_min", ())] == 11
    assert figures[("t_recent", ())] == 103
    assert not [key for key in figures if key[0].startswith(PER_PROCESS)]


def test_a_later_worker_adds_to_the_archive(tmp_path: Path) -> None:
    fold_dead_process(tmp_path, write(tmp_path, 1))
    second = write(tmp_path, 3)
    before = without_per_process(totals(tmp_path))
    fold_dead_process(tmp_path, second)
    assert without_per_process(totals(tmp_path)) == pytest.approx(before)
    assert totals(tmp_path)[("t_requests_total", (("route", "/a"),))] == 4


def test_folding_a_pid_without_files_changes_nothing(tmp_path: Path) -> None:
    pid = write(tmp_path, 2)
    other = tmp_path / "notes.txt"
    other.write_text("not a metrics file")
    before = totals(tmp_path)
    fold_dead_process(tmp_path, pid + 1_000_000)
    assert totals(tmp_path) == before
    assert other.read_text() == "not a metrics file"
    fold_dead_process(tmp_path / "missing", pid)  # no folder: nothing to do


def test_at_start_files_of_gone_processes_go_and_a_living_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    dead = write(tmp_path, 1)
    fold_dead_process(tmp_path, write(tmp_path, 2))  # an archive from the earlier run
    with subprocess.Popen([sys.executable, "-c", WRITER, "3", "wait"], env=_env(tmp_path),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as living:
        assert living.stdin is not None
        assert living.stdout is not None
        try:
            alive = int(living.stdout.readline())
            removed = remove_stale(tmp_path)
            assert {path.name for path in removed} == _names_for(dead)
            assert files_of(tmp_path, dead) == []
            # a service still running on this folder keeps its files and the archives
            assert files_of(tmp_path, alive)
            assert files_of(tmp_path, "archive")
        finally:
            living.stdin.close()
            living.wait(timeout=30)

    # nobody left: a fresh start empties the folder of metrics (counters restart from zero)
    remove_stale(tmp_path)
    assert list(tmp_path.glob("*.db")) == []
    assert totals(tmp_path) == {}


def _names_for(pid: int) -> set[str]:
    """What a writer leaves behind: one file per kind and gauge mode."""
    return {f"{kind}_{pid}.db" for kind in (
        "counter", "histogram", "gauge_sum", "gauge_max", "gauge_min", "gauge_mostrecent",
        "gauge_livesum", "gauge_all")}


def test_a_file_that_cannot_be_read_stays_and_nothing_is_raised(tmp_path: Path) -> None:
    fold_dead_process(tmp_path, write(tmp_path, 1))
    before = totals(tmp_path)
    # a torn file: its header claims more entries than it holds
    broken = tmp_path / "counter_4000000.db"
    broken.write_bytes(struct.pack("i", 4096) + b"\0" * 4 + struct.pack("i", 900) + b"\xff" * 40)
    assert fold_dead_process(tmp_path, 4_000_000) is False
    assert broken.is_file()
    broken.unlink()
    assert totals(tmp_path) == before


def test_a_scrape_while_a_process_creates_its_file_leaves_that_file_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MmapedDict creates a file empty, then sizes it: read in between, the empty header made
    # /metrics answer 500 while a gunicorn worker started
    write(tmp_path, 1)
    (tmp_path / "gauge_livemin_999999.db").touch()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    from shared.web.metrics import exposition

    body, _ = exposition()
    assert 't_requests_total{route="/a"} 1.0' in body.decode()
