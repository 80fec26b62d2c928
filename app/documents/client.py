"""`memory-proxy docs add FILE...`: documents uploaded to a running proxy, indexing shown as it goes.

    add_documents("http://127.0.0.1:8000", key, ["manual.pdf", "lore.md"], scope=None)  # exit code

Each file is uploaded (one bar step per byte sent), then the command follows the documents'
status until every one is indexed or failed (a second bar, one step per document), and prints
each failure with its reason. Exit code 0 when all were indexed, 1 otherwise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

DONE = ("indexed", "failed")


def add_documents(url: str, key: str | None, files: list[str], *, scope: str | None, timeout: float) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        ids = _upload(client, [Path(f) for f in files], scope)
        if ids is None:
            return 1
        docs = _follow(client, ids, timeout)
    failed = [d for d in docs if d["status"] != "indexed"]
    for doc in failed:
        print(f"{doc['name']}: {doc['status']}: {doc.get('error') or 'not finished in time'}", file=sys.stderr)
    print(f"{len(docs) - len(failed)} of {len(docs)} documents indexed "
          f"({sum(d.get('chunks') or 0 for d in docs)} chunks)")
    return 1 if failed else 0


def _upload(client, paths: list[Path], scope: str | None) -> list[str] | None:
    from tqdm import tqdm

    ids = []
    with tqdm(total=sum(p.stat().st_size for p in paths), unit="B", unit_scale=True, desc="uploading") as bar:
        for path in paths:
            with open(path, "rb") as fh:
                response = client.post("/v1/documents", files={"file": (path.name, fh)},
                                       data={"scope": scope} if scope else None)
            if response.status_code >= 400:
                print(f"\n{path.name}: refused: {response.status_code} {_message(response)}", file=sys.stderr)
                return None
            ids.append(response.json()["id"])
            bar.update(path.stat().st_size)
    return ids


def _follow(client, ids: list[str], timeout: float) -> list[dict]:
    from tqdm import tqdm

    deadline = time.monotonic() + timeout
    docs = {i: {"status": "pending", "name": i} for i in ids}
    with tqdm(total=len(ids), unit="doc", desc="indexing") as bar:
        while time.monotonic() < deadline:
            for doc_id in [i for i, d in docs.items() if d["status"] not in DONE]:
                docs[doc_id] = client.get(f"/v1/documents/{doc_id}").json()
                bar.update(int(docs[doc_id]["status"] in DONE))
            if all(d["status"] in DONE for d in docs.values()):
                break
            time.sleep(0.2)
    return list(docs.values())


def _message(response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
