"""The memory API: bulk-load a conversation, wait for indexing, preview, search, export, delete.

    BASE_URL=http://127.0.0.1:8000/v1 API_KEY=sk-... python examples/memory_api.py
"""

import os
import time

import httpx

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8000/v1")
MODEL = os.environ.get("MODEL", "fake-model")
SESSION = "example-memory-api"
KEY = os.environ.get("API_KEY", "unused")  # one of the proxy's API_KEYS, if it has any
api = httpx.Client(base_url=BASE, timeout=60, headers={"Authorization": f"Bearer {KEY}"})

turns = [("user", "I'm training for the Lisbon half marathon in October."), ("assistant", "Exciting! How is it going?"),
         ("user", "My knee hurts after long runs, and honestly I'm scared I won't finish."),
         ("assistant", "That sounds stressful. Have you seen a physio?")]
api.post(f"/sessions/{SESSION}/messages", json={"messages": [{"role": r, "content": c} for r, c in turns]})
while api.get(f"/sessions/{SESSION}").json()["pending"]:  # embedding and scoring run in the background
    time.sleep(0.1)
print("session:", api.get(f"/sessions/{SESSION}").json())

question = {"model": MODEL, "messages": [{"role": "user", "content": "Which race am I training for?"}]}
preview = api.post("/chat/completions/preview", json=question, headers={"X-Session-Id": SESSION}).json()
print("budget:", preview["budget"])
for memory in preview["memories"]:
    print(f"memory ({memory['score']:.3f}, {', '.join(memory['reasons'])}): {memory['text']!r}")

for hit in api.get(f"/sessions/{SESSION}/search", params={"q": "knee pain", "k": 2}).json()["data"]:
    print(f"search hit {hit['score']:.3f}: {hit['content']}")
print("emotions:", api.get(f"/sessions/{SESSION}/emotions").json()["shares"])
exported = api.get(f"/sessions/{SESSION}/export").json()
print("exported messages:", len(exported["messages"]))
print("deleted:", api.delete(f"/sessions/{SESSION}").json()["deleted"])
