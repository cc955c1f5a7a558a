"""torch's thread count follows the CPUs the process may use (affinity, cgroup quota) or the setting."""

import os

import pytest

from gan_assets.core import threads


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2: 1.5 CPUs
    ({"cpu.max": "max 100000\n"}, None),  # v2 unlimited
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota_is_read(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cgroup_cpu_limit(tmp_path) == expected


def test_thread_count_follows_affinity_quota_and_setting(monkeypatch):
    monkeypatch.delenv(threads.THREADS_VARIABLE, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.thread_count() == 2  # 4 CPUs allowed, 1.5 CPUs of quota: 2 threads
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.thread_count() == 4
    monkeypatch.setenv(threads.THREADS_VARIABLE, "3")
    assert threads.thread_count() == 3 and threads.thread_count(1) == 1
    monkeypatch.setenv(threads.THREADS_VARIABLE, "0")
    with pytest.raises(ValueError, match="GAN_TORCH_THREADS='0'"):
        threads.thread_count()


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
        assert threads.follow_load() == (1, True)  # and crowded: that one thread gets a share of a CPU
        others[0] = 3
        assert threads.follow_load() == (1, True)
        others[0] = 0
        assert threads.adapt_to_load() == 2
        assert threads.follow_load() == (2, False)
        others[0] = 1  # one runnable neighbour takes one CPU: one thread, with a CPU of its own
        assert threads.follow_load() == (1, False)
        others[0] = None  # /proc unreadable: every CPU, never crowded
        assert threads.follow_load() == (2, False)
        others[0] = 2
        monkeypatch.setenv(threads.THREADS_VARIABLE, "1")
        assert threads.follow_load() == (1, False)  # a fixed setting is kept, and never treated as crowded
    finally:
        torch.set_num_threads(before)


def test_load_follower_checks_at_start_then_by_the_clock(monkeypatch):
    calls, now = [], [100.0]
    monkeypatch.setattr(threads, "follow_load", lambda: (calls.append(now[0]), len(calls) == 2))
    monkeypatch.setattr(threads, "shared_per_thread", lambda: True)
    follow = threads.LoadFollower(interval=0.25, clock=lambda: now[0])
    crowded = []
    for t in (100.0, 100.1, 100.2, 100.26, 100.3, 100.52):
        now[0] = t
        crowded.append(follow())
    assert calls == [100.0, 100.26, 100.52]  # the first step, then once per quarter second whatever the step rate
    assert crowded == [False, False, False, True, True, False]  # the last check's answer holds until the next



def fake_process(proc, pid: int, session: int, states: str, flags: int = 0x400000) -> None:
    """/proc/<pid> with one task per letter of `states` (R runnable, S sleeping); stat's fields up to flags."""
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(f"{pid} (burn (x)) {states[0]} 1 {pid} {session} 0 -1 {flags} 0")
    for index, state in enumerate(states):
        task = proc / str(pid) / "task" / str(pid + index)
        task.mkdir(parents=True)
        (task / "stat").write_text(f"{pid + index} (burn) {state} 1 {pid} {session} 0 -1 {flags} 0")


def test_runnable_neighbours_are_counted_by_session(tmp_path):
    fake_process(tmp_path, 10, session=7, states="RRS")  # two runnable threads in our session
    fake_process(tmp_path, 11, session=8, states="R")  # another shell's
    fake_process(tmp_path, 12, session=0, states="R", flags=0x208040)  # a kernel thread (PF_KTHREAD)
    fake_process(tmp_path, 13, session=7, states="RR")  # ourselves
    assert threads.runnable_by_session(tmp_path, session=7, own=13) == (2, 1)
    assert threads.runnable_by_session(tmp_path / "missing", session=7, own=13) is None


def test_in_a_container_session_0_is_a_session_like_any_other(tmp_path):
    """Where the session leader lives outside the PID namespace, this process and its neighbours have
    session 0; only the PF_KTHREAD flag marks a kernel thread."""
    fake_process(tmp_path, 10, session=0, states="RR")  # a neighbour in our (invisible-leader) session
    fake_process(tmp_path, 11, session=5, states="R")
    fake_process(tmp_path, 12, session=0, states="R", flags=0x208040)
    assert threads.runnable_by_session(tmp_path, session=0, own=99) == (2, 1)


@pytest.mark.parametrize("autogroup, inside, outside, per_thread", [
    ("1", "RR", "", True),  # the neighbours are this session's (a daemon's other runs): shared per thread
    ("1", "", "RR", False),  # another shell's: its session gets a session's share
    ("1", "R", "R", False),
    ("0", "", "RR", True),  # no autogroup: every runnable thread counts alike
    (None, "", "RR", True),
])
def test_a_second_thread_adds_cpu_time_only_where_the_kernel_shares_per_thread(
        tmp_path, autogroup, inside, outside, per_thread):
    if autogroup is not None:
        (tmp_path / "sys" / "kernel").mkdir(parents=True)
        (tmp_path / "sys" / "kernel" / "sched_autogroup_enabled").write_text(autogroup + "\n")
    if inside:
        fake_process(tmp_path, 20, session=os.getsid(0), states=inside)
    if outside:
        fake_process(tmp_path, 30, session=os.getsid(0) + 1, states=outside)
    assert threads.shared_per_thread(tmp_path) is per_thread


def test_the_follower_splits_only_while_crowded_by_neighbours_sharing_per_thread(monkeypatch):
    now, load, per_thread, looks = [0.0], [(1, True)], [True], []
    monkeypatch.setattr(threads, "follow_load", lambda: load[0])
    monkeypatch.setattr(threads, "shared_per_thread", lambda: looks.append(now[0]) or per_thread[0])
    follow = threads.LoadFollower(interval=0.25, clock=lambda: now[0])
    assert follow() is True
    per_thread[0] = False  # the neighbours change, seen at the next look (every SESSION_SECONDS)
    now[0] = 0.5
    assert follow() is True
    now[0] = threads.SESSION_SECONDS
    assert follow() is False
    load[0] = (2, False)  # quiet: no split, and no look at the neighbours
    now[0] = 2 * threads.SESSION_SECONDS
    assert follow() is False
    assert looks == [0.0, threads.SESSION_SECONDS]
