"""The knowledge base end to end: real files of every type uploaded over HTTP, indexed with the
real embedding model, and their passages (with citations, tables as tables) seen by a fake
upstream through the `openai` SDK."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from tests import docfiles as make

FILES = {
    "manual.pdf": lambda p: make.make_pdf(p, [("Overview", make.filler(60)),
                                              ("Coolant", "The coolant reservoir of the Kestrel holds exactly 38 "
                                                          "litres of blue glycol.")]),
    "handbook.docx": lambda p: make.make_docx(p, [("Dress code", "On Fridays the harbour staff wear green hats.")]),
    "deck.pptx": lambda p: make.make_pptx(p, [("Agenda", make.filler(20)),
                                              ("Launch plan", "The lunar probe launches from Kourou on the "
                                                              "ninth of March.")]),
    "planets.xlsx": lambda p: make.make_xlsx(p, [["Planet", "Moons"], ["Mars", "2"], ["Jupiter", "95"]], "Moons"),
    "guide.html": lambda p: make.make_html(p, [("Parking", "Visitors park their bicycles behind the old "
                                                           "lighthouse.")], table=None),
    "lore.md": lambda p: make.make_markdown(p, [("Vermithrax", "The dragon Vermithrax sleeps under the salt "
                                                               "mountains and hoards silver bells.")]),
    "notes.txt": lambda p: make.make_text(p, "The wifi password for the guest network is marmalade-sunrise-7."),
    "staff.csv": lambda p: make.make_csv(p, [["Name", "Job"], ["Ingrid", "Chief cartographer"], ["Tomas", "Cook"]]),
    "crew.json": lambda p: make.make_json(p, {"ship": "Kestrel", "captain": "Ada Okafor", "home port": "Valletta"}),
}
QUESTIONS = [  # (question, words the passage holds, its citation)
    ("How many litres does the coolant reservoir hold?", "38 litres", "[manual.pdf, p. 2]"),
    ("What do the harbour staff wear on Fridays?", "green hats", "[handbook.docx, Dress code]"),
    ("When does the lunar probe launch?", "ninth of March", "[deck.pptx, p. 2]"),
    ("How many moons does Jupiter have?", "| Jupiter | 95 |", "[planets.xlsx, Moons]"),
    ("Where do visitors park their bicycles?", "old lighthouse", "[guide.html, Parking]"),
    ("Where does the dragon Vermithrax sleep?", "salt mountains", "[lore.md, Vermithrax]"),
    ("What is the wifi password for the guest network?", "marmalade-sunrise-7", "[notes.txt]"),
    ("Who is the chief cartographer?", "| Ingrid | Chief cartographer |", "[staff.csv]"),
    ("Who is the captain of the ship?", "Ada Okafor", "[crew.json]"),
]


@pytest.fixture
def docs_proxy(fake, start_proxy, tmp_path):
    def start(**overrides) -> str:
        values = dict(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, docs_dir=tmp_path / "docs")
        return start_proxy(**{**values, **overrides})
    return start


def root(url: str) -> str:
    return url.removesuffix("/v1")


def upload(url: str, path: Path, *, key: str = "k", scope: str | None = None, name: str | None = None):
    with open(path, "rb") as fh:
        return httpx.post(f"{url}/documents", files={"file": (name or path.name, fh)},
                          data={"scope": scope} if scope else None, headers={"Authorization": f"Bearer {key}"},
                          timeout=30)


def wait_for(url: str, doc_id: str, key: str = "k", timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = httpx.get(f"{url}/documents/{doc_id}", headers={"Authorization": f"Bearer {key}"}).json()
        if doc["status"] in ("indexed", "failed"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{doc_id} still {doc['status']} after {timeout} s")


def ask(url: str, question: str, session: str, key: str = "k", **headers: str) -> None:
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)
    client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": question}],
                                   extra_headers={"X-Session-Id": session, **headers})


def documents_block(fake) -> str:
    """The part of the memory block the last upstream request held from documents ('' if none)."""
    system = [m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "system"]
    text = "\n".join(system)
    return text[text.index("From your documents:"):] if "From your documents:" in text else ""


def test_every_type_is_indexed_and_answers_with_its_passage_and_citation(docs_proxy, fake, tmp_path):
    url = docs_proxy()
    ids = {}
    for name, build in FILES.items():
        response = upload(url, build(tmp_path / name))
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        ids[name] = response.json()["id"]
    for name, doc_id in ids.items():
        doc = wait_for(url, doc_id)
        assert doc["status"] == "indexed" and doc["chunks"] >= 1, doc
    for i, (question, words, cite) in enumerate(QUESTIONS):
        ask(url, question, f"s{i}")
        block = documents_block(fake)
        assert words in block and cite in block, (question, block)
        after = block[block.index(cite):]
        assert words in after.split("\n- [", 1)[0], "the citation stands before its own passage"


def test_a_table_arrives_as_a_markdown_table(docs_proxy, fake, tmp_path):
    url = docs_proxy()
    doc = wait_for(url, upload(url, FILES["handbook.docx"](tmp_path / "handbook.docx")).json()["id"])
    chunks = httpx.get(f"{url}/documents/{doc['id']}/chunks").json()["data"]
    assert any(c["table"] and c["heading"] == ["Parts table"] for c in chunks)
    ask(url, "What torque does the flux valve need, in Nm?", "tables")
    block = documents_block(fake)
    assert "[handbook.docx, Parts table]" in block
    rows = [line.strip() for line in block.splitlines()]
    start = rows.index("| Part | Torque (Nm) | Colour |")
    assert rows[start:start + 5] == ["| Part | Torque (Nm) | Colour |", "| --- | --- | --- |",
                                     "| Flux valve | 42 | teal |", "| Cooling pump | 17 | amber |",
                                     "| Main bearing | 95 | violet |"]


def test_listing_chunks_and_delete(docs_proxy, fake, tmp_path):
    url = docs_proxy()
    doc = wait_for(url, upload(url, FILES["lore.md"](tmp_path / "lore.md")).json()["id"])
    listed = httpx.get(f"{url}/documents").json()["data"]
    assert [(d["id"], d["status"], d["scope"]) for d in listed] == [(doc["id"], "indexed", "global")]
    chunks = httpx.get(f"{url}/documents/{doc['id']}/chunks").json()["data"]
    assert chunks[0]["heading"] == ["Vermithrax"] and "salt mountains" in chunks[0]["text"]
    assert httpx.delete(f"{url}/documents/{doc['id']}").json()["deleted"] is True
    assert httpx.get(f"{url}/documents/{doc['id']}").status_code == 404
    ask(url, "Where does the dragon Vermithrax sleep?", "after-delete")
    assert documents_block(fake) == ""


def test_preview_shows_document_candidates_with_scores_and_search_includes_them(docs_proxy, tmp_path):
    url = docs_proxy()
    wait_for(url, upload(url, FILES["notes.txt"](tmp_path / "notes.txt")).json()["id"])
    preview = httpx.post(f"{url}/chat/completions/preview", headers={"X-Session-Id": "p"},
                         json={"model": "fake-model", "messages": [
                             {"role": "user", "content": "What is the guest wifi password?"}]}).json()
    docs = [m for m in preview["memories"] if m["kind"] == "document"]
    assert docs and docs[0]["when"] == "notes.txt" and docs[0]["score"] > 0.35
    assert preview["budget"]["decision"]["recollections"]["kept"] >= 1
    ask(url, "hello there", "p")
    found = httpx.get(f"{url}/sessions/p/search", params={"q": "guest wifi password", "documents": "true"}).json()
    cited = [h for h in found["data"] if h.get("object") == "document.chunk"]
    assert cited and cited[0]["citation"] == "[notes.txt]" and "marmalade" in cited[0]["content"]
    plain = httpx.get(f"{url}/sessions/p/search", params={"q": "guest wifi password"}).json()
    assert not [h for h in plain["data"] if h.get("object") == "document.chunk"]


def test_a_tenants_documents_never_reach_another_tenant(docs_proxy, fake, tmp_path):
    url = docs_proxy(api_keys=["sk-alice", "sk-bob"], admin_api_keys=["sk-root"])
    secret = make.make_text(tmp_path / "alice.txt", "Alice keeps the vault combination 7-41-29 in her blue notebook.")
    doc = wait_for(url, upload(url, secret, key="sk-alice").json()["id"], key="sk-alice")
    assert doc["scope"] == "tenant"
    question = "What is the vault combination?"
    ask(url, question, "same-id", key="sk-bob")
    assert "7-41-29" not in str(fake.requests[-1]["messages"])
    ask(url, question, "same-id", key="sk-alice")
    assert "7-41-29" in documents_block(fake)
    bob = {"Authorization": "Bearer sk-bob"}
    assert httpx.get(f"{url}/documents", headers=bob).json()["data"] == []
    assert httpx.get(f"{url}/documents/{doc['id']}", headers=bob).status_code == 404
    assert httpx.get(f"{url}/documents/{doc['id']}/chunks", headers=bob).status_code == 404
    assert httpx.delete(f"{url}/documents/{doc['id']}", headers=bob).status_code == 404
    found = httpx.get(f"{url}/sessions/same-id/search", params={"q": question, "documents": "true"}, headers=bob)
    assert "7-41-29" not in found.text
    refused = upload(url, secret, key="sk-bob", scope="global")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope_not_allowed"


def test_a_session_scoped_document_stays_in_its_conversation(docs_proxy, fake, tmp_path):
    url = docs_proxy()
    lore = make.make_markdown(tmp_path / "world.md", [("The moon city", "The moon city of Orrin is lit by "
                                                                         "glowing jellyfish lanterns.")])
    doc = wait_for(url, upload(url, lore, scope="session:story-1").json()["id"])
    assert doc["scope"] == "session:story-1"
    ask(url, "What lights the moon city of Orrin?", "story-2")
    assert "jellyfish" not in str(fake.requests[-1]["messages"])
    ask(url, "What lights the moon city of Orrin?", "story-1")
    assert "jellyfish" in documents_block(fake)
    assert upload(url, lore, scope="session:bad\nid").status_code == 400
    assert upload(url, lore, scope="everyone").status_code == 400


def test_the_documents_folder_is_indexed_at_start_and_watched(docs_proxy, fake, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    make.make_text(folder / "before.txt", "The lighthouse keeper feeds the gulls at dawn.")
    url = docs_proxy()
    names = poll(url, lambda names: names.get("before.txt") == "indexed")
    assert names == {"before.txt": "indexed"}
    make.make_markdown(folder / "later.md", [("Ferry", "The night ferry to Gozo leaves at 23:40 from pier nine.")])
    poll(url, lambda names: names.get("later.md") == "indexed")
    ask(url, "When does the night ferry to Gozo leave?", "folder")
    assert "[later.md, Ferry]" in documents_block(fake)
    (folder / "later.md").unlink()
    assert poll(url, lambda names: "later.md" not in names) == {"before.txt": "indexed"}
    ask(url, "When does the night ferry to Gozo leave?", "folder-2")
    assert "23:40" not in str(fake.requests[-1]["messages"])


def poll(url: str, done, timeout: float = 10.0) -> dict:
    """The folder's documents by name and status, once `done` holds of them (within `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        names = {d["name"]: d["status"] for d in httpx.get(f"{url}/documents").json()["data"]}
        if done(names):
            return names
        if time.monotonic() > deadline:
            raise AssertionError(f"not reflected in {timeout} s: {names}")
        time.sleep(0.1)


def test_bad_files_are_refused_or_fail_with_a_reason_and_nothing_is_half_indexed(docs_proxy, tmp_path):
    url = docs_proxy(docs_max_upload_bytes=100_000, docs_max_unpacked_bytes=8 << 20)
    too_big = make.make_text(tmp_path / "big.txt", "word " * 60_000)
    refused = {
        "../../etc/passwd.txt": (upload(url, make.make_text(tmp_path / "p.txt", "x"), name="../../etc/passwd.txt"),
                                 400),
        "binary.txt": (upload(url, make.make_binary(tmp_path / "binary.txt")), 415),
        "program.exe": (upload(url, make.make_binary(tmp_path / "program.exe")), 415),
        "fake.pdf": (upload(url, make.make_text(tmp_path / "fake.pdf", "just text")), 415),
        "big.txt": (upload(url, too_big), 413),
    }
    for name, (response, status) in refused.items():
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error", name
    failing = {"locked.pdf": (make.make_encrypted_pdf(tmp_path / "locked.pdf"), "encrypted"),
               "broken.pdf": (make.make_corrupt_pdf(tmp_path / "broken.pdf"), "could not be read"),
               "bomb.docx": (make.make_zip_bomb(tmp_path / "bomb.docx"), "unpack")}
    for name, (path, reason) in failing.items():
        response = upload(url, path)
        assert response.status_code == 202, (name, response.text)
        doc = wait_for(url, response.json()["id"])
        assert doc["status"] == "failed" and reason in doc["error"] and doc["chunks"] == 0, doc
        assert httpx.get(f"{url}/documents/{doc['id']}/chunks").json()["data"] == []
    assert httpx.get(f"{root(url)}/health").status_code == 200
    metrics = httpx.get(f"{root(url)}/metrics").text
    assert "proxy_documents_failed 3.0" in metrics and "proxy_documents_queue_depth 0.0" in metrics
    good = wait_for(url, upload(url, make.make_text(tmp_path / "fine.txt", "The kettle is in the attic.")).json()["id"])
    assert good["status"] == "indexed"
    assert sorted(d["name"] for d in httpx.get(f"{url}/documents").json()["data"]) == \
        ["bomb.docx", "broken.pdf", "fine.txt", "locked.pdf"]
    assert not list((tmp_path / "data" / "documents" / "uploads").iterdir()), "no upload left behind"


def test_the_cli_adds_documents_with_a_progress_bar(docs_proxy, tmp_path, capsys):
    from app.cli import main

    url = docs_proxy()
    files = [FILES[n](tmp_path / n) for n in ("lore.md", "notes.txt")]
    assert main(["docs", "add", *map(str, files), "--url", root(url), "--scope", "session:cli"]) == 0
    out = capsys.readouterr()
    assert "2 of 2 documents indexed" in out.out
    assert "indexing: 100%" in out.err and "2/2" in out.err
    docs = httpx.get(f"{url}/documents").json()["data"]
    assert sorted((d["name"], d["scope"], d["status"]) for d in docs) == [
        ("lore.md", "session:cli", "indexed"), ("notes.txt", "session:cli", "indexed")]
    bad = make.make_corrupt_pdf(tmp_path / "broken.pdf")
    assert main(["docs", "add", str(bad), "--url", root(url)]) == 1
    assert "broken.pdf: failed: the PDF could not be read" in capsys.readouterr().err


def test_a_page_elsewhere_cannot_upload_and_only_uploads_take_multipart(docs_proxy, tmp_path):
    url = docs_proxy()
    path = make.make_text(tmp_path / "a.txt", "hello")
    with open(path, "rb") as fh:
        response = httpx.post(f"{url}/documents", files={"file": ("a.txt", fh)},
                              headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    with open(path, "rb") as fh:
        response = httpx.post(f"{url}/chat/completions", files={"file": ("a.txt", fh)})
    assert response.status_code == 415
    response = httpx.post(f"{url}/documents", data={"scope": "global"})
    assert response.status_code == 415  # a form without a file is not multipart
    response = httpx.post(f"{url}/documents", files={"other": ("a.txt", b"x")})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    response = httpx.post(f"{url}/documents", files={"file": ("a.txt", b"x"), "scope": ("s.txt", b"global")})
    assert response.status_code == 400 and "multipart" in response.json()["error"]["message"]  # one file at most


def test_documents_survive_a_restart_and_an_interrupted_upload_resumes(fake, tmp_path):
    import asyncio

    from app.documents.store import Document, DocumentStore
    from app.fakes.serve import serving
    from app.main import create_app
    from tests.conftest import proxy_settings

    settings = proxy_settings(tmp_path, upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                              consolidate_interval_seconds=0, docs_dir=tmp_path / "docs")
    kept = make.make_text(tmp_path / "kept.txt", "The spare key hangs behind the clock.")
    with serving(create_app(settings)) as base:
        doc = wait_for(base + "/v1", upload(base + "/v1", kept).json()["id"])
    uploads = settings.data_dir / "documents" / "uploads"

    async def interrupted() -> None:  # as a stop mid-indexing leaves them: rows pending, one file kept
        store = DocumentStore(settings.data_dir / "documents.sqlite")
        await store.open()
        for doc_id, name in (("doc-resumed", "resumed.md"), ("doc-lost", "lost.md")):
            await store.insert(Document(doc_id, name, "upload", None, None, 10, "-", status="indexing"))
        await store.aclose()
    asyncio.run(interrupted())
    make.make_markdown(uploads / "doc-resumed", [("Garden", "The tortoise hibernates in the potting shed.")])
    with serving(create_app(settings)) as base:
        url = base + "/v1"
        assert wait_for(url, doc["id"])["status"] == "indexed"
        assert wait_for(url, "doc-resumed")["status"] == "indexed"
        lost = wait_for(url, "doc-lost")
        assert lost["status"] == "failed" and "interrupted" in lost["error"]
        for question, words in (("Where does the spare key hang?", "behind the clock"),
                                ("Where does the tortoise hibernate?", "potting shed")):
            ask(url, question, "restart")
            assert words in documents_block(fake)
    assert not any(uploads.iterdir())


def test_a_passage_reaches_a_conversation_that_already_has_memories(docs_proxy, fake, tmp_path):
    url = docs_proxy()
    history = [{"role": "user" if i % 2 == 0 else "assistant",
                "content": f"Turn {i}: we chatted about {['sailing', 'the weather', 'dinner', 'a film'][i % 4]} "
                           f"and the coolant {'pump' if i % 3 else 'colour'} for a while."} for i in range(60)]
    assert httpx.post(f"{url}/sessions/deep/messages", json={"messages": history}).status_code == 200
    wait_for(url, upload(url, FILES["manual.pdf"](tmp_path / "manual.pdf")).json()["id"])
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/sessions/deep").json().get("pending") and time.monotonic() < deadline:
        time.sleep(0.2)
    ask(url, "How many litres does the coolant reservoir hold?", "deep", **{"X-Context-Budget": "1500"})
    system = "\n".join(m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "system")
    assert "Earlier moments" in system, "memories were recalled too"
    assert "[manual.pdf, p. 2]" in documents_block(fake) and "38 litres" in documents_block(fake)
