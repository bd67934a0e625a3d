"""The CLI's CPU thread policy: --threads, else OMP_NUM_THREADS/MKL_NUM_THREADS, else the idle cores;
and the passive OpenMP wait policy in place before torch loads (docs/performance.md)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import simjepa_cli


@pytest.fixture
def no_thread_env(monkeypatch):
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)


def test_explicit_threads_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert simjepa_cli.configure_threads(2) == 2 == torch.get_num_threads()


def test_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(simjepa_cli, "free_cores", lambda: pytest.fail("free cores asked despite OMP_NUM_THREADS"))
    torch.set_num_threads(2)
    assert simjepa_cli.configure_threads(None) == 2  # torch took OMP_NUM_THREADS at start; left as it is


def test_otherwise_the_idle_cores(monkeypatch, no_thread_env):
    monkeypatch.setattr(simjepa_cli, "_idle_cpus", lambda window: 0.3)  # another process keeps every core busy
    assert simjepa_cli.free_cores() == 1
    assert simjepa_cli.configure_threads(None) == 1 == torch.get_num_threads()
    monkeypatch.setattr(simjepa_cli, "_idle_cpus", lambda window: 1000.0)
    assert simjepa_cli.free_cores() == len(os.sched_getaffinity(0))  # never more than this process may use
    monkeypatch.setattr(simjepa_cli, "_idle_cpus", lambda window: None)  # no /proc/stat: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (1e6, 0.0, 0.0))
    assert simjepa_cli.free_cores() == 1


def test_idle_cpus_reads_proc_stat():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat on this platform")
    idle = simjepa_cli._idle_cpus(0.05)
    assert idle is not None and 0.0 <= idle <= os.cpu_count()


def test_passive_wait_policy_is_set_before_torch_loads():
    code = ("import sys, os, simjepa_cli; "
            "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert out == ["PASSIVE", "False"]  # torch not yet loaded by importing the CLI: libgomp will read it
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's own setting wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert out[0] == "ACTIVE"
