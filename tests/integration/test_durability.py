"""A committed exchange survives SIGKILL of the process that wrote it, and the files stay sound.

A child process records exchanges (user turn, then the model's reply, each its own transaction)
as fast as it can and prints each one's ids only after both commits returned. The test kills it
mid-burst with SIGKILL, reopens the store here and checks that every exchange reported as done is
stored, whole, and that SQLite's integrity check passes on every file.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from app.memory.store.sqlite.store import Store

ROOT = Path(__file__).resolve().parents[2]
KEY = "d0c0ffee00112233"

CHILD = textwrap.dedent(f"""
    import asyncio, sys
    from pathlib import Path
    from app.memory.records import NewMessage
    from app.memory.store.sqlite.store import Store

    async def main():
        store = Store(Path(sys.argv[1]), max_open=4)
        await store.open()
        await store.create_session({KEY!r}, "durable")
        print("ready", flush=True)
        n = 0
        while True:
            (user,) = await store.append({KEY!r}, [NewMessage(role="user", content=f"question {{n}}")])
            reply = await store.record_reply({KEY!r}, NewMessage(role="assistant", content=f"answer {{n}}"), [])
            print(n, user, reply, flush=True)
            n += 1

    asyncio.run(main())
""")


def run_and_kill(data_dir: Path, after: int) -> list[tuple[int, int, int]]:
    """Start the writer, SIGKILL it once `after` exchanges were reported, return every reported one."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "ready"
        lines = [child.stdout.readline() for _ in range(after)]
        time.sleep(random.uniform(0, 0.01))  # land the kill at an arbitrary point of a write
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    done = [line for line in lines + rest.splitlines() if line.strip()]
    return [tuple(int(x) for x in line.split()) for line in done if len(line.split()) == 3]


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


async def stored(data_dir: Path) -> dict[int, str]:
    async with Store(data_dir) as store:
        rows = await store.messages(KEY)
        return {row.id: row.content for row in rows}


def test_committed_exchanges_survive_sigkill(tmp_path):
    for round_ in range(3):  # the same files, killed again after each restart
        reported = run_and_kill(tmp_path, after=40)
        assert len(reported) >= 40
        contents = asyncio.run(stored(tmp_path))
        for n, user_id, reply_id in reported:
            assert contents.get(user_id) == f"question {n}", (round_, n)
            assert contents.get(reply_id) == f"answer {n}", (round_, n)
        assert integrity(tmp_path / "sessions" / f"{KEY}.sqlite") == "ok"
        assert integrity(tmp_path / "registry.sqlite") == "ok"
