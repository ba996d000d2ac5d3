"""Several growth-map workers share one queue of runs (benchmarks/horizon.py): a lock per run decides who trains it,
so that no run is trained twice and a run whose worker died is taken over (benchmarks/run_queue.py)."""

import fcntl
import os
import subprocess
import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import horizon  # noqa: E402  (scripts beside the package)
import run_queue  # noqa: E402

# A worker in its own process: claims the run, says whether it got it, and holds whatever it got until its stdin closes.
WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import run_queue
print(run_queue.claim(Path(sys.argv[2])), flush=True)
sys.stdin.read()
"""


def start_worker(result):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(REPO_ROOT / "benchmarks"), str(result)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_run_is_claimed_once_and_its_lock_names_the_worker(tmp_path):
    result = tmp_path / "run.json"
    assert run_queue.claim(result)
    try:
        assert run_queue.lock_path(result).read_text() == str(os.getpid())
        assert not run_queue.claim(result)  # held (by this very process): nobody takes it again
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]
    finally:
        run_queue.release(result)
    assert not run_queue.lock_path(result).exists()
    assert run_queue.claim(result)  # given back: free again
    run_queue.release(result)


def test_of_workers_racing_for_a_dead_workers_run_exactly_one_gets_it(tmp_path):
    # A dead worker's lock file, still holding its pid: the run is free, and several workers find it at once.
    result = tmp_path / "run.json"
    run_queue.lock_path(result).write_text("999999")
    workers = [start_worker(result) for _ in range(3)]
    try:
        answers = [worker.stdout.readline().strip() for worker in workers]
    finally:
        for worker in workers:
            worker.communicate("")
    assert sorted(answers) == ["False", "False", "True"]


def test_a_killed_worker_frees_its_run(tmp_path):
    result = tmp_path / "run.json"
    worker = start_worker(result)
    assert worker.stdout.readline().strip() == "True"
    assert not run_queue.claim(result)  # alive and holding it
    worker.kill()
    worker.wait()
    assert run_queue.claim(result)  # the kernel dropped its lock with it; its lock file is still there
    assert run_queue.lock_path(result).read_text() == str(os.getpid())
    run_queue.release(result)


def test_a_lock_file_released_between_our_open_and_our_lock_is_not_taken(tmp_path, monkeypatch):
    # The holder finishes (unlinks its file, drops its lock) right after we opened that file, and a third worker locks
    # the new file at the path before we lock the old one: we must not think we hold the run.
    result = tmp_path / "run.json"
    assert run_queue.claim(result)
    third_worker = []
    real_flock = fcntl.flock

    def flock_after_the_holder_released(descriptor, operation):
        if not third_worker:
            run_queue.release(result)
            third_worker.append(os.open(run_queue.lock_path(result), os.O_RDWR | os.O_CREAT))
            real_flock(third_worker[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return real_flock(descriptor, operation)

    monkeypatch.setattr(run_queue.fcntl, "flock", flock_after_the_holder_released)
    try:
        assert not run_queue.claim(result)
    finally:
        os.close(third_worker[0])


def test_a_run_written_by_another_worker_while_we_claimed_it_is_not_trained_again(tmp_path, monkeypatch):
    job = horizon.Job("small", 257, 1, "fixed")
    result = tmp_path / f"{job.name}.json"
    claimed = horizon.claim

    def claim_after_the_other_worker_finished(path):
        path.write_text("{}")  # the other worker's result lands between our look and our claim
        return claimed(path)

    def train(*arguments):
        raise AssertionError("trained a run whose result exists")

    monkeypatch.setattr(horizon, "claim", claim_after_the_other_worker_finished)
    monkeypatch.setattr(horizon, "run_job", train)
    horizon.work([job], tmp_path, checkpoints=tmp_path / "unfinished")
    assert result.read_text() == "{}" and not result.with_suffix(".lock").exists()
    assert run_queue.claim(result)  # and the run's lock was given back
    run_queue.release(result)
