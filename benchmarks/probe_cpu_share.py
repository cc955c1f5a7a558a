"""How much of a core one CPU-bound thread of this session gets beside `bench_canonical --busy`'s burners, for each
`burner_session` placement: the scheduler's side of the busy ratios (README, "A busy machine").

Run:  .venv/bin/python benchmarks/probe_cpu_share.py [--seconds 5]

Prints one JSON line per placement: the CPU time per wall second of our spinner and of each burner, and the
fraction of samples (every 0.1 s) in which a burner sat on our spinner's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_canonical import BURNER_SESSIONS, burner_pids, start_burners, stop_burners  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _processor(pid: int) -> int:
    return int(_stat(pid)[36])  # the CPU it last ran on


def probe(session: str, seconds: float, cores: int) -> dict:
    burners = start_burners(cores, session)
    ours = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let every spinner start and the load balancer settle
        pids = [ours.pid, *burner_pids(burners, session)]
        before = [_cpu_seconds(pid) for pid in pids]
        samples = shared = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            cpus = [_processor(pid) for pid in pids]
            shared += cpus[0] in cpus[1:]
            samples += 1
            time.sleep(0.1)
        wall = time.monotonic() - start
        shares = [(_cpu_seconds(pid) - first) / wall for pid, first in zip(pids, before)]
    finally:
        ours.kill()
        ours.wait()
        stop_burners(burners, session)
    return {"burner_session": session, "our_core_share": round(shares[0], 2),
            "burner_core_shares": [round(share, 2) for share in shares[1:]],
            "samples_sharing_our_cpu": round(shared / samples, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    for session in BURNER_SESSIONS:
        print(json.dumps(probe(session, args.seconds, cores)), flush=True)


if __name__ == "__main__":
    main()
