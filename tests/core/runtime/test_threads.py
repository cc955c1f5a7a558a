"""torch's thread count follows the CPUs the process may use (affinity, cgroup quota) or the setting."""


import pytest

from gan_assets.core.runtime import threads


def test_thread_count_follows_the_usable_cpus_and_the_setting(monkeypatch):
    monkeypatch.delenv(threads.THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(threads, "cpu_count", lambda: 2)  # joblib: affinity and cgroup quota already applied
    assert threads.thread_count() == 2
    monkeypatch.setattr(threads, "cpu_count", lambda: 0)
    assert threads.thread_count() == 1  # never fewer than one
    monkeypatch.setenv(threads.THREADS_VARIABLE, "3")
    assert threads.thread_count() == 3 and threads.thread_count(1) == 1
    monkeypatch.setenv(threads.THREADS_VARIABLE, "0")
    with pytest.raises(ValueError, match="GAN_TORCH_THREADS='0'"):
        threads.thread_count()


def test_usable_cpus_honour_the_affinity_mask():
    import subprocess
    import sys

    code = "from gan_assets.core.runtime.threads import available_cpus; print(available_cpus())"
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_configure_threads_sets_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_load_leaves_the_cpus_other_processes_use(tmp_path, monkeypatch):
    import torch

    (tmp_path / "self" / "task" / "1").mkdir(parents=True)
    (tmp_path / "self" / "task" / "2").mkdir(parents=True)
    (tmp_path / "self" / "task" / "1" / "stat").write_text("1 (python) R 0 0")
    (tmp_path / "self" / "task" / "2" / "stat").write_text("2 (python (omp)) S 0 0")
    (tmp_path / "loadavg").write_text("2.10 1.50 1.00 3/420 999\n")
    assert threads.runnable_elsewhere(tmp_path) == 2  # 3 runnable, 1 of them ours
    others = [2]
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: others[0])
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.delenv(threads.THREADS_VARIABLE, raising=False)
    before = torch.get_num_threads()
    try:
        assert threads.adapt_to_load() == 1 == torch.get_num_threads()  # both CPUs busy: one thread, not two
        others[0] = 3
        assert threads.adapt_to_load() == 1
        others[0] = 0
        assert threads.adapt_to_load() == 2 == torch.get_num_threads()
        others[0] = 1  # one runnable neighbour takes one CPU: one thread, with a CPU of its own
        assert threads.adapt_to_load() == 1
        others[0] = None  # /proc unreadable: every CPU
        assert threads.adapt_to_load() == 2
        others[0] = 2
        monkeypatch.setenv(threads.THREADS_VARIABLE, "2")
        assert threads.adapt_to_load() == 2  # a fixed setting is kept, whatever the load
    finally:
        torch.set_num_threads(before)


def test_load_follower_checks_at_start_then_by_the_clock(monkeypatch):
    calls, now = [], [100.0]
    monkeypatch.setattr(threads, "adapt_to_load", lambda: (calls.append(now[0]), len(calls))[1])
    follow = threads.LoadFollower(interval=0.25, clock=lambda: now[0])
    counts = []
    for t in (100.0, 100.1, 100.2, 100.26, 100.3, 100.52):
        now[0] = t
        counts.append(follow())
    assert calls == [100.0, 100.26, 100.52]  # the first step, then once per quarter second whatever the step rate
    assert counts == [1, 1, 1, 2, 2, 3]  # the last check's count holds until the next
