"""Start the quotad daemon and the provider simulator as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, List, Optional

REPO = Path(__file__).resolve().parents[3]

# The simulator's limits per API key (every test uses its own key, so its own
# buckets) and their period. Pools in quotad mirror them.
SIM_PERIOD = "5s"
SIM_RPM = 50
SIM_TPM = 40000
SIM_ITPM = 40000
SIM_OTPM = 8000


def binary(env: str, pkg: str) -> str:
    """The path in $env (make py-test sets it), else a go build of pkg."""
    path = os.environ.get(env)
    if path:
        return path
    out = Path(tempfile.gettempdir()) / f"quotad-pytest-{os.getuid()}" / pkg.rsplit("/", 1)[-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(out), pkg], cwd=REPO, check=True)
    return str(out)


class Proc:
    """A child process whose output is collected by a thread."""

    def __init__(self, args: List[str], ready: "re.Pattern[str]", stream: str, timeout: float = 20) -> None:
        self.args = args
        self.p = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: List[str] = []
        self.addr: Optional[str] = None
        got = threading.Event()

        def read(f: Any) -> None:
            for line in f:
                self.log.append(line)
                m = ready.search(line)
                if m and self.addr is None:
                    self.addr = m.group(1)
                    got.set()

        for f in (self.p.stdout, self.p.stderr):
            if f is not None:
                threading.Thread(target=read, args=(f,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not got.wait(0.05):
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{args[0]} did not start:\n{''.join(self.log)}")

    def stop(self, timeout: float = 10) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def start_sim(extra: List[str] = ()) -> Proc:  # type: ignore[assignment]
    args = [
        binary("PROVIDERSIM_BIN", "./bench/cmd/providersim"),
        "-listen", "127.0.0.1:0",
        "-period", SIM_PERIOD,
        "-rpm", str(SIM_RPM), "-tpm", str(SIM_TPM), "-itpm", str(SIM_ITPM), "-otpm", str(SIM_OTPM),
        "-ttft", "30ms", "-per-token", "1ms",
        *extra,
    ]
    return Proc(args, re.compile(r"listening on (\S+)"), "stdout")


def start_quotad(config: str, extra: List[str] = ()) -> Proc:  # type: ignore[assignment]
    args = [
        binary("QUOTAD_BIN", "./cmd/quotad"),
        "serve", "--config", config, "--listen", "127.0.0.1:0", "--metrics-listen", "",
        "--shutdown-grace", "1s", "--log-level", "warn",
        *extra,
    ]
    # --log-level warn would hide the serving line: keep info.
    args = [a for a in args if a not in ("--log-level", "warn")]
    return Proc(args, re.compile(r'msg="?quotad serving"? .*?listen=([0-9.:\[\]]+)'), "stderr")


def sim_stats(sim_addr: str, api: str, key: str, model: str) -> dict:
    with urllib.request.urlopen(f"http://{sim_addr}/sim/stats", timeout=10) as r:
        stats = json.load(r)
    return stats["pools"].get(f"{api}/{key}/{model}", {"totals": {}})["totals"]


# One pool of quotad per test scenario; each mirrors the simulator's per-key limits
# with 10% headroom and starts full (the simulator's buckets start full too).
def mirror_pool(name: str, provider: str, **extra: Any) -> dict:
    if provider == "openai":
        limits = [("requests", SIM_RPM), ("tokens", SIM_TPM)]
    else:
        limits = [("requests", SIM_RPM), ("input_tokens", SIM_ITPM), ("output_tokens", SIM_OTPM)]
    pool = {
        "name": name,
        "provider": provider,
        "headroom": 0.9,
        "limits": [{"resource": r, "amount": a, "per": SIM_PERIOD, "initial": "full"} for r, a in limits],
    }
    pool.update(extra)
    return pool


def write_config(path: Path, pools: List[dict]) -> str:
    # JSON is YAML: no YAML library needed.
    path.write_text(json.dumps({"pools": pools}, indent=1))
    return str(path)
