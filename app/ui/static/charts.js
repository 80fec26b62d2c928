// Hand-drawn charts: the budget as one stacked bar, the emotion strip, latency lines.

import { h, s } from "./dom.js";

export const EMOTION_COLOURS = {
  anger: "#c62828", disgust: "#6a8a1f", fear: "#6a1b9a", joy: "#e0a400",
  neutral: "#78909c", sadness: "#1565c0", surprise: "#ef6c00",
};

export const PART_LABELS = {
  persona: "Persona", memories: "Memories", summaries: "Summaries", earlier: "Earlier turns",
  recent: "Recent turns", reply_reserve: "Reply reserve", free: "Unused",
};
const PART_COLOURS = {
  persona: "#7b1fa2", memories: "#00897b", summaries: "#5c6bc0", earlier: "#8d6e63",
  recent: "#1e88e5", reply_reserve: "#f9a825", free: "#e0e0e0",
};

// One bar, a segment per part sized by its tokens; each segment says its tokens on hover and focus.
export function budgetBar(parts) {
  const entries = Object.entries(parts).filter(([, n]) => n > 0);
  const total = entries.reduce((sum, [, n]) => sum + n, 0) || 1;
  const said = entries.map(([k, n]) => `${PART_LABELS[k] || k} ${n} tokens`).join(", ");
  const bar = h("div", { class: "budget-bar", role: "img", "aria-label": `Context budget: ${said}` },
    entries.map(([k, n]) => h("span", {
      class: `seg seg-${k}`, title: `${PART_LABELS[k] || k}: ${n} tokens`, "data-part": k, "data-tokens": n,
      style: { flexGrow: String(n), background: PART_COLOURS[k] || "#999", minWidth: "2px" },
    })));
  const legend = h("ul", { class: "legend" }, entries.map(([k, n]) => h("li", {},
    h("span", { class: "swatch", style: { background: PART_COLOURS[k] || "#999" } }),
    `${PART_LABELS[k] || k}: ${n} (${Math.round((100 * n) / total)}%)`)));
  return h("div", { class: "budget" }, bar, legend);
}

// The user's emotions in order: a bar per message (height: intensity), coloured by emotion.
export function emotionStrip(points, most = 400) {
  const step = Math.max(1, Math.ceil(points.length / most));
  const shown = points.filter((_, i) => i % step === 0);
  const width = Math.max(shown.length, 1);
  return s("svg", { viewBox: `0 0 ${width} 100`, preserveAspectRatio: "none", class: "strip", role: "img",
                    "aria-label": `Emotion of ${points.length} user messages, oldest on the left` },
    shown.map((p, i) => {
      const height = Math.max(6, Math.round(100 * (p.intensity ?? p.confidence ?? 0.5)));
      return s("rect", { x: i, y: 100 - height, width: 0.9, height, fill: EMOTION_COLOURS[p.emotion] || "#999" },
        s("title", { text: `${p.emotion} (message ${p.position})` }));
    }));
}

const LINE_COLOURS = ["#1e88e5", "#e53935", "#43a047", "#8e24aa", "#fb8c00", "#00acc1", "#6d4c41", "#3949ab"];
const DASH = { p50: "", p95: "6 3", p99: "2 3" };

// Lines over time: series = [{name, quantile, points: [[t, ms], ...]}], one colour per name.
export function lineChart(series, label) {
  const W = 600, H = 200, PAD = 36;
  const all = series.flatMap((x) => x.points);
  if (!all.length) return h("p", { class: "muted", text: "No requests in this period." });
  const [t0, t1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const top = Math.max(...all.map((p) => p[1]), 1);
  const x = (t) => PAD + ((t - t0) / ((t1 - t0) || 1)) * (W - 2 * PAD);
  const y = (v) => H - PAD + 10 - (v / top) * (H - PAD - 10);
  const names = [...new Set(series.map((x) => x.name))];
  const colour = (name) => LINE_COLOURS[names.indexOf(name) % LINE_COLOURS.length];
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "lines", role: "img", "aria-label": label },
    s("line", { x1: PAD, y1: H - PAD + 10, x2: W - PAD, y2: H - PAD + 10, stroke: "#999" }),
    s("text", { x: 2, y: 14, class: "axis", text: `${Math.round(top)} ms` }),
    s("text", { x: PAD, y: H - 4, class: "axis", text: new Date(t0 * 1000).toLocaleString() }),
    s("text", { x: W - PAD, y: H - 4, class: "axis", "text-anchor": "end", text: new Date(t1 * 1000).toLocaleString() }),
    series.map((line) => s("polyline", {
      points: line.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "), fill: "none",
      stroke: colour(line.name), "stroke-width": 2, "stroke-dasharray": DASH[line.quantile] || "",
    }, s("title", { text: `${line.name} ${line.quantile}` }))),
    series.flatMap((line) => line.points.map(([t, v]) => s("circle", { cx: x(t), cy: y(v), r: 3, fill: colour(line.name) },
      s("title", { text: `${line.name} ${line.quantile}: ${v.toFixed(1)} ms` })))));
  const legend = h("ul", { class: "legend" }, names.map((name) => h("li", {},
    h("span", { class: "swatch", style: { background: colour(name) } }), name)),
    h("li", { class: "muted", text: "solid p50, dashed p95, dotted p99" }));
  return h("div", {}, svg, legend);
}

// A small sparkline of recent values.
export function sparkline(values, label) {
  const W = 200, H = 40, top = Math.max(...values, 1);
  const pts = values.map((v, i) => `${(i * W) / Math.max(values.length - 1, 1)},${H - (v / top) * (H - 4) - 2}`);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img", "aria-label": label },
    s("polyline", { points: pts.join(" "), fill: "none", stroke: "#1e88e5", "stroke-width": 2 }));
}
