// One conversation: its timeline (newest page first, earlier on demand), summaries, emotions,
// persona, export and delete.

import { call, sessionPath } from "./api.js";
import { EMOTION_COLOURS, emotionStrip } from "./charts.js";
import { $, h, number, time } from "./dom.js";

const PAGE = 200;
export const current = { id: null, owner: null, rows: [], total: 0, superseded: false };

export function ownerParams() {
  return current.owner ? { owner: current.owner } : {};
}

export async function openConversation(id, owner) {
  Object.assign(current, { id, owner, rows: [], total: 0, superseded: $("show-superseded").checked });
  $("conversation-title").textContent = id;
  $("timeline").replaceChildren();
  for (const list of ["summaries", "memory-results", "persona-chunks", "emotion-legend"]) $(list).replaceChildren();
  $("emotion-chart").replaceChildren();
  $("preview").replaceChildren();
  $("page-conversation").setAttribute("aria-busy", "true");
  const info = await call(sessionPath(id, "", ownerParams()));
  showStats(info);
  await loadPage(info);
  performance.mark("timeline-rendered");
  await Promise.all([showSummaries(), showEmotions(), showPersona()]);
  $("page-conversation").setAttribute("aria-busy", "false");
  performance.mark("conversation-loaded");
}

function showStats(info) {
  current.info = info;
  $("conversation-stats").textContent = `${number(info.messages)} messages (${number(info.superseded)} superseded), ` +
    `${number(info.token_total)} tokens, ${number(info.pending)} waiting for background work; ` +
    `last activity ${time(info.last_activity)}`;
}

// The page of messages before the ones shown (the newest page first); `fresh` starts the list again.
async function loadPage(info, fresh = false) {
  const shown = fresh ? 0 : current.rows.length;
  const params = { limit: PAGE, offset: shown, order: "desc", ...ownerParams() };
  if (current.superseded) params.include_superseded = "true";
  const page = await call(sessionPath(current.id, "/messages", params));
  const older = page.data.reverse();
  current.total = info.messages + (current.superseded ? info.superseded : 0);
  current.rows = fresh ? older : [...older, ...current.rows];
  if (fresh) $("timeline").replaceChildren(...older.map(messageItem));
  else $("timeline").prepend(...older.map(messageItem));
  const left = current.total - current.rows.length;
  $("load-earlier").hidden = left <= 0;
  $("load-earlier").textContent = `Load ${Math.min(PAGE, left)} earlier messages (${number(left)} more)`;
}

export async function loadEarlier() {
  const first = $("timeline").firstElementChild;
  await loadPage(current.info);
  if (first) first.scrollIntoView({ block: "start" });
}

export async function toggleSuperseded() {
  current.superseded = $("show-superseded").checked;
  await loadPage(current.info, true);
}

function messageItem(m) {
  const speaker = m.name ? `${m.name} (${m.role})` : m.role;
  return h("li", { class: `msg role-${m.role}${m.superseded ? " superseded" : ""}`, "data-id": m.id,
                   "data-position": m.position, "data-emotion": m.emotion || "" },
    h("div", { class: "meta" },
      h("strong", { class: "speaker", text: speaker }),
      h("time", { datetime: new Date(m.created_at * 1000).toISOString(), text: time(m.created_at) }),
      m.emotion ? emotionChip(m.emotion, m.emotion_confidence) : h("span", { class: "muted", text: "not scored yet" }),
      importanceBar(m.importance),
      h("span", { class: "tier", text: m.tier || "" }),
      m.superseded ? h("span", { class: "badge", text: "superseded" }) : null),
    h("p", { class: "content", text: m.content }));
}

function emotionChip(emotion, confidence) {
  const said = confidence ? `${emotion}, ${Math.round(confidence * 100)}% sure` : emotion;
  return h("span", { class: "emotion", "aria-label": `emotion: ${said}`, title: said },
    h("span", { class: "swatch", style: { background: EMOTION_COLOURS[emotion] || "#999" } }), emotion);
}

function importanceBar(importance) {
  if (importance === null || importance === undefined) return null;
  const pct = Math.round(importance * 100);
  return h("span", { class: "importance", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
                     "aria-valuenow": pct, "aria-label": `importance ${pct}%`, title: `importance ${pct}%` },
    h("span", { style: { width: `${pct}%` } }));
}

async function showSummaries() {
  const found = await call(sessionPath(current.id, "/summaries", ownerParams()));
  $("summaries").replaceChildren(...found.data.map((x) => h("li", {},
    h("strong", { text: `messages ${x.start_position}–${x.end_position}` }),
    x.level ? ` (level ${x.level})` : "", ": ", x.text)));
  if (!found.data.length) $("summaries").append(h("li", { class: "muted", text: "No summaries yet." }));
}

async function showEmotions() {
  const found = await call(sessionPath(current.id, "/emotions", ownerParams()));
  $("emotion-chart").replaceChildren(found.trajectory.length ? emotionStrip(found.trajectory)
    : h("p", { class: "muted", text: "No scored user messages yet." }));
  $("emotion-legend").replaceChildren(...Object.entries(found.shares).map(([emotion, share]) => h("li", {},
    h("span", { class: "swatch", style: { background: EMOTION_COLOURS[emotion] || "#999" } }),
    `${emotion} ${Math.round(share * 100)}%`)));
}

export async function showPersona() {
  const persona = await call(sessionPath(current.id, "/persona", ownerParams()));
  $("persona-text").value = persona.persona || "";
  const chunks = await call(sessionPath(current.id, "/persona/chunks", ownerParams()));
  $("chunks-title").textContent = `Stored chunks of earlier system prompts (${chunks.data.length})`;
  $("persona-chunks").replaceChildren(...chunks.data.map((c) => h("li", {},
    h("span", { class: "muted", text: `${c.tokens} tokens, ${time(c.created_at)}: ` }), c.text)));
}

export async function savePersona() {
  await call(sessionPath(current.id, "/persona", ownerParams()), { method: "PUT",
                                                                     body: { persona: $("persona-text").value } });
  await showPersona();
}

export async function exportConversation() {
  const data = await call(sessionPath(current.id, "/export", ownerParams()));
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  const link = h("a", { href: url, download: `${current.id}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function deleteConversation() {
  await call(sessionPath(current.id, "", ownerParams()), { method: "DELETE" });
}
