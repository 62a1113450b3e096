"""Three separate processes (a threaded server, an asyncio worker, a LangChain batch
job: the "gunicorn + celery + cron" situation) share one provider key through one
quotad pool: together they send twice what the key allows at once, and the
simulator refuses none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import procs

PER_PROCESS = 35


def test_three_processes_share_a_pool(quotad_addr: str, sim: procs.Proc, sim_url: str, sim_key: str) -> None:
    worker = Path(__file__).with_name("worker.py")
    env = dict(os.environ, PYTHONPATH=str(worker.parent))
    ps = [
        subprocess.Popen([sys.executable, str(worker), style, quotad_addr, sim_url, sim_key, "openai/procs",
                          str(PER_PROCESS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for style in ("threads", "asyncio", "langchain")
    ]
    results = []
    for p in ps:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["errors"] == [] for r in results), results
    st = procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")
    assert st["admitted_requests"] == 3 * PER_PROCESS
    assert st.get("refused_requests", 0) == 0
