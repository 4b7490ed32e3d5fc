// medpredict clinician page: no external assets, no storage of keys or patient data.
"use strict";

const state = { key: null, models: [], model: null, values: null, risk: null, timer: null };
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

async function api(path, options = {}) {
  const headers = { "X-API-Key": state.key, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const error = new Error(describeError(response.status, body));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function describeError(status, body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${e.loc.slice(3).join(".") || "request"}: ${e.msg}`).join("\n");
  }
  if (body && typeof body.detail === "string") return `${status}: ${body.detail}`;
  return `request failed (${status})`;
}

const pct = (p) => `${(100 * p).toFixed(p < 0.1 ? 1 : 0)}%`;
const fmt = (v) => (typeof v === "number" ? Number(v.toPrecision(4)).toString() : String(v));

// ---- connection and model choice -------------------------------------------------
$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  $("status").textContent = "connecting…";
  try {
    state.models = await api("/v1/schemas");
  } catch (error) {
    $("status").textContent = error.status === 401 ? "key not accepted" : error.message;
    return;
  }
  $("status").textContent = "connected";
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.name }, `${m.name} ${m.version}`)));
  $("workspace").hidden = false;
  chooseModel(state.models[0].name);
});

$("model").addEventListener("change", (event) => chooseModel(event.target.value));

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name);
  $("intended-use").textContent = state.model.intended_use || "";
  const fields = $("fields");
  fields.replaceChildren();
  for (const f of state.model.features) fields.append(fieldFor(f));
  $("result").hidden = true;
  $("whatif").hidden = true;
}

function fieldFor(feature) {
  const label = el("label", {}, feature.name);
  let input;
  if (feature.kind === "categorical" && feature.categories.length) {
    input = el("select", { name: feature.name, id: `field-${feature.name}` });
    input.append(el("option", { value: "" }, "—"));
    for (const c of feature.categories) input.append(el("option", { value: String(c) }, String(c)));
  } else if (feature.kind === "boolean") {
    input = el("select", { name: feature.name, id: `field-${feature.name}` });
    for (const [v, t] of [["", "—"], ["true", "yes"], ["false", "no"]]) input.append(el("option", { value: v }, t));
  } else if (feature.kind === "numeric") {
    input = el("input", { name: feature.name, id: `field-${feature.name}`, type: "number", step: "any", inputmode: "decimal" });
  } else {
    input = el("input", { name: feature.name, id: `field-${feature.name}`, type: "text" });
  }
  label.append(input);
  if (feature.kind === "numeric" && feature.min !== null && feature.min !== undefined) {
    label.append(el("span", { class: "hint" }, `training range ${fmt(feature.min)}–${fmt(feature.max)}`));
  }
  return label;
}

// ---- reading the form and pasted values ------------------------------------------
function readForm() {
  const row = {};
  for (const f of state.model.features) {
    const raw = $(`field-${f.name}`).value.trim();
    if (raw === "") row[f.name] = null;
    else if (f.kind === "numeric") row[f.name] = Number(raw);
    else if (f.kind === "boolean") row[f.name] = raw === "true";
    else row[f.name] = raw;
  }
  return row;
}

function parsePaste(text) {
  text = text.trim();
  if (!text) return {};
  if (text.startsWith("{")) return JSON.parse(text);
  const lines = text.split(/\r?\n/).filter((l) => l.trim());
  if (lines.length === 2 && lines[0].includes(",") && !lines[0].includes("=")) {
    const names = lines[0].split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    const values = lines[1].split(",").map((s) => s.trim().replace(/^"|"$/g, ""));
    return Object.fromEntries(names.map((n, i) => [n, values[i]]));
  }
  const out = {};
  for (const part of lines.flatMap((l) => l.split(/[;,]/))) {
    const match = part.match(/^\s*([^=:]+?)\s*[=:]\s*(.*?)\s*$/);
    if (match) out[match[1]] = match[2];
  }
  return out;
}

$("fill").addEventListener("click", () => {
  let values;
  try {
    values = parsePaste($("paste").value);
  } catch (error) {
    $("form-error").textContent = `could not read the pasted values: ${error.message}`;
    return;
  }
  const unknown = [];
  for (const [name, value] of Object.entries(values)) {
    const input = $(`field-${name}`);
    if (!input) { unknown.push(name); continue; }
    input.value = value === null ? "" : String(value);
  }
  $("form-error").textContent = unknown.length ? `not used by this model: ${unknown.join(", ")}` : "";
});

// ---- prediction ------------------------------------------------------------------
async function predictRow(row, purpose) {
  const body = JSON.stringify({ rows: [row], purpose });
  const answer = await api(`/v1/models/${encodeURIComponent(state.model.name)}/predict`, { method: "POST", body });
  return { model: answer.model, prediction: answer.predictions[0] };
}

$("patient").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("form-error").textContent = "";
  for (const node of document.querySelectorAll(".bad")) node.classList.remove("bad");
  const row = readForm();
  try {
    const { model, prediction } = await predictRow(row, "care");
    state.values = row;
    state.risk = prediction.risk;
    showResult(model, prediction);
    buildWhatIf(row);
  } catch (error) {
    $("form-error").textContent = error.message;
    for (const e of (error.body && Array.isArray(error.body.detail) ? error.body.detail : [])) {
      const input = $(`field-${e.loc[4]}`);
      if (input) input.classList.add("bad");
    }
  }
});

function showResult(model, p) {
  $("result").hidden = false;
  $("risk-value").textContent = p.risk === null ? p.prediction : pct(p.risk);
  const band = p.risk_band ? p.risk_band.label : "";
  $("risk-band").textContent = band;
  $("risk-band").className = `band ${band.replace(/\s+/g, "-")}`;
  $("risk-scale").replaceChildren(scale(p));
  $("uncertainty").textContent = uncertaintyText(p);
  $("warnings").replaceChildren(...p.warnings.map((w) => el("li", {}, w)));
  $("factors").replaceChildren(p.top_factors ? factorChart(p.top_factors) : el("p", { class: "muted" }, "Explanations are not available for this model."));
  $("factor-note").textContent = p.top_factors && p.top_factors.length
    ? `Bars: contribution to the ${p.top_factors[0].space} of the risk; red raises it, blue lowers it.` : "";
  const auc = state.model.auroc;
  const ci = auc && auc.high > auc.low ? ` (95% CI ${auc.low.toFixed(2)}–${auc.high.toFixed(2)})` : "";
  const aucText = auc ? ` · cross-validated AUROC ${auc.value.toFixed(2)}${ci}` : "";
  $("model-line").textContent = `Model ${model.name} ${model.version} · sha256 ${model.sha256.slice(0, 12)}…${aucText}`;
}

function uncertaintyText(p) {
  if (p.conformal_set === null || p.conformal_set === undefined) {
    return "Uncertainty: no conformal prediction set is available for this model.";
  }
  const set = `{${p.conformal_set.join(", ")}}`;
  if (p.conformal_set.length === 1) return `Conformal prediction set ${set}: the model is confident in this outcome.`;
  if (p.conformal_set.length === 0) return `Conformal prediction set ${set}: this patient is unlike the calibration data.`;
  return `Conformal prediction set ${set}: the model cannot rule out any of these outcomes.`;
}

function scale(p) {
  const root = svg("svg", { viewBox: "0 0 300 34", role: "img", "aria-label": "risk on a 0 to 100% scale" });
  root.append(svg("rect", { x: 0, y: 10, width: 300, height: 10, rx: 5, fill: "#e8edf3" }));
  for (const band of state.model.bands) {
    if (band.lower > 0) {
      root.append(svg("line", { x1: 300 * band.lower, x2: 300 * band.lower, y1: 6, y2: 24, stroke: "#8a96a3" }));
      root.append(svg("text", { x: 300 * band.lower, y: 33, "font-size": 8, fill: "#5b6877", "text-anchor": "middle" }, pct(band.lower)));
    }
  }
  if (p.risk !== null) {
    root.append(svg("circle", { cx: Math.max(6, Math.min(294, 300 * p.risk)), cy: 15, r: 6, fill: "#1d2733" }));
  }
  root.append(svg("text", { x: 0, y: 33, "font-size": 9, fill: "#5b6877" }, "0%"));
  root.append(svg("text", { x: 300, y: 33, "font-size": 9, fill: "#5b6877", "text-anchor": "end" }, "100%"));
  return root;
}

function factorChart(factors) {
  const rowHeight = 24, labelWidth = 130, width = 420, half = (width - labelWidth) / 2;
  const height = rowHeight * factors.length + 6;
  const max = Math.max(...factors.map((f) => Math.abs(f.contribution)), 1e-9);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "top factors" });
  const zero = labelWidth + half;
  root.append(svg("line", { x1: zero, x2: zero, y1: 0, y2: height, stroke: "#8a96a3" }));
  factors.forEach((f, i) => {
    const y = i * rowHeight + 4;
    const length = (Math.abs(f.contribution) / max) * (half - 40);
    const raises = f.contribution > 0;
    root.append(svg("text", { x: 0, y: y + 14, "font-size": 11, fill: "#1d2733" }, `${f.feature} = ${f.value === null ? "missing" : fmt(f.value)}`));
    root.append(svg("rect", {
      class: "factor-bar", x: raises ? zero : zero - length, y, width: Math.max(length, 1), height: rowHeight - 8,
      fill: raises ? "#b8322a" : "#2a6fb8",
    }));
    root.append(svg("text", {
      x: raises ? zero + length + 3 : zero - length - 3, y: y + 12, "font-size": 9, fill: "#5b6877",
      "text-anchor": raises ? "start" : "end",
    }, `${raises ? "+" : "−"}${Math.abs(f.contribution).toFixed(2)}`));
  });
  return root;
}

// ---- what-if ---------------------------------------------------------------------
function buildWhatIf(row) {
  const modifiable = state.model.modifiable || state.model.features.filter((f) => f.kind === "numeric").map((f) => f.name);
  const controls = $("whatif-controls");
  controls.replaceChildren();
  for (const name of modifiable) {
    const f = state.model.features.find((x) => x.name === name);
    if (!f || f.min === null || f.min === undefined || row[name] === null) continue;
    const low = Math.min(f.min, row[name]), high = Math.max(f.max, row[name]);
    const step = Number.isInteger(f.min) && Number.isInteger(f.max) && high - low > 20 ? 1 : Number(((high - low) / 100).toPrecision(2));
    const wrap = el("div", { class: "whatif-row" });
    const range = el("input", { type: "range", id: `whatif-${name}`, name, min: low, max: high, step, value: row[name], "aria-label": `what-if ${name}` });
    const shown = el("output", { for: `whatif-${name}` }, fmt(row[name]));
    range.addEventListener("input", () => { shown.textContent = fmt(Number(range.value)); scheduleWhatIf(); });
    wrap.append(el("label", { for: `whatif-${name}` }, name), range, shown);
    controls.append(wrap);
  }
  $("whatif-risk").textContent = pct(state.risk);
  $("whatif-delta").textContent = "";
  $("whatif").hidden = controls.children.length === 0 || state.risk === null;
}

function scheduleWhatIf() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runWhatIf, 150);
}

async function runWhatIf() {
  const row = { ...state.values };
  for (const range of $("whatif-controls").querySelectorAll("input[type=range]")) row[range.name] = Number(range.value);
  try {
    const { prediction } = await predictRow(row, "what-if");
    $("whatif-risk").textContent = pct(prediction.risk);
    const delta = 100 * (prediction.risk - state.risk);
    $("whatif-delta").textContent = `(${delta >= 0 ? "+" : "−"}${Math.abs(delta).toFixed(1)} points vs ${pct(state.risk)})`;
  } catch (error) {
    $("whatif-delta").textContent = error.message;
  }
}

$("whatif-reset").addEventListener("click", () => buildWhatIf(state.values));
