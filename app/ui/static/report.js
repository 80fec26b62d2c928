// The report: latency over time per model and per stage, ranked suggestions, errors, and the
// live request rate read from /metrics.

import { call, query } from "./api.js";
import { lineChart, sparkline } from "./charts.js";
import { $, h, number, time } from "./dom.js";

const QUANTILES = ["p50", "p95", "p99"];
const rate = { timer: null, last: null, samples: [] };

export async function showReport() {
  const days = Number($("report-days").value) || 7;
  const report = await call("/v1/report" + query({ days }));
  const now = report.current;
  $("report-summary").textContent = `${number(now.requests)} requests in ${days} days, ` +
    `${(100 * now.error_rate).toFixed(1)}% errors; whole request p95 ${ms(now.total_ms.p95)}, ` +
    `time to first token p95 ${ms(now.ttft_ms.p95)}.`;
  $("chart-models").replaceChildren(lineChart(series(report.timeline, "models"), "Whole request latency by model"));
  $("chart-stages").replaceChildren(lineChart(series(report.timeline, "stages"), "Latency per stage"));
  $("suggestions").replaceChildren(...report.suggestions.map((x) => h("li", { class: `severity-${x.severity}` },
    h("strong", { text: `${x.severity}: ${x.title}` }), h("p", { text: x.advice }),
    h("p", { class: "muted", text: JSON.stringify(x.evidence) }))));
  if (!report.suggestions.length) $("suggestions").append(h("li", { class: "muted", text: "Nothing to suggest." }));
  $("errors").tBodies[0].replaceChildren(...now.top_errors.map((e) => h("tr", {},
    h("td", { text: e.provider || "–" }), h("td", { text: e.status }), h("td", { text: e.code || "–" }),
    h("td", { text: e.message || "" }), h("td", { text: `${e.count} (last ${time(e.last_seen)})` }))));
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}

// [{name, quantile, points}] from the timeline's spans, for `key` "models" or "stages".
function series(timeline, key) {
  const lines = new Map();
  for (const span of timeline) {
    for (const [name, lat] of Object.entries(span[key])) {
      for (const q of QUANTILES) {
        if (lat[q] === null || lat[q] === undefined) continue;
        const id = `${name}|${q}`;
        if (!lines.has(id)) lines.set(id, { name, quantile: q, points: [] });
        lines.get(id).points.push([span.start, lat[q]]);
      }
    }
  }
  return [...lines.values()];
}

// The sum of a counter's samples in Prometheus' text format.
export function counterTotal(text, name) {
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name + "{") || line.startsWith(name + " ")) total += Number(line.split(" ").pop()) || 0;
  }
  return total;
}

async function sampleRate() {
  const text = await call("/metrics", { text: true });
  const sample = { t: performance.now() / 1000, n: counterTotal(text, "proxy_requests_total") };
  if (rate.last) {
    const perMinute = (60 * (sample.n - rate.last.n)) / Math.max(sample.t - rate.last.t, 0.001);
    rate.samples = [...rate.samples.slice(-59), perMinute];
    $("live-rate").textContent = `${perMinute.toFixed(1)} requests a minute`;
    $("rate-chart").replaceChildren(sparkline(rate.samples, "Requests a minute, last samples"));
  } else {
    $("live-rate").textContent = `${number(sample.n)} requests so far; measuring…`;
  }
  rate.last = sample;
}

export function startRate(onError, every = 5000) {
  stopRate();
  const tick = () => sampleRate().catch((err) => { stopRate(); $("live-rate").textContent = err.message; onError(err, true); });
  tick();
  rate.timer = setInterval(tick, every);
}

export function stopRate() {
  clearInterval(rate.timer);
  rate.timer = null;
  rate.last = null;
}
