// The inspector's entry: the key, the pages (by the address's #fragment), confirmations, errors.

import { key } from "./api.js";
import { $ } from "./dom.js";
import { setupSessions, showSessions } from "./sessions.js";
import {
  current, deleteConversation, exportConversation, loadEarlier, openConversation, savePersona, toggleSuperseded,
} from "./conversation.js";
import { searchMemory, showPreview } from "./preview.js";
import { showReport, startRate, stopRate } from "./report.js";

const PAGES = ["page-conversations", "page-conversation", "page-report"];
let notice = "";  // said once the next page is shown

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

function failed(err, keepPage = false) {
  if (err.status === 401) {
    showPage(null);
    say("That key was refused: enter a key from API_KEYS or ADMIN_API_KEYS.", "error");
  } else if (err.status === 403 && err.code === "admin_key_required") {
    say("The report needs an admin key (ADMIN_API_KEYS).", "error");
  } else {
    if (!keepPage && err.status === 404 && current.id) showPage(null);
    say(err.message, "error");
  }
}

function showPage(id) {
  for (const page of PAGES) $(page).hidden = page !== id;
  for (const [link, page] of [["nav-conversations", "page-conversations"], ["nav-report", "page-report"]]) {
    if (page === id) $(link).setAttribute("aria-current", "page"); else $(link).removeAttribute("aria-current");
  }
  if (id !== "page-report") stopRate();
}

// Each call to route() gets a number; a slower earlier one that finishes after a later
// one must not show its page over the later one's (or stop the report's live rate).
let routes = 0;

async function route() {
  const mine = ++routes;
  const stale = () => mine !== routes;
  performance.mark("route");  // with "timeline-rendered": how long a conversation takes to open
  say(notice);
  notice = "";
  const hash = location.hash.replace(/^#/, "") || "/";
  try {
    if (hash.startsWith("/c/")) {
      const [path, params] = hash.slice(3).split("?");
      showPage("page-conversation");  // the timeline shows as soon as it is drawn; the rest follows
      await openConversation(decodeURIComponent(path), new URLSearchParams(params || "").get("owner"));
      if (stale()) return;
      document.title = `${current.id} · Memory inspector`;
    } else if (hash === "/report") {
      await showReport();
      if (stale()) return;
      showPage("page-report");
      startRate(failed);
      document.title = "Report · Memory inspector";
    } else {
      await showSessions();
      if (stale()) return;
      showPage("page-conversations");
      document.title = "Memory inspector";
    }
  } catch (err) {
    if (!stale()) failed(err);
  }
}

export function confirmAction(text, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"),
                                                          { once: true }));
}

function on(id, event, action) {
  $(id).addEventListener(event, async (e) => {
    if (event === "submit") e.preventDefault();
    try {
      await action(e);
    } catch (err) {
      failed(err, true);
    }
  });
}

function setup() {
  $("key").value = key.get();
  on("key-form", "submit", () => { key.set($("key").value.trim()); return route(); });
  on("forget-key", "click", () => { key.clear(); $("key").value = ""; showPage(null); say("The key is forgotten."); });
  setupSessions(failed);
  on("show-superseded", "change", toggleSuperseded);
  on("load-earlier", "click", loadEarlier);
  on("preview-form", "submit", showPreview);
  on("memory-search", "submit", searchMemory);
  on("report-form", "submit", showReport);
  on("persona-form", "submit", async () => {
    if (!(await confirmAction(`Replace the persona of “${current.id}”?`, "Save persona"))) return;
    await savePersona();
    say("Persona saved: the next request without a system prompt uses it.");
  });
  on("export", "click", async () => {
    if (!(await confirmAction(`Download everything stored for “${current.id}” as JSON?`, "Export"))) return;
    await exportConversation();
    say("Exported.");
  });
  on("delete", "click", async () => {
    const id = current.id;
    if (!(await confirmAction(`Delete “${id}” and everything remembered in it? This cannot be undone.`, "Delete")))
      return;
    await deleteConversation();
    notice = `Deleted “${id}”.`;
    location.hash = "#/";
  });
  window.addEventListener("hashchange", route);
  route();
}

setup();
