"""How fast the inspector opens a long conversation in a real browser, and its screenshots.

    python bench/ui_bench.py [--messages 10000] [--runs 10] [--shots bench/results]

A proxy (memory on, a key in use) and the fake upstream on 127.0.0.1; a conversation of
`--messages` messages loaded through the memory API and scored by the background writer; Debian's
Chromium driven by Playwright. Two timings, each `--runs` times, read from the page's own
`performance` marks (no round trip to the test driver counted):

- cold: the page loaded at `/ui#/c/<id>` with the key in session storage: navigation start to the
  first render of the timeline (the newest 200 messages), scripts and all (each run waits for the
  previous one's page to finish loading, so no request of it is still being served);
- from the list: a click on the conversation in the list to its first timeline render, and to
  everything on the page loaded (summaries, emotion chart, persona, its chunks).

Results go to bench/results/ui.json; `--shots` also writes the README's screenshots of each page
(a short conversation with a persona, a regenerate and a preview; the report; a phone-width view).
The context is 900 tokens, so a preview shows recollections rather than the whole short chat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.fakes.openai_server import FakeUpstream  # noqa: E402
from app.fakes.serve import serving  # noqa: E402
from app.main import create_app  # noqa: E402
from app.ui.chromium import launch  # noqa: E402

KEY = "sk-bench-inspector"
LONG = "long-10k"
DEMO_PERSONA = ("You are Maren, the keeper of a lighthouse inn on a stormy northern coast. You are warm, "
                "dry-humoured and remember every guest.")
DEMO_TURNS = [
    "Hello Maren! I finally made it to the inn, the storm was terrible.",
    "I'm so happy to be inside, this soup is wonderful!",
    "My sister Lena lives in Porto, she studies octopuses at the aquarium there.",
    "I lost my father's compass on the cliff path. I can't stop thinking about it.",
    "Is it true the old keeper disappeared in 1911? That scares me a little.",
    "Can you remember that I take my tea without sugar?",
    "Wow, you kept a logbook of every ship since 1890? Amazing!",
    "Tell me about the ghost in the lamp room.",
]


def settings(data: Path, upstream: str) -> Settings:
    return Settings(_env_file=None, data_dir=data / "data", log_dir=data / "logs", upstream_base_url=upstream,
                    memory_enabled=True, summary_enabled=True, summary_every=40, consolidate_interval_seconds=0,
                    api_keys=[KEY], admin_api_keys=[KEY + "-admin"], log_json=False, context_tokens=900,
                    embedding_cache_dir=ROOT / "data" / "models")


def load_long(base: str, n: int, batch: int = 1000) -> None:
    """`n` alternating turns through the memory API, in batches."""
    lines = ["The tide came in early and we talked about the nets.", "I'm worried the boat will not be ready.",
             "What a lovely evening, the sky is all gold!", "He said the road to the village is closed again.",
             "Do you remember the name of the ferry captain?", "It was Captain Idris, the one with the red scarf."]
    auth = {"Authorization": f"Bearer {KEY}"}
    for start in range(0, n, batch):
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"({i}) {lines[i % len(lines)]}"}
                    for i in range(start, min(n, start + batch))]
        httpx.post(f"{base}/v1/sessions/{LONG}/messages", json={"messages": messages}, headers=auth,
                   timeout=120).raise_for_status()


def wait_indexed(base: str, session: str, limit: float) -> int:
    """Waits for the background writer; the messages still pending when `limit` seconds are up."""
    deadline = time.monotonic() + limit
    while True:
        info = httpx.get(f"{base}/v1/sessions/{session}", headers={"Authorization": f"Bearer {KEY}"}).json()
        pending = info["pending"]
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(0.5)


def mark_gap(page, start: str, end: str) -> float:
    """Milliseconds from the last `start` mark (or navigation start) to the last `end` mark."""
    return page.evaluate("""([start, end]) => {
        const last = (name) => performance.getEntriesByName(name).slice(-1)[0];
        return last(end).startTime - (start ? last(start).startTime : 0);
    }""", [start, end])


def cold_open(page, base: str) -> float:
    page.goto("about:blank")
    page.goto(f"{base}/ui#/c/{LONG}")
    page.wait_for_selector("#page-conversation[aria-busy='false']")  # the rest done before the next run
    return mark_gap(page, None, "timeline-rendered")


def open_from_list(page, base: str) -> tuple[float, float]:
    page.goto("about:blank")
    page.goto(f"{base}/ui#/")
    page.wait_for_selector(f"tr[data-session='{LONG}'] a")
    page.click(f"tr[data-session='{LONG}'] a")
    page.wait_for_selector("#page-conversation[aria-busy='false']")
    return mark_gap(page, "route", "timeline-rendered"), mark_gap(page, "route", "conversation-loaded")


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "max_ms": round(max(values), 1),
            "min_ms": round(min(values), 1)}


def make_demo(base: str) -> None:
    """A short conversation with a persona, emotions, a regenerate, and requests for the report."""
    client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=60)
    messages = [{"role": "system", "content": DEMO_PERSONA}]
    for text in DEMO_TURNS:
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="fake-model", messages=messages,
                                               extra_headers={"X-Session-Id": "lighthouse-inn"})
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    client.chat.completions.create(model="fake-model", messages=messages[:-1],  # a regenerate
                                   extra_headers={"X-Session-Id": "lighthouse-inn"})
    for i in range(6):
        client.chat.completions.create(model="fake-model-large", messages=[{"role": "user", "content": f"Ping {i}"}],
                                       extra_headers={"X-Session-Id": f"voice-agent-{i % 2}"})


def traffic(base: str, seconds: float) -> None:
    """A request every 0.2 s to either model, for the report's charts and rate."""
    client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=60)
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        client.chat.completions.create(model=("fake-model", "fake-model-large")[i % 2],
                                       messages=[{"role": "user", "content": f"Status {i}?"}],
                                       extra_headers={"X-Session-Id": f"voice-agent-{i % 3}"})
        i += 1
        time.sleep(0.2)


def screenshots(browser, base: str, out: Path) -> list[str]:
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    page = context.new_page()
    page.goto(f"{base}/ui")
    page.fill("#key", KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("tr[data-session='lighthouse-inn']")
    page.screenshot(path=str(out / "ui-conversations.png"))
    page.click("tr[data-session='lighthouse-inn'] a")
    page.wait_for_selector("#page-conversation[aria-busy='false']")
    page.check("#show-superseded")
    page.wait_for_selector("#timeline li.superseded")
    page.fill("#preview-text", "Where does my sister live?")
    page.click("#preview-form button")
    page.wait_for_selector("#preview .budget-bar")
    page.screenshot(path=str(out / "ui-conversation.png"))
    page.locator("#preview-title").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "ui-preview.png"), clip={"x": 760, "y": 0, "width": 440, "height": 860})
    page.set_viewport_size({"width": 375, "height": 760})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "ui-phone.png"))
    page.set_viewport_size({"width": 1200, "height": 860})
    traffic(base, seconds=20)
    page.goto(f"{base}/ui#/report")
    page.fill("#key", KEY + "-admin")  # the report is for admin keys
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#chart-models svg")
    page.fill("#report-days", "0.002")  # the last three minutes: the traffic above, in spans of 7 s
    page.click("#report-form button")
    page.wait_for_selector("#chart-models svg polyline")
    with ThreadPoolExecutor(1) as pool:  # requests while the page samples /metrics: a rate to show
        pool.submit(traffic, base, 7)
        time.sleep(6)
    page.screenshot(path=str(out / "ui-report.png"))
    context.close()
    return sorted(p.name for p in out.glob("ui-*.png"))


def measure(browser, base: str, runs: int) -> dict:
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    page = context.new_page()
    page.goto(f"{base}/ui")
    page.fill("#key", KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector(f"tr[data-session='{LONG}']")
    cold_open(page, base)  # warms the server's caches, as any first look would
    cold = [cold_open(page, base) for _ in range(runs)]
    listed = [open_from_list(page, base) for _ in range(runs)]
    shown = page.locator("#timeline li.msg").count()
    context.close()
    return {"cold_first_render": summary(cold), "from_list_first_render": summary([a for a, _ in listed]),
            "from_list_all_loaded": summary([b for _, b in listed]), "timeline_items_rendered": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--index-wait", type=float, default=900, help="seconds to wait for background scoring")
    parser.add_argument("--shots", type=Path, default=None, help="write the README's screenshots here")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ui.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    upstream = FakeUpstream(numbered=True)
    with tempfile.TemporaryDirectory() as tmp, serving(upstream.app()) as fake_url, \
            serving(create_app(settings(Path(tmp), fake_url + "/v1"))) as base:
        t0 = time.perf_counter()
        load_long(base, args.messages)
        make_demo(base)
        pending = wait_indexed(base, LONG, args.index_wait)
        wait_indexed(base, "lighthouse-inn", 60)
        loaded_s = time.perf_counter() - t0
        with sync_playwright() as pw:
            browser = launch(pw)
            result = {"messages": args.messages, "runs": args.runs, "pending_when_measured": pending,
                      "load_average_before": round(os.getloadavg()[0], 2),
                      "load_and_score_s": round(loaded_s, 1), **measure(browser, base, args.runs),
                      "chromium": browser.version}
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                result["screenshots"] = screenshots(browser, base, args.shots)
            browser.close()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
