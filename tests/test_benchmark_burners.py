"""The busy benchmark's burners sit where its `burner_session` says, `burner_pids` finds the spinners they forked,
and none outlives the measurement."""

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_canonical  # noqa: E402


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize("session, processes, sessions", [
    ("same", 2, 1),  # this test's session
    ("other", 2, 1),  # one other session holds both (one forked from the other)
    ("separate", 2, 2),  # a session each
])
def test_burners_run_in_the_sessions_they_are_named_for(session, processes, sessions):
    burners = bench_canonical.start_burners(2, session)
    try:
        assert _wait_for(lambda: len(bench_canonical.burner_pids(burners, session)) == processes)
        spinner_sessions = {os.getsid(pid) for pid in bench_canonical.burner_pids(burners, session)}
        assert len(spinner_sessions) == sessions
        assert (os.getsid(0) in spinner_sessions) is (session == "same")
    finally:
        pids = bench_canonical.burner_pids(burners, session)
        bench_canonical.stop_burners(burners, session)
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids))


def _alive(pid: int) -> bool:
    """A zombie is not alive: a killed forked child stays one until whoever inherited it reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
