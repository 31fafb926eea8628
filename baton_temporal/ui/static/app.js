// baton cost page. Every value from the server is put in the page as text
// (textContent / SVG text nodes), never as HTML: step names, models and errors come
// from users' flow files.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2b6fd6", "#d1435b", "#2f9e61", "#c98a12", "#7b4bd1", "#1a9fb0", "#8a5a2b", "#d15fa8"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "href") node.setAttribute("href", value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function money(value) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  return "$" + (n < 0.01 && n > 0 ? n.toFixed(6) : n.toFixed(4));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return seconds.toFixed(1) + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m " + Math.round(seconds % 60) + "s";
  return (seconds / 3600).toFixed(1) + "h";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function cut(text, n) {
  text = String(text ?? "");
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function badge(state) {
  return el("span", { class: "badge " + String(state).replace(/[^A-Za-z_]/g, "") }, String(state).toLowerCase());
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function flowLink(id) {
  return "/flow?id=" + encodeURIComponent(id);
}

// ------------------------------------------------------------------------ list page

async function showList(main) {
  main.replaceChildren(
    el("h1", {}, "Flows"),
    el("h2", {}, "Cost by model over time"),
    el("div", { class: "card", id: "chart-card" },
      el("div", { class: "ranges", id: "ranges" }),
      el("div", { id: "chart" }, el("p", { class: "muted" }, "loading…"))),
    el("h2", {}, "Latest flows"),
    el("div", { class: "card", id: "flows-card" }, el("p", { class: "muted" }, "loading…")),
  );
  const ranges = document.getElementById("ranges");
  for (const range of ["1h", "24h", "7d", "30d"]) {
    const button = el("button", { type: "button", "data-range": range }, range);
    button.addEventListener("click", () => loadChart(range));
    ranges.append(button);
  }
  loadChart("24h");
  try {
    const data = await getJSON("/api/flows");
    document.getElementById("flows-card").replaceChildren(flowsTable(data.flows));
  } catch (err) {
    document.getElementById("flows-card").replaceChildren(el("p", { class: "note" }, "cannot list flows: " + err.message));
  }
}

function flowsTable(flows) {
  if (!flows.length) return el("p", { class: "muted" }, "No workflows yet. Start one: baton start flow.json");
  const head = el("tr", {}, el("th", {}, "workflow"), el("th", {}, "type"), el("th", {}, "status"),
    el("th", {}, "started"), el("th", { class: "num" }, "duration"), el("th", { class: "num" }, "LLM calls"),
    el("th", { class: "num" }, "cost"));
  const rows = flows.map((f) => el("tr", { "data-workflow-id": f.workflow_id },
    el("td", {}, el("a", { href: flowLink(f.workflow_id) }, cut(f.workflow_id, 60))),
    el("td", {}, cut(f.type, 40)),
    el("td", {}, badge(f.status)),
    el("td", {}, when(f.started_at)),
    el("td", { class: "num" }, duration(f.duration_s)),
    el("td", { class: "num" }, f.calls),
    el("td", { class: "num cost" }, money(f.cost_usd) + (f.unpriced_calls ? " + unpriced" : "")),
  ));
  return el("table", { id: "flows" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

async function loadChart(range) {
  for (const b of document.querySelectorAll("#ranges button")) b.classList.toggle("on", b.dataset.range === range);
  const box = document.getElementById("chart");
  try {
    const data = await getJSON("/api/costs?since=" + encodeURIComponent(range));
    box.replaceChildren(costChart(data));
  } catch (err) {
    box.replaceChildren(el("p", { class: "note" }, "no cost data: " + err.message));
  }
}

function costChart(data) {
  const start = Date.parse(data.start), end = Date.parse(data.end), bucket = data.bucket_s * 1000;
  const n = Math.max(1, Math.round((end - start) / bucket));
  const models = [...new Set(data.points.map((p) => p.model))].sort();
  const stacks = Array.from({ length: n }, () => ({}));
  for (const p of data.points) {
    const i = Math.min(n - 1, Math.max(0, Math.floor((Date.parse(p.start) - start) / bucket)));
    stacks[i][p.model] = (stacks[i][p.model] || 0) + Number(p.cost_usd || 0);
  }
  const totals = stacks.map((s) => Object.values(s).reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0);
  const W = 900, H = 220, left = 70, bottom = 24, top = 10;
  const plotH = H - bottom - top, barW = (W - left - 10) / n;
  const chart = svg("svg", { id: "cost-chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
  chart.append(svg("title", {}, "cost by model over time"));
  chart.append(svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom }));
  for (const frac of [0, 0.5, 1]) {
    const y = H - bottom - frac * plotH;
    chart.append(svg("text", { class: "tick", x: left - 6, y: y + 4, "text-anchor": "end" }, money(max * frac)));
    chart.append(svg("line", { class: "axis", x1: left, y1: y, x2: W - 10, y2: y, "stroke-dasharray": "2 4" }));
  }
  stacks.forEach((stack, i) => {
    let y = H - bottom;
    models.forEach((model, m) => {
      const value = stack[model] || 0;
      if (!value || !max) return;
      const h = Math.max(1, (value / max) * plotH);
      y -= h;
      const bar = svg("rect", { class: "bar", x: left + i * barW + 1, y, width: Math.max(1, barW - 2), height: h,
        fill: PALETTE[m % PALETTE.length], "data-model": model });
      bar.append(svg("title", {}, `${model}: ${money(value)}`));
      chart.append(bar);
    });
  });
  const ticks = [[start, left, "start"], [(start + end) / 2, left + (W - 10 - left) / 2, "middle"], [end, W - 10, "end"]];
  for (const [t, x, anchor] of ticks) {
    chart.append(svg("text", { class: "tick", x, y: H - 6, "text-anchor": anchor },
      new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })));
  }
  const legend = el("div", { class: "legend" }, ...models.map((m, i) =>
    el("span", {}, el("i", {}), m)));
  legend.querySelectorAll("i").forEach((i, k) => { i.style.background = PALETTE[k % PALETTE.length]; });
  if (!models.length) legend.append(el("span", { class: "muted" }, "no LLM calls in this period"));
  return el("div", {}, chart, legend);
}

// ------------------------------------------------------------------------ flow page

function showFlow(main, id) {
  main.replaceChildren(el("p", { class: "muted" }, "loading…"));
  const live = document.getElementById("live");
  const source = new EventSource("/api/flow/events?id=" + encodeURIComponent(id));
  source.addEventListener("flow", (event) => {
    live.hidden = false;
    renderFlow(main, JSON.parse(event.data));
  });
  source.addEventListener("end", () => { source.close(); live.hidden = true; });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) live.hidden = true;
  });
}

function renderFlow(main, flow) {
  document.title = "baton · " + cut(flow.workflow_id, 40);
  if (flow.error) {
    main.replaceChildren(el("h1", {}, flow.workflow_id), el("p", { class: "note" }, flow.error));
    return;
  }
  const tokens = flow.steps.reduce((a, s) => a + s.input_tokens + s.output_tokens + s.cache_tokens, 0);
  const summary = el("div", { class: "summary" },
    el("div", {}, el("b", { id: "flow-status" }, badge(flow.status)), el("span", {}, "status")),
    el("div", {}, el("b", {}, duration(flow.duration_s)), el("span", {}, "duration")),
    el("div", {}, el("b", { id: "flow-cost" }, money(flow.cost_usd)), el("span", {}, "cost")),
    el("div", {}, el("b", {}, flow.calls), el("span", {}, "LLM calls")),
    el("div", {}, el("b", {}, tokens.toLocaleString()), el("span", {}, "tokens")),
  );
  const parts = [
    el("p", {}, el("a", { href: "/" }, "← all flows")),
    el("h1", { id: "flow-id" }, flow.workflow_id),
    el("div", { class: "muted" }, `${flow.name} · ${flow.type} · task queue ${flow.task_queue} · started ${when(flow.started_at)}`),
    summary,
    flow.note ? el("p", { class: "note" }, flow.note) : null,
    el("h2", {}, "Steps"),
    el("div", { class: "card" }, dag(flow)),
    el("div", { class: "card gap" }, stepsTable(flow)),
  ];
  main.replaceChildren(...parts.filter((part) => part !== null));
}

const NODE_W = 200, NODE_H = 58, GAP_X = 64, GAP_Y = 14, MAX_DRAWN = 300;

function dag(flow) {
  if (flow.steps.length > MAX_DRAWN) return el("p", { class: "muted" }, `${flow.steps.length} steps: too many to draw; see the table.`);
  const columns = [];
  for (const s of flow.steps) (columns[s.level] ||= []).push(s);
  const pos = {};
  let height = 0;
  columns.forEach((column, c) => (column || []).forEach((s, r) => {
    pos[s.name] = { x: 10 + c * (NODE_W + GAP_X), y: 10 + r * (NODE_H + GAP_Y) };
    height = Math.max(height, pos[s.name].y + NODE_H + 10);
  }));
  const width = 20 + columns.length * (NODE_W + GAP_X) - GAP_X;
  const graph = svg("svg", { id: "dag", viewBox: `0 0 ${width} ${height}`, width, height });
  for (const [from, to] of flow.edges) {
    const a = pos[from], b = pos[to];
    if (!a || !b) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mid = (x1 + x2) / 2;
    graph.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }
  for (const s of flow.steps) {
    const p = pos[s.name];
    const node = svg("g", { class: "node " + String(s.state).replace(/[^a-z]/g, ""), transform: `translate(${p.x},${p.y})`, "data-step": s.name });
    node.append(svg("title", {}, `${s.name} (${s.step}): ${s.state}`));
    node.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 7 }));
    node.append(svg("text", { class: "title", x: 10, y: 19 }, cut(s.name, 24)));
    node.append(svg("text", { class: "meta", x: 10, y: 35 }, cut(s.model || "no model", 30)));
    const tokens = (s.input_tokens + s.output_tokens + s.cache_tokens).toLocaleString();
    const attempt = s.attempt > 1 ? ` · try ${s.attempt}` : "";
    node.append(svg("text", { class: "meta", x: 10, y: 50 }, cut(`${s.state}${attempt} · ${money(s.cost_usd)} · ${tokens} tok`, 34)));
    graph.append(node);
  }
  return graph;
}

function stepsTable(flow) {
  const head = el("tr", {}, ...["step", "state", "model", "attempts", "in", "out", "cache", "cost", "took", "error"].map(
    (h, i) => el("th", { class: i >= 3 && i <= 8 ? "num" : "" }, h)));
  const rows = flow.steps.map((s) => {
    const took = s.started_at && s.ended_at ? (Date.parse(s.ended_at) - Date.parse(s.started_at)) / 1000 : null;
    return el("tr", { "data-step": s.name, "data-state": s.state },
      el("td", { class: "name" }, cut(s.name, 48), s.step !== s.name ? el("span", { class: "muted" }, ` (${cut(s.step, 48)})`) : null),
      el("td", { class: "state" }, badge(s.state)),
      el("td", { class: "model" }, s.model || "—"),
      el("td", { class: "num attempts" }, s.attempt || "—"),
      el("td", { class: "num" }, s.input_tokens.toLocaleString()),
      el("td", { class: "num" }, s.output_tokens.toLocaleString()),
      el("td", { class: "num" }, s.cache_tokens.toLocaleString()),
      el("td", { class: "num cost" }, money(s.cost_usd) + (s.unpriced_calls ? " + unpriced" : "")),
      el("td", { class: "num" }, took === null ? "—" : duration(took)),
      el("td", { class: "err" }, cut(s.retrying ? "retrying: " + s.retrying : s.error || "", 300)),
    );
  });
  return el("table", { id: "steps" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

// ------------------------------------------------------------------------------ main

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("main");
  if (location.pathname === "/flow") {
    const id = new URLSearchParams(location.search).get("id");
    if (id) showFlow(main, id);
    else main.replaceChildren(el("p", { class: "note" }, "no workflow id: open /flow?id=WORKFLOW_ID"));
  } else {
    showList(main);
  }
});
