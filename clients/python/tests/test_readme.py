"""The Python example of the top-level README runs as written (only the quotad
address is the test's, and the SDK's key and base URL come from the environment)."""

from __future__ import annotations

import textwrap

import pytest

import procs

README = procs.REPO / "README.md"


def python_example() -> str:
    _, after = README.read_text().split("<!-- python-example", 1)
    _, block = after.split("```python\n", 1)
    code, _ = block.split("```", 1)
    return code


async def test_readme_python_example(quotad_addr: str, sim: procs.Proc, sim_url: str, sim_key: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    code = python_example()
    assert code.count("localhost:7070") == 1
    code = code.replace("localhost:7070", quotad_addr)
    monkeypatch.setenv("OPENAI_API_KEY", sim_key)
    monkeypatch.setenv("OPENAI_BASE_URL", sim_url)
    ns: dict = {}
    exec("async def _example():\n" + textwrap.indent(code, "    ") + "\n    return qc, llm, reply\n", ns)
    qc, llm, reply = await ns["_example"]()
    assert reply.choices[0].message.content
    assert procs.sim_stats(sim.addr, "openai", sim_key, "gpt-4o-mini")["admitted_requests"] == 1
    p = await qc.get_pool("openai/prod/gpt-4o-mini")
    assert p.in_flight == 0 and p.raw.unsettled.output_tokens == 0
    await llm.close()
    await qc.close()
