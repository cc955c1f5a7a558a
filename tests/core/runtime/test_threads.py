"""torch's thread count follows the CPUs the process may use (affinity, cgroup quota) or the setting."""


import pytest

from gan_assets.core.runtime import threads


@pytest.fixture
def no_thread_settings(monkeypatch):
    """None of the variables that fix or share the count (tests/conftest.py sets two of them for the suite)."""
    for variable in (threads.THREADS_VARIABLE, threads.OMP_VARIABLE, threads.LOCAL_RANKS_VARIABLE):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def torch_threads():
    """torch's thread count, put back after the test."""
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_thread_count_follows_the_usable_cpus_and_the_setting(monkeypatch, no_thread_settings):
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


def test_load_leaves_the_cpus_other_processes_use(tmp_path, monkeypatch, no_thread_settings):
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


def test_ranks_on_one_node_share_its_cpus(monkeypatch, torch_threads):
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    others = [0]
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: others[0])
    torchrun = {"LOCAL_WORLD_SIZE": "4", "OMP_NUM_THREADS": "1"}  # what torchrun sets in each of 4 ranks
    assert threads.adapt_to_load(environ=torchrun) == 2 == torch_threads.get_num_threads()  # not 8 each: 32 on 8
    assert threads.thread_count(environ=torchrun) == 2
    others[0] = 6  # the 3 other ranks' 2 threads each: what a rank sees when all run; its share still fits
    assert threads.adapt_to_load(environ=torchrun) == 2
    others[0] = 7  # one more busy thread elsewhere: the load lowers the count below the share
    assert threads.adapt_to_load(environ=torchrun) == 1
    others[0] = None  # /proc unreadable: the share
    assert threads.adapt_to_load(environ=torchrun) == 2
    assert threads.adapt_to_load(environ={"LOCAL_WORLD_SIZE": "16"}) == 1  # more ranks than CPUs: one each
    assert threads.adapt_to_load(environ={}) == 8  # one process: every CPU


def test_a_users_explicit_setting_wins(monkeypatch, torch_threads):
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 0)
    fixed = {  # environment -> the count, whatever the load
        (("GAN_TORCH_THREADS", "3"), ("LOCAL_WORLD_SIZE", "4"), ("OMP_NUM_THREADS", "1")): 3,
        (("GAN_TORCH_THREADS", "2"), ("OMP_NUM_THREADS", "5")): 2,  # ours beats OpenMP's
        (("OMP_NUM_THREADS", "5"),): 5,  # one process: the user's OMP_NUM_THREADS, no longer overridden
        (("OMP_NUM_THREADS", "4,2"),): 4,  # OpenMP's nesting-level list: the outer level
    }
    for environ, count in fixed.items():
        assert threads.fixed_setting(dict(environ)) is not None
        assert threads.adapt_to_load(environ=dict(environ)) == count == torch_threads.get_num_threads()
    # torchrun's own OMP_NUM_THREADS=1 in several ranks, or GAN_TORCH_THREADS=auto: the share, following the load
    assert threads.fixed_setting({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}) is None
    assert threads.fixed_setting({"GAN_TORCH_THREADS": "auto", "OMP_NUM_THREADS": "5"}) is None
    assert threads.adapt_to_load(environ={"GAN_TORCH_THREADS": "auto", "OMP_NUM_THREADS": "5"}) == 8
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='0'"):
        threads.adapt_to_load(environ={"OMP_NUM_THREADS": "0"})
    with pytest.raises(ValueError, match="GAN_TORCH_THREADS='many'"):
        threads.thread_count(environ={"GAN_TORCH_THREADS": "many"})


def test_a_cuda_run_sets_its_count_once_without_reading_proc(monkeypatch, torch_threads):
    def scan():
        raise AssertionError("a CUDA run must not scan /proc")

    monkeypatch.setattr(threads, "runnable_elsewhere", scan)
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    assert threads.adapt_to_load("cuda", environ={"LOCAL_WORLD_SIZE": "4", "OMP_NUM_THREADS": "1"}) == 2
    assert threads.adapt_to_load("cuda", environ={}) == 8 == torch_threads.get_num_threads()
    assert threads.adapt_to_load("cuda", environ={"GAN_TORCH_THREADS": "3"}) == 3
    with pytest.raises(AssertionError, match="must not scan"):
        threads.adapt_to_load("cpu", environ={})  # the CPU path does follow the load


def test_the_default_environment_is_read_at_each_call(monkeypatch, no_thread_settings, torch_threads):
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 0)
    monkeypatch.setenv(threads.LOCAL_RANKS_VARIABLE, "4")
    assert threads.adapt_to_load() == 2
    monkeypatch.setenv(threads.THREADS_VARIABLE, "1")
    assert threads.adapt_to_load() == 1
