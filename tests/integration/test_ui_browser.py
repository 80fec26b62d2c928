"""The inspector page in a real browser: Debian's Chromium driven by Playwright, against a real
proxy (memory on, keys in use) and the fake upstream, with conversations made by the `openai` SDK.

Each test saves a screenshot under the test run's temporary directory (`ui-screenshots/`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import expect, sync_playwright

from app.fakes.openai_server import FakeUpstream
from app.fakes.serve import serving
from app.main import create_app
from tests.conftest import proxy_settings


KEY, OTHER_KEY, ADMIN_KEY = "sk-ui-reader", "sk-ui-someone-else", "sk-ui-admin"
HAPPY = "I got the job! I'm so happy and excited, this is the best day ever!"
SAD = "My old dog died this morning and I can't stop crying. I miss him so much."
FACT = "My sister Lena lives in Porto, where she studies octopuses at the city aquarium."


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The proxy's root URL; its context is small, so a long conversation cannot all be sent."""
    upstream = FakeUpstream(numbered=True)
    with serving(upstream.app()) as fake_url:
        settings = proxy_settings(tmp_path_factory.mktemp("ui"), upstream_base_url=fake_url + "/v1",
                                  memory_enabled=True, summary_enabled=False, consolidate_interval_seconds=0,
                                  api_keys=[KEY, OTHER_KEY], admin_api_keys=[ADMIN_KEY], context_tokens=1200)
        with serving(create_app(settings)) as url:
            yield url


@pytest.fixture(scope="module")
def browser():
    from app.ui.chromium import launch

    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("ui-screenshots", numbered=False)


@pytest.fixture
def page(browser, base, shots, request):
    """A fresh tab (its own session storage); fails the test on any script error; screenshot at the end."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(base + "/ui")
    yield tab
    tab.screenshot(path=str(shots / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"script errors on the page: {errors}"


def sdk(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)


def chat(base: str, session: str, messages: list[dict], key: str = KEY) -> str:
    reply = sdk(base, key).chat.completions.create(model="fake-model", messages=messages,
                                                    extra_headers={"X-Session-Id": session})
    return reply.choices[0].message.content


def converse(base: str, session: str, user_turns: list[str], system: str | None = None) -> list[dict]:
    """Each user turn sent with the whole conversation so far, as a chat client does."""
    messages = [{"role": "system", "content": system}] if system else []
    for text in user_turns:
        messages.append({"role": "user", "content": text})
        messages.append({"role": "assistant", "content": chat(base, session, messages)})
    return messages


def api(base: str, path: str, key: str = KEY) -> httpx.Response:
    return httpx.get(f"{base}/v1/sessions/{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def wait_indexed(base: str, session: str) -> None:
    deadline = time.monotonic() + 60
    while api(base, session).json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)


def use_key(page, key: str = KEY) -> None:
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")


def open_conversation(page, session: str) -> None:
    use_key(page)
    page.click(f"tr[data-session='{session}'] a")
    page.wait_for_selector("#timeline li.msg")


def test_a_key_lists_the_conversations_made_with_the_sdk_and_searches_them(page, base):
    converse(base, "ui-list-alpha", ["Hello there, this is the first chat."])
    converse(base, "ui-list-beta", ["And this is another one.", "With two turns."])
    use_key(page)
    row = page.locator("tr[data-session='ui-list-beta']")
    row.wait_for()
    assert row.locator("td").nth(0).inner_text() == "4"  # messages
    page.fill("#session-q", "alpha")
    page.click("#session-search button")
    page.locator("tr[data-session='ui-list-beta']").wait_for(state="detached")
    expect(page.locator("tr[data-session='ui-list-alpha']")).to_have_count(1)


def test_the_timeline_shows_the_messages_in_order_with_their_emotions(page, base):
    sent = converse(base, "ui-feelings", [HAPPY, SAD, "What should I do this weekend?"])
    wait_indexed(base, "ui-feelings")
    open_conversation(page, "ui-feelings")
    items = page.locator("#timeline li.msg")
    assert [items.nth(i).locator(".content").inner_text() for i in range(items.count())] == \
        [m["content"] for m in sent]
    stored = {m["content"]: m["emotion"] for m in api(base, "ui-feelings/messages").json()["data"]}
    for i, message in enumerate(sent):
        shown = items.nth(i).locator(".emotion")
        assert shown.inner_text().strip() == stored[message["content"]]
    assert items.nth(0).get_attribute("data-emotion") == "joy"
    assert items.nth(2).get_attribute("data-emotion") == "sadness"
    assert items.nth(0).locator(".speaker").inner_text() == "user"
    expect(page.locator("#emotion-chart svg rect")).to_have_count(3)  # one bar per user message
    expect(page.locator("#timeline .importance[aria-valuenow]")).to_have_count(len(sent))


def test_superseded_versions_appear_behind_the_toggle_after_a_regenerate(page, base):
    messages = converse(base, "ui-regen", ["Tell me a story about a fox."])
    messages.append({"role": "user", "content": "Make it shorter."})
    first = chat(base, "ui-regen", messages)
    second = chat(base, "ui-regen", messages)  # the same window again: a regenerate
    assert first != second
    wait_indexed(base, "ui-regen")
    open_conversation(page, "ui-regen")
    contents = page.locator("#timeline li.msg .content")
    assert contents.all_inner_texts()[-1] == second
    assert first not in contents.all_inner_texts()
    page.check("#show-superseded")
    expect(page.locator("#timeline li.msg")).to_have_count(5)
    assert page.locator("#timeline li.superseded .content").all_inner_texts() == [first]
    assert page.locator("#timeline li.msg .content").all_inner_texts()[-2:] == [first, second]
    page.uncheck("#show-superseded")
    expect(page.locator("#timeline li.msg")).to_have_count(4)
    expect(page.locator("#timeline li.superseded")).to_have_count(0)


def test_a_question_shows_the_recalled_memory_that_answers_it_with_the_budget(page, base):
    converse(base, "ui-recall", [FACT])
    filler = [{"role": "user" if i % 2 == 0 else "assistant",
               "content": f"On day {i} we talked about the weather, the garden and the train timetable again."}
              for i in range(60)]
    httpx.post(f"{base}/v1/sessions/ui-recall/messages", json={"messages": filler},
               headers={"Authorization": f"Bearer {KEY}"}, timeout=30).raise_for_status()
    wait_indexed(base, "ui-recall")
    open_conversation(page, "ui-recall")
    page.fill("#preview-text", "Which city does my sister Lena live in?")
    page.click("#preview-form button")
    recalled = page.locator("ol.recalled li.memory")
    recalled.first.wait_for()
    answer = recalled.filter(has_text="Porto")
    assert answer.count() >= 1
    assert float(answer.first.locator(".score").inner_text().removeprefix("score ")) > 0
    assert answer.first.locator(".reasons li").count() >= 1
    memories = page.locator(".budget-bar .seg-memories")
    assert int(memories.get_attribute("data-tokens")) > 0
    assert memories.get_attribute("title").endswith(" tokens")
    for part in ("recent", "reply_reserve"):
        expect(page.locator(f".budget-bar .seg-{part}")).to_have_count(1)
    assert "were not sent" in page.locator("#preview").inner_text()  # the old turns left out are counted
    page.fill("#memory-q", "sister Lena octopuses")
    page.click("#memory-search button")
    expect(page.locator("#memory-results li").first).to_contain_text("Porto")


def test_an_edited_persona_is_in_the_next_preview(page, base):
    converse(base, "ui-persona", ["Good morning! Any plans for today?"])
    open_conversation(page, "ui-persona")
    page.fill("#preview-text", "Who are you?")
    page.click("#preview-form button")
    page.locator(".budget-bar").wait_for()
    assert "Captain Mira" not in page.locator("#preview ol.sent").inner_text()
    page.fill("#persona-text", "You are Captain Mira of the airship Kestrel, gruff but kind.")
    page.click("#persona-form button")
    page.click("#confirm-ok")
    expect(page.locator("#status")).to_contain_text("Persona saved")
    page.click("#preview-form button")
    expect(page.locator("#preview ol.sent")).to_contain_text("Captain Mira")
    assert int(page.locator(".budget-bar .seg-persona").get_attribute("data-tokens")) > 5
    assert api(base, "ui-persona/persona").json()["persona"].startswith("You are Captain Mira")


def test_export_asks_first_and_then_downloads_everything(page, base):
    sent = converse(base, "ui-export", ["Please keep this for the record."])
    open_conversation(page, "ui-export")
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#export")
    page.click("#confirm-cancel")
    page.wait_for_timeout(500)  # time enough for a download that should not come
    assert downloads == [] and "Exported" not in page.locator("#status").inner_text()
    with page.expect_download() as download:
        page.click("#export")
        page.click("#confirm-ok")
    data = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename == "ui-export.json"
    assert [m["content"] for m in data["messages"]] == [m["content"] for m in sent]


def test_a_long_conversation_opens_at_its_newest_messages_and_pages_back(page, base):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Line {i} of a long chat."}
             for i in range(450)]
    httpx.post(f"{base}/v1/sessions/ui-long/messages", json={"messages": turns},
               headers={"Authorization": f"Bearer {KEY}"}, timeout=60).raise_for_status()
    open_conversation(page, "ui-long")
    contents = page.locator("#timeline li.msg .content")
    assert contents.count() == 200
    assert contents.first.inner_text() == "Line 250 of a long chat."
    assert contents.last.inner_text() == "Line 449 of a long chat."
    page.click("#load-earlier")
    expect(contents).to_have_count(400)
    assert contents.first.inner_text() == "Line 50 of a long chat."
    page.click("#load-earlier")
    expect(contents).to_have_count(450)
    assert contents.all_inner_texts() == [t["content"] for t in turns]
    assert page.locator("#load-earlier").is_hidden()


def test_delete_asks_first_and_then_the_conversation_is_gone(page, base):
    converse(base, "ui-doomed", ["This conversation will not last."])
    open_conversation(page, "ui-doomed")
    page.click("#delete")
    assert page.locator("#confirm").is_visible()
    page.click("#confirm-cancel")
    page.wait_for_timeout(500)  # time enough for a delete that should not come
    assert api(base, "ui-doomed").status_code == 200
    assert page.locator("#page-conversation").is_visible()
    page.click("#delete")
    page.click("#confirm-ok")
    expect(page.locator("#status")).to_contain_text("Deleted")
    expect(page.locator("#page-conversations")).to_be_visible()  # the list comes back, after the status
    expect(page.locator("tr[data-session='ui-doomed']")).to_have_count(0)
    assert api(base, "ui-doomed").status_code == 404


def test_a_wrong_key_sees_nothing(page, base):
    converse(base, "ui-secret", ["The vault code is 4711, keep it safe."])
    use_key(page, "sk-not-a-key")
    expect(page.locator("#status")).to_contain_text("refused")
    assert "4711" not in page.content() and "ui-secret" not in page.content()
    assert all(page.locator(f"#{p}").is_hidden() for p in ("page-conversations", "page-conversation", "page-report"))
    page.goto(base + "/ui#/c/ui-secret")
    expect(page.locator("#status")).to_contain_text("refused")
    assert "4711" not in page.content()


def test_another_tenants_key_does_not_see_the_conversation(page, base):
    converse(base, "ui-private", ["My diary entry: the vault code is 9182."])
    use_key(page, OTHER_KEY)
    page.locator("#page-conversations").wait_for()
    expect(page.locator("tr[data-session='ui-private']")).to_have_count(0)
    page.goto(base + "/ui#/c/ui-private")
    expect(page.locator("#status")).to_contain_text("no session")
    assert "9182" not in page.content()


def test_the_report_draws_latency_and_the_live_request_rate(page, base):
    converse(base, "ui-report", ["One request for the report.", "And another."])
    use_key(page, ADMIN_KEY)
    page.goto(base + "/ui#/report")
    page.locator("#chart-models svg polyline").first.wait_for(state="attached")
    assert page.locator("#chart-stages svg polyline").count() >= 5 * 3  # stages x quantiles
    assert "fake-model" in page.locator("#chart-models").inner_text()
    expect(page.locator("#live-rate")).to_contain_text("a minute", timeout=15000)
    expect(page.locator("#rate-chart svg")).to_have_count(1)


def test_a_slow_page_that_finishes_late_does_not_cover_the_page_asked_for_after_it(page, base):
    held = []  # the conversations list's requests, answered only after the report is open
    page.route("**/v1/sessions?*", lambda route: held.append(route))
    use_key(page, ADMIN_KEY)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the key did not ask for the conversations list"
    page.goto(base + "/ui#/report")
    expect(page.locator("#page-report")).to_be_visible()
    for route in held:
        route.continue_()
    page.wait_for_timeout(1000)  # the list's late answer has arrived and been handled
    assert page.locator("#page-report").is_visible()
    assert page.locator("#page-conversations").is_hidden()
    expect(page.locator("#live-rate")).to_contain_text("a minute", timeout=15000)


def test_the_report_needs_an_admin_key(page, base):
    use_key(page)
    page.goto(base + "/ui#/report")
    expect(page.locator("#status")).to_contain_text("admin key")
    assert page.locator("#page-report").is_hidden()


def test_a_phone_width_window_needs_no_sideways_scrolling(page, base):
    converse(base, "ui-phone", ["A long line without breaks: " + "x" * 300, "And a short one."])
    page.set_viewport_size({"width": 375, "height": 800})
    open_conversation(page, "ui-phone")
    page.fill("#preview-text", "What did I say?")
    page.click("#preview-form button")
    page.locator(".budget-bar").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_the_keyboard_reaches_the_key_field_and_the_conversations(page, base):
    converse(base, "ui-keys", ["Typed without a mouse."])
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "key"
    page.keyboard.type(KEY)
    page.keyboard.press("Enter")
    page.locator("tr[data-session='ui-keys'] a").focus()
    page.keyboard.press("Enter")
    page.locator("#timeline li.msg").first.wait_for()
    assert page.locator("#timeline li.msg .content").first.inner_text() == "Typed without a mouse."
