// "What would the model see?": the preview endpoint's answer for a typed message, and the
// conversation's memory search.

import { call, sessionPath } from "./api.js";
import { budgetBar } from "./charts.js";
import { $, h, number } from "./dom.js";
import { current, ownerParams } from "./conversation.js";

let model = null;

async function modelName() {
  if (model === null) {
    const models = await call("/v1/models");
    model = models.data.length ? models.data[0].id : "default";
  }
  return model;
}

export async function showPreview() {
  const text = $("preview-text").value.trim();
  if (!text) return;
  const body = { model: await modelName(), messages: [{ role: "user", content: text }] };
  const answer = await call("/v1/chat/completions/preview", { method: "POST", body,
                                                             headers: { "X-Session-Id": current.id } });
  $("preview").replaceChildren(...previewParts(answer));
}

function previewParts(answer) {
  if (!answer.budget) return [h("p", { class: "muted", text: "Memory is off for this request: it is sent as is." })];
  const b = answer.budget;
  return [
    h("h4", { text: "Budget" }),
    budgetBar(answer.parts),
    h("p", { class: "muted", text: `${number(b.total_prompt)} of ${number(b.limit)} prompt tokens used; ` +
                                   `${number(b.response_reserve)} kept for the reply.` }),
    h("h4", { text: `Recalled (${answer.memories.length})` }),
    memoryList(answer.memories, "recalled", "Nothing was recalled."),
    h("h4", { text: "Left out for lack of room" }),
    h("p", { class: "muted", text: droppedLine(answer.dropped || {}) }),
    b.decision ? h("ul", { class: "decision muted", "aria-label": "How the room was shared" },
      decisionLines(b.decision).map((line) => h("li", { text: line }))) : null,
    memoryList(answer.left_out || [], "left-out", "Nothing that was offered was left out."),
    h("details", {}, h("summary", { text: `The ${answer.messages.length} messages sent upstream` }),
      h("ol", { class: "sent" }, answer.messages.map((m) => h("li", {},
        h("strong", { text: m.role }), h("pre", { text: typeof m.content === "string" ? m.content
                                                              : JSON.stringify(m.content, null, 1) }))))),
  ];
}

function droppedLine(d) {
  return `${d.memories || 0} recollections found no room; ${d.redundant || 0} were already among the recent turns; ` +
    `${d.messages || 0} of the client's messages and ${d.earlier || 0} earlier turns were not sent.`;
}

function decisionLines(d) {
  const r = d.recollections, e = d.earlier_turns, v = (x) => (x === null || x === undefined ? "none" : x);
  return [`Recollections: ${r.kept} of ${r.offered} sent (${r.in_brief || 0} in brief); lowest score sent ` +
          `${v(r.lowest_kept)}, best left out ${v(r.best_left)}.`,
          `Turns from before the client's window: ${e.kept} of ${e.offered} sent; best left out ${v(e.best_left)}.`];
}

function memoryList(items, name, empty) {
  if (!items.length) return h("p", { class: "muted", text: empty });
  return h("ol", { class: `memories ${name}`, "aria-label": name === "recalled" ? "Recalled memories" : "Left out" },
    items.map((m) => h("li", { class: "memory" },
      h("div", { class: "meta" },
        h("span", { class: "badge", text: m.kind }),
        h("strong", { class: "score", text: `score ${m.score.toFixed(3)}` }),
        m.when ? h("span", { class: "muted", text: m.when }) : null,
        h("span", { class: "muted", text: `${m.tokens} tokens` })),
      h("p", { class: "content", text: m.text }),
      m.reasons.length ? h("ul", { class: "reasons", "aria-label": "Why" },
        m.reasons.map((r) => h("li", { text: r }))) : null)));
}

export async function searchMemory() {
  const q = $("memory-q").value.trim();
  if (!q) return;
  const found = await call(sessionPath(current.id, "/search", { q, k: 10, ...ownerParams() }));
  $("memory-results").replaceChildren(...found.data.map((hit) => h("li", { class: "memory" },
    h("div", { class: "meta" },
      h("span", { class: "badge", text: hit.kind === "persona" ? "persona" : (hit.name || hit.role) }),
      h("strong", { text: `score ${Number(hit.score).toFixed(3)}` }),
      hit.position !== null ? h("span", { class: "muted", text: `message ${hit.position}` }) : null),
    h("p", { class: "content", text: hit.content }),
    hit.reasons && hit.reasons.length ? h("ul", { class: "reasons" }, hit.reasons.map((r) => h("li", { text: r })))
      : null)));
  if (!found.data.length) $("memory-results").append(h("li", { class: "muted", text: "Nothing found." }));
}
