// The list of conversations: search by id, paged, most recently active first.

import { call, query } from "./api.js";
import { $, h, number, time } from "./dom.js";

const PAGE = 50;
const list = { offset: 0, q: "" };

export function setupSessions(onError) {
  $("session-search").addEventListener("submit", (event) => {
    event.preventDefault();
    list.q = $("session-q").value.trim();
    list.offset = 0;
    showSessions().catch(onError);
  });
  $("sessions-prev").addEventListener("click", () => {
    list.offset = Math.max(0, list.offset - PAGE);
    showSessions().catch(onError);
  });
  $("sessions-next").addEventListener("click", () => {
    list.offset += PAGE;
    showSessions().catch(onError);
  });
}

export async function showSessions() {
  const page = await call("/v1/sessions" + query({ limit: PAGE, offset: list.offset, q: list.q }));
  $("sessions").tBodies[0].replaceChildren(...page.data.map(sessionRow));
  if (!page.data.length) {
    $("sessions").tBodies[0].append(h("tr", {}, h("td", { colspan: 5, class: "muted",
      text: list.q ? `No conversation id contains “${list.q}”.` : "No conversations yet." })));
  }
  const first = page.data.length ? list.offset + 1 : list.offset;
  $("sessions-page").textContent = `${first}–${list.offset + page.data.length}`;
  $("sessions-prev").disabled = list.offset === 0;
  $("sessions-next").disabled = !page.has_more;
}

function sessionRow(session) {
  const params = session.owner ? { owner: session.owner } : {};
  const href = `#/c/${encodeURIComponent(session.id)}${query(params)}`;
  return h("tr", { "data-session": session.id },
    h("th", { scope: "row" }, h("a", { href, text: session.id })),
    h("td", { text: number(session.message_count) }),
    h("td", {}, h("time", { datetime: new Date(session.last_active * 1000).toISOString(), text: time(session.last_active) })),
    h("td", { text: number(session.token_total) }),
    h("td", { text: session.pending ? `${number(session.pending)} waiting` : "none" }));
}
