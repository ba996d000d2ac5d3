"""Several growth-map workers share one queue of runs (benchmarks/horizon.py): a lock file per run decides who trains
it, so that no run is trained twice and a run whose worker died is taken over."""

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import horizon  # noqa: E402  (scripts beside the package)


def dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


def test_a_run_is_claimed_once_and_its_lock_names_the_worker(tmp_path):
    result = tmp_path / "run.json"
    assert horizon.claim(result)
    lock = result.with_suffix(".lock")
    assert lock.read_text() == str(os.getpid())  # the pid is in the lock from the moment it exists
    assert not horizon.claim(result)  # held by a live process (this one): nobody else takes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]  # no scratch left beside it


class WatchedOs:
    """Stands for the ``os`` module inside horizon.py: after each call a claim makes, looks at the lock as another
    worker polling it would."""

    def __init__(self, lock):
        self.lock, self.seen = lock, []

    def __getattr__(self, name):
        value = getattr(os, name)
        if not callable(value):
            return value

        def watched(*arguments, **keywords):
            result = value(*arguments, **keywords)
            if self.lock.exists():
                self.seen.append(self.lock.read_text())
            return result

        return watched


def test_no_other_worker_ever_sees_a_lock_without_its_pid(tmp_path, monkeypatch):
    # An empty lock reads as a dead worker's: another worker would take it over and train the same run.
    result = tmp_path / "run.json"
    watched = WatchedOs(result.with_suffix(".lock"))
    monkeypatch.setattr(horizon, "os", watched)
    assert horizon.claim(result)
    assert watched.seen and set(watched.seen) == {str(os.getpid())}


@pytest.mark.parametrize("content", ["dead", ""])
def test_the_lock_of_a_dead_worker_is_taken_over(tmp_path, content):
    result = tmp_path / "run.json"
    lock = result.with_suffix(".lock")
    lock.write_text(str(dead_pid()) if content == "dead" else "")  # "" is what a worker cut off mid-claim left
    assert horizon.claim(result)
    assert lock.read_text() == str(os.getpid())


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
