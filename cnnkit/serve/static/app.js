// cnnkit playground: an editor whose spec is summarized and drawn by the local server as
// you type.  Hand-written, no dependencies; everything comes from the server that sent it.
"use strict";

const $ = (id) => document.getElementById(id);
const editor = $("spec");
const highlight = $("highlight");
const gutter = $("gutter");
const SUMMARY_DELAY = 120;  // ms of quiet typing before the table updates
const DRAWING_DELAY = 350;  // the drawing takes longer: wait a little more
const AUTO_COMPACT = 60;    // layers beyond which the drawing starts compact
const FALLBACK = "INPUT 32x32x3 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10";

const state = {
  error: null, summaryRun: 0, drawingRun: 0, svg: null, name: "network",
  compactChosen: false, summaryTimer: 0, drawingTimer: 0,
};

// -- syntax colours -----------------------------------------------------------------------

const TOKEN = new RegExp([
  "(#[^\\n]*)",                                  // 1 comment
  "(@[A-Za-z_]+)",                               // 2 directive
  "(->|\u2192)",                                 // 3 arrow
  "([0-9]+(?:[xX][0-9]+)+(?![A-Za-z0-9_]))",     // 4 shape
  "([A-Za-z_][A-Za-z0-9_]*(?:-[0-9]+)?)",         // 5 word
  "(-?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?)", // 6 number
  "([\\[\\]|*\u00d7])",                          // 7 bracket, branch bar, repeat
].join("|"), "g");

function wordClass(word, text, end) {
  if (word === "RES" || word === "CAT") return "t-branch";
  if (/^\s*=/.test(text.slice(end, end + 8)) && /^[a-z]/.test(word)) {
    return text.lastIndexOf("(", end) > text.lastIndexOf(")", end) ? "t-option" : "t-name";
  }
  if (/^[A-Z]/.test(word)) return "t-layer";
  return "t-name";
}

// The text as (start, end, class) pieces, every character in exactly one piece.
function pieces(text) {
  const out = [];
  let last = 0;
  TOKEN.lastIndex = 0;
  for (let m; (m = TOKEN.exec(text)) !== null;) {
    if (m[0] === "") { TOKEN.lastIndex++; continue; }
    if (m.index > last) out.push([last, m.index, ""]);
    const end = m.index + m[0].length;
    const cls = m[1] ? "t-comment" : m[2] ? "t-directive" : m[3] ? "t-arrow"
      : m[4] || m[6] ? "t-number" : m[5] ? wordClass(m[5], text, end) : "t-bracket";
    out.push([m.index, end, cls]);
    last = end;
  }
  if (last < text.length) out.push([last, text.length, ""]);
  return out;
}

const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

// Offset of 1-based (line, column) in the text, columns counted as the lexer counts them.
function offsetOf(text, line, column) {
  let offset = 0;
  for (let k = 1; k < line; k++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return Math.min(text.length, offset + column - 1);
}

function paint() {
  const text = editor.value;
  const err = state.error && state.error.line ? state.error : null;
  let bad = [-1, -1];
  if (err) {
    bad = [offsetOf(text, err.line, err.column), offsetOf(text, err.line, err.end_column)];
    if (bad[1] <= bad[0]) bad[1] = bad[0] + 1;  // an error at the end of a line: one cell
  }
  let html = "";
  for (const [start, end, cls] of pieces(text)) {
    // split a piece where the error's span begins or ends
    const cuts = [start, ...bad.filter((c) => c > start && c < end), end];
    for (let k = 0; k + 1 < cuts.length; k++) {
      const inside = cuts[k] >= bad[0] && cuts[k] < bad[1];
      const classes = [cls, inside ? "t-error" : ""].filter(Boolean).join(" ");
      const part = escapeHtml(text.slice(cuts[k], cuts[k + 1]));
      html += classes ? `<span class="${classes}">${part}</span>` : part;
    }
  }
  if (err && bad[0] >= text.length) html += '<span class="t-error"> </span>';
  highlight.innerHTML = html + "\n";
  const lines = text.split("\n").length;
  let numbers = "";
  for (let k = 1; k <= lines; k++) {
    numbers += err && err.line === k ? `<span class="bad">${k}</span>\n` : `${k}\n`;
  }
  gutter.innerHTML = numbers;
  syncScroll();
}

function syncScroll() {
  highlight.scrollTop = editor.scrollTop;
  highlight.scrollLeft = editor.scrollLeft;
  gutter.scrollTop = editor.scrollTop;
}

// -- the link: the spec compressed into the fragment ----------------------------------------

const toBase64Url = (bytes) => btoa(String.fromCharCode(...bytes))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromBase64Url = (text) => Uint8Array.from(
  atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

async function squeeze(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let out = "";
  for (let k = 0; k < bytes.length; k += 8192) out += toBase64Url(bytes.subarray(k, k + 8192));
  return out;
}

async function unsqueeze(code) {
  const stream = new Blob([fromBase64Url(code)]).stream()
    .pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(stream).text();
}

async function writeFragment() {
  const params = new URLSearchParams();
  const text = editor.value;
  if (typeof CompressionStream === "function") {
    params.set("z", await squeeze(text).catch(() => ""));
  }
  if (!params.get("z")) { params.delete("z"); params.set("t", text); }
  for (const [key, id] of [["batch", "batch"], ["optimizer", "optimizer"], ["dtype", "dtype"],
    ["rounding", "rounding"]]) {
    const value = $(id).value;
    if (value && value !== $(id).dataset.default) params.set(key, value);
  }
  if ($("compact").checked) params.set("compact", "1");
  if ($("vertical").checked) params.set("vertical", "1");
  history.replaceState(null, "", "#" + params.toString());
}

async function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  let text = null;
  if (params.has("z")) text = await unsqueeze(params.get("z")).catch(() => null);
  if (text === null && params.has("t")) text = params.get("t");
  for (const id of ["batch", "optimizer", "dtype", "rounding"]) {
    if (params.has(id)) $(id).value = params.get(id);
  }
  for (const id of ["compact", "vertical"]) {
    if (params.has(id)) { $(id).checked = params.get(id) === "1"; }
  }
  if (params.has("compact")) state.compactChosen = true;
  return text;
}

// -- talking to the server ------------------------------------------------------------------

function query(extra = {}) {
  const params = new URLSearchParams({
    batch: $("batch").value || "1", optimizer: $("optimizer").value, dtype: $("dtype").value,
  });
  if ($("rounding").value) params.set("rounding", $("rounding").value);
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params.toString();
}

const post = (path, extra) => fetch(`${path}?${query(extra)}`, {
  method: "POST", body: editor.value, headers: { "Content-Type": "text/plain; charset=utf-8" },
});

async function updateSummary() {
  const run = ++state.summaryRun;
  const started = performance.now();
  let response, document_;
  try {
    response = await post("/api/summarize");
    document_ = await response.json();
  } catch (problem) {
    if (run === state.summaryRun) status(`server unreachable: ${problem.message}`, true);
    return;
  }
  if (run !== state.summaryRun) return;  // a newer keystroke has its own request
  const took = Math.round(performance.now() - started);
  document.body.dataset.summaryMs = String(took);
  if (!response.ok) {
    showError(document_.error);
    status(`error · ${took} ms`, true);
    return;
  }
  showError(null);
  showSummary(document_);
  const layers = document_.layers.length;
  status(`${layers} layers · summary ${took} ms`);
  if (!state.compactChosen) $("compact").checked = layers > AUTO_COMPACT;
  scheduleDrawing();
}

async function updateDrawing() {
  const run = ++state.drawingRun;
  const box = $("drawing");
  box.classList.add("stale");
  const response = await post("/api/network.svg", drawingOptions()).catch(() => null);
  if (run !== state.drawingRun || !response || !response.ok) return;
  const blob = await response.blob();
  if (run !== state.drawingRun) return;
  const image = new Image();
  image.alt = "the network";
  image.src = URL.createObjectURL(blob);
  if (state.svg) URL.revokeObjectURL(state.svg.url);
  state.svg = { blob, url: image.src };
  box.replaceChildren(image);
  box.classList.remove("stale");
  document.body.dataset.drawn = String(run);
}

const drawingOptions = () => ({
  compact: $("compact").checked ? "1" : "0", vertical: $("vertical").checked ? "1" : "0",
});

function schedule() {
  clearTimeout(state.summaryTimer);
  state.summaryTimer = setTimeout(() => updateSummary().then(writeFragment), SUMMARY_DELAY);
}

function scheduleDrawing() {
  clearTimeout(state.drawingTimer);
  state.drawingTimer = setTimeout(updateDrawing, DRAWING_DELAY);
}

function status(text, bad = false) {
  $("status").textContent = text;
  $("status").style.color = bad ? "var(--bad)" : "";
}

// -- showing the results --------------------------------------------------------------------

const fmt = (n) => Number(n).toLocaleString("en-US");

function humanBytes(n) {
  for (const [unit, scale] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]]) {
    if (n >= scale) return `${(n / scale).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}

function decimal(n) {
  for (const [prefix, scale] of [["G", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (n >= scale) return `${Number((n / scale).toPrecision(3))} ${prefix}`;
  }
  return String(n);
}

// What `summarize --explain` prints for a row.
function explanation(row) {
  const parts = [...row.explain];
  if (row.weights) parts.push(`weights ${row.weights_formula}`);
  if (row.biases) parts.push(`biases ${fmt(row.biases)}`);
  if (row.other_params) parts.push(`BN ${row.weights_formula || fmt(row.other_params)}`);
  if (row.macs) parts.push(`MACs ${row.macs_formula}`);
  if (row.kind !== "input") {
    parts.push(`activations ${row.shape.join("*")} = ${fmt(row.activations)}`
      + (row.in_place ? " (in place)" : ""));
  }
  return parts;
}

function showSummary(doc) {
  const t = doc.totals;
  const table = $("table");
  table.classList.toggle("hide-bn", t.other_params === 0);
  let body = "";
  for (const row of doc.layers) {
    const lines = explanation(row);
    body += `<tr class="${row.in_place ? "in-place" : ""}" data-index="${row.index}"`
      + ` title="${escapeHtml(lines.join("\n")).replace(/"/g, "&quot;")}">`
      + `<td class="n">${row.index}</td><td>${escapeHtml(row.name)}</td><td>${row.output}</td>`
      + `<td class="n act">${fmt(row.activations)}</td>`
      + `<td class="n">${row.weights ? escapeHtml(row.weights_formula) : "0"}</td>`
      + `<td class="n">${fmt(row.biases)}</td><td class="n bn">${fmt(row.other_params)}</td>`
      + `<td class="n">${fmt(row.macs)}</td>`
      + `<td class="n">${row.receptive_field.join("x")}</td></tr>`;
  }
  table.tBodies[0].innerHTML = body;
  table.tFoot.innerHTML = `<tr><td></td><td>total</td><td></td>`
    + `<td class="n">${fmt(t.activations_per_image)}</td><td class="n">${fmt(t.weights)}</td>`
    + `<td class="n">${fmt(t.biases)}</td><td class="n bn">${fmt(t.other_params)}</td>`
    + `<td class="n">${fmt(t.macs)}</td><td></td></tr>`;
  table.querySelectorAll("th")[6].classList.add("bn");
  const m = doc.training_memory;
  const e = doc.executor_memory;
  const trainable = `weights ${fmt(t.weights)} + biases ${fmt(t.biases)}`
    + (t.other_params ? ` + BN ${fmt(t.other_params)}` : "");
  $("totals").innerHTML = [
    `<div id="total-params"><b>parameters</b> ${fmt(t.params)} (${trainable})`
      + (t.state ? `; BN running statistics ${fmt(t.state)}` : "") + "</div>",
    `<div id="total-macs"><b>MACs</b> ${fmt(t.macs)} per image (${decimal(t.macs)})</div>`,
    `<div><b>activations</b> ${fmt(t.activations_per_image)} per image = `
      + `${humanBytes(t.activation_bytes_per_image)} in ${doc.dtype}</div>`,
    `<div id="total-training"><b>training</b> batch ${m.batch}, ${m.optimizer}, ${m.dtype}: `
      + `activations ${humanBytes(m.activation_bytes)} + their gradients `
      + `${humanBytes(m.gradient_bytes)} + parameters/gradients/optimizer `
      + `${humanBytes(m.parameter_bytes)} = <strong>${humanBytes(m.total_bytes)}</strong></div>`,
    `<div><b>executor</b> ${humanBytes(e.total_bytes)} at the peak of a training step `
      + `(convolution workspace ${humanBytes(e.workspace_bytes)})</div>`,
    `<div class="dim">${escapeHtml(doc.counting)}</div>`,
  ].join("");
}

function showError(error) {
  state.error = error;
  paint();
  const box = $("error");
  box.hidden = !error;
  if (!error) return;
  let html = `<div><strong>${error.line ? `${error.line}:${error.column}: ` : ""}error:</strong>`
    + ` ${escapeHtml(error.message)}</div>`;
  if (error.line) {
    const source = editor.value.split("\n")[error.line - 1] || "";
    const width = Math.max(1, (error.end_column || error.column + 1) - error.column);
    const gutterText = `${String(error.line).padStart(4)} | `;
    html += `<pre>${escapeHtml(gutterText + source)}\n${" ".repeat(gutterText.length - 2)}| `
      + `${" ".repeat(error.column - 1)}${"^".repeat(width)}</pre>`;
  }
  if (error.hint) html += `<div class="hint">hint: ${escapeHtml(error.hint)}</div>`;
  box.innerHTML = html;
}

function toggleExplain(row) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("explain")) { next.remove(); return; }
  const detail = document.createElement("tr");
  detail.className = "explain";
  const cell = document.createElement("td");
  cell.colSpan = 9;
  cell.textContent = row.title.split("\n").join("; ") || "no arithmetic: nothing to count";
  detail.append(cell);
  row.after(detail);
}

// -- downloads ------------------------------------------------------------------------------

const DOWNLOADS = {
  spec: ["txt", async () => new Blob([editor.value], { type: "text/plain" })],
  csv: ["csv", () => fetchBlob("/api/summarize", { format: "csv" })],
  json: ["json", () => fetchBlob("/api/summarize", { format: "json" })],
  markdown: ["md", () => fetchBlob("/api/summarize", { format: "markdown" })],
  svg: ["svg", () => (state.svg ? state.svg.blob
    : fetchBlob("/api/network.svg", drawingOptions()))],
  png: ["png", () => fetchBlob("/api/network.png", drawingOptions())],
};

async function fetchBlob(path, extra) {
  const response = await post(path, extra);
  if (!response.ok) throw new Error((await response.json()).error.message);
  return response.blob();
}

async function download(kind) {
  const [suffix, make] = DOWNLOADS[kind];
  let blob;
  try { blob = await make(); } catch (problem) { status(problem.message, true); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${state.name}.${suffix}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// -- start ----------------------------------------------------------------------------------

function fillSelect(select, values, chosen) {
  for (const value of values) select.add(new Option(value, value));
  select.value = chosen;
  select.dataset.default = chosen;
}

async function loadExample(name) {
  const response = await fetch(`/api/examples/${encodeURIComponent(name)}`);
  if (!response.ok) return;
  editor.value = await response.text();
  state.name = name;
  editor.scrollTop = 0;
  paint();
  schedule();
}

async function start() {
  const info = await (await fetch("/api/start")).json();
  fillSelect($("optimizer"), info.optimizers, "sgd");
  fillSelect($("dtype"), info.dtypes, "float32");
  fillSelect($("rounding"), info.roundings, "");
  $("batch").dataset.default = "1";
  for (const name of info.examples) $("examples").add(new Option(name, name));
  if (info.name) state.name = info.name.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "");
  const linked = await readFragment();
  editor.value = linked !== null ? linked : info.spec || FALLBACK;
  paint();
  editor.addEventListener("input", () => { paint(); schedule(); });
  editor.addEventListener("scroll", syncScroll);
  $("memory").addEventListener("input", schedule);
  $("memory").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["compact", "vertical"]) {
    $(id).addEventListener("change", () => {
      if (id === "compact") state.compactChosen = true;
      writeFragment();
      scheduleDrawing();
    });
  }
  $("examples").addEventListener("change", (event) => {
    if (event.target.value) loadExample(event.target.value);
  });
  $("table").tBodies[0].addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-index]");
    if (row) toggleExplain(row);
  });
  $("drawing").addEventListener("click", () => $("drawing").classList.toggle("zoom"));
  for (const button of document.querySelectorAll("[data-download]")) {
    button.addEventListener("click", () => download(button.dataset.download));
  }
  $("share").addEventListener("click", async () => {
    await writeFragment();
    try { await navigator.clipboard.writeText(location.href); status("link copied"); }
    catch { status("copy the address bar: it holds the link"); }
  });
  window.addEventListener("hashchange", async () => {
    const text = await readFragment();
    if (text !== null && text !== editor.value) { editor.value = text; paint(); schedule(); }
  });
  updateSummary().then(writeFragment);
}

start();
