// ragkit's web page: plain JavaScript over the /v1 API, no framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "ragkit.apiKey";
const state = { answer: null, controller: null, sourceTexts: new Map() };
window.ragkitPage = state; // for tests and the curious: the last answer, as the API sent it

// -- the API key and errors -----------------------------------------------------------------

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) h["X-API-Key"] = key;
  return h;
}

function notify(message) {
  const box = $("notice");
  box.textContent = message;
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    message = apiKey()
      ? "The API key was refused (401). Check the key and enter it again above."
      : "This service needs an API key (401). Enter your key in the API key field above.";
  } else if (response.status === 403) {
    message = `Your API key may not do this (403): ${message}`;
  }
  return new ApiError(response.status, message);
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  if (!response.ok) throw await failure(response);
  return response;
}

async function apiJson(path, options) { return (await api(path, options)).json(); }

function report(error) {
  notify(error instanceof ApiError ? error.message : `Something went wrong: ${error.message || error}`);
}

// -- collections and pipelines ----------------------------------------------------------------

function collection() { return $("collection").value; }
function enc(part) { return encodeURIComponent(part); }
function encPath(path) { return path.split("/").map(enc).join("/"); }

async function loadCollections() {
  const select = $("collection");
  const previous = select.value;
  const { collections } = await apiJson("/v1/collections");
  select.replaceChildren(...collections.map((name) => new Option(name, name)));
  if (collections.includes(previous)) select.value = previous;
  notify("");
  await Promise.all([loadPipelines(), loadDocuments(), loadEvaluations()]);
}

async function loadPipelines() {
  const select = $("pipeline");
  const name = collection();
  const { data } = await apiJson("/v1/models");
  const options = [new Option("default", "")];
  for (const model of data) {
    const [col, pipeline] = model.id.split(":");
    if (col === name && pipeline) options.push(new Option(pipeline, pipeline));
  }
  const previous = select.value;
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function refresh() {
  try { await loadCollections(); } catch (error) { report(error); }
}

// -- asking, streamed -------------------------------------------------------------------------

function parseEvents(buffer, onEvent) {
  // split complete Server-Sent Events off the buffer; returns the incomplete rest
  let cut;
  while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) onEvent(event, JSON.parse(data.join("\n")));
  }
  return buffer;
}

async function ask(question) {
  const name = collection();
  if (!name) { notify("Choose a collection first (none is visible to this key)."); return; }
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const box = $("answer");
  const live = document.createTextNode("");
  box.replaceChildren(live);
  box.setAttribute("aria-busy", "true");
  $("citations").replaceChildren();
  $("trace-body").replaceChildren(paragraph("Answering…"));
  $("ask-button").disabled = true;
  $("stop-button").hidden = false;
  notify("");
  const body = { question, stream: true };
  if ($("pipeline").value) body.pipeline = $("pipeline").value;
  try {
    const response = await api(`/v1/collections/${enc(name)}/ask`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const onEvent = (event, data) => {
      if (event === "token") {
        live.appendData(data.text); // shown at once: no batching, no debounce
      } else if (event === "citation") {
        addCitation(data);
      } else if (event === "answer") {
        showAnswer(data);
      } else if (event === "error") {
        notify(`The answer failed: ${data.message}`);
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), onEvent);
    }
  } catch (error) {
    if (error.name !== "AbortError") report(error);
  } finally {
    box.setAttribute("aria-busy", "false");
    $("ask-button").disabled = false;
    $("stop-button").hidden = true;
    if (state.controller === controller) state.controller = null;
  }
}

function paragraph(text, className) {
  const p = document.createElement("p");
  p.textContent = text;
  if (className) p.className = className;
  return p;
}

function citeLink(number) {
  const a = document.createElement("a");
  a.href = "#source-view";
  a.className = "cite";
  a.textContent = `[${number}]`;
  a.dataset.number = String(number);
  a.setAttribute("aria-label", `Open source ${number}`);
  a.addEventListener("click", (event) => { event.preventDefault(); openCitation(number); });
  return a;
}

function where(item) {
  const parts = [];
  if (item.page != null) parts.push(`page ${item.page}`);
  if (item.row != null) parts.push(`row ${item.row}`);
  if (item.section) parts.push(item.section);
  return parts.join(", ");
}

function addCitation(citation) {
  const list = $("citations");
  if (list.querySelector(`[data-number="${citation.number}"]`)) return;
  const li = document.createElement("li");
  li.value = citation.number;
  li.append(citeLink(citation.number), ` ${citation.title || citation.source}`);
  const at = where(citation);
  if (at) li.append(` (${at})`);
  list.append(li);
}

function showAnswer(answer) {
  state.answer = answer;
  const box = $("answer");
  const nodes = [];
  const cited = new Set(answer.citations.map((c) => c.number));
  let last = 0;
  for (const match of answer.text.matchAll(/\[(\d+)\]/g)) {
    const number = Number(match[1]);
    if (!cited.has(number)) continue;
    nodes.push(answer.text.slice(last, match.index), citeLink(number));
    last = match.index + match[0].length;
  }
  nodes.push(answer.text.slice(last));
  box.replaceChildren(...nodes);
  $("citations").replaceChildren();
  answer.citations.forEach(addCitation);
  showTrace(answer);
}

function cell(row, text, header) {
  const c = document.createElement(header ? "th" : "td");
  c.textContent = text;
  if (header) c.scope = "row";
  row.append(c);
  return c;
}

function showTrace(answer) {
  const table = document.createElement("table");
  table.className = "trace";
  table.createCaption().textContent = "Stages of this answer";
  const head = table.createTHead().insertRow();
  for (const title of ["Stage", "Seconds", "Details"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    head.append(th);
  }
  const body = table.createTBody();
  for (const stage of answer.trace || []) {
    const row = body.insertRow();
    cell(row, `${stage.stage} (${stage.kind})`, true);
    cell(row, Number(stage.seconds).toFixed(3)).className = "num";
    const details = [];
    if (stage.hits) details.push(`${stage.hits.length} hits`);
    if (stage.tokens) details.push(`${stage.tokens} tokens`);
    if (stage.notes) details.push(...stage.notes);
    if (stage.error) details.push(`error: ${stage.error}`);
    cell(row, details.join("; "));
  }
  const timings = Object.entries(answer.timings || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)} s`);
  const usage = answer.usage ? `${answer.usage.prompt_tokens} prompt + ${answer.usage.completion_tokens} answer tokens` : "";
  $("trace-body").replaceChildren(table, paragraph(`Timings: ${timings.join(", ")}`), paragraph(usage, "muted"));
}

// -- a citation's source, the cited span marked --------------------------------------------------

async function sourceText(name, source) {
  const key = `${name}\u0000${source}`;
  if (!state.sourceTexts.has(key)) {
    state.sourceTexts.set(key, apiJson(`/v1/collections/${enc(name)}/texts/${encPath(source)}`));
  }
  try { return await state.sourceTexts.get(key); } catch (error) { state.sourceTexts.delete(key); throw error; }
}

async function openCitation(number) {
  const answer = state.answer;
  const citation = answer && answer.citations.find((c) => c.number === number);
  if (!citation) return;
  const hit = answer.hits.find((h) => h.chunk_id === citation.chunk_id) || answer.hits.find((h) => h.rank === number);
  await openSource(collection(), citation, hit ? hit.text : citation.quote);
}

async function openSource(name, place, chunkText) {
  const view = $("source-view");
  view.hidden = false;
  $("source-title").textContent = `[${place.number || ""}] ${place.title || place.source}`.replace("[] ", "");
  const at = [];
  if (place.page != null) at.push(`Page ${place.page}`);
  if (place.row != null) at.push(`Row ${place.row}`);
  if (place.section) at.push(place.section);
  at.push(`source ${place.source}`);
  $("source-meta").textContent = at.join(" · ");
  const download = $("source-download");
  download.href = "#";
  download.onclick = (event) => { event.preventDefault(); downloadSource(name, place.source); };
  const pre = $("source-text");
  pre.replaceChildren(paragraph("Loading…", "muted"));
  try {
    const { documents } = await sourceText(name, place.source);
    if (!place.document_id) { // a whole source: every page or row, each named
      const label = (d) => (d.page != null ? `— page ${d.page} —\n` : d.row != null ? `— row ${d.row} —\n` : "");
      pre.replaceChildren(documents.map((d) => label(d) + d.text).join("\n\n"));
      return;
    }
    const doc = documents.find((d) => d.id === place.document_id) || documents[0];
    if (!doc) throw new Error("no text");
    let start = place.start;
    let end = place.end;
    if (place.start == null || (chunkText && doc.text.slice(start, end) !== chunkText)) {
      const found = chunkText ? doc.text.indexOf(chunkText) : -1;
      if (found >= 0) { start = found; end = found + chunkText.length; }
    }
    start = Math.max(0, Math.min(start ?? 0, doc.text.length));
    end = Math.max(start, Math.min(end ?? start, doc.text.length));
    const mark = document.createElement("mark");
    mark.textContent = doc.text.slice(start, end);
    pre.replaceChildren(doc.text.slice(0, start), mark, doc.text.slice(end));
    view.focus({ preventScroll: true });
    mark.scrollIntoView({ block: "center" });
  } catch (error) {
    if (chunkText) {
      const mark = document.createElement("mark");
      mark.textContent = chunkText;
      pre.replaceChildren(mark);
    } else {
      pre.replaceChildren();
    }
    report(error);
  }
}

async function downloadSource(name, source) {
  try {
    const blob = await (await api(`/v1/collections/${enc(name)}/sources/${encPath(source)}`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = source.split("/").pop();
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) { report(error); }
}

// -- documents and uploads ------------------------------------------------------------------

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

async function loadDocuments() {
  const body = $("documents").tBodies[0];
  const name = collection();
  if (!name) { body.replaceChildren(); return; }
  const { documents } = await apiJson(`/v1/collections/${enc(name)}/documents`);
  body.replaceChildren(...documents.map((doc) => {
    const row = document.createElement("tr");
    cell(row, doc.name, true);
    cell(row, String(doc.chunks)).className = "num";
    cell(row, size(doc.size)).className = "num";
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Show text";
    open.setAttribute("aria-label", `Show the text of ${doc.name}`);
    open.addEventListener("click", () => openSource(name, { source: doc.source, title: doc.name }, ""));
    cell(row, "").append(open);
    return row;
  }));
}

async function upload(files) {
  const name = collection();
  if (!name || !files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const progress = $("upload-progress");
  const status = $("upload-status");
  progress.hidden = false;
  progress.max = files.length;
  progress.value = 0;
  status.textContent = `Uploading ${files.length} file(s)…`;
  try {
    let job = await apiJson(`/v1/collections/${enc(name)}/documents`, { method: "POST", body: form });
    while (job.status === "queued" || job.status === "running") {
      const counts = job.counts;
      if (counts) progress.value = counts.added + counts.updated + counts.unchanged + counts.failed + counts.skipped;
      status.textContent = `Ingest job ${job.status}…`;
      await new Promise((resolve) => setTimeout(resolve, 300));
      job = await apiJson(`/v1/jobs/${enc(job.id)}`);
    }
    progress.value = progress.max;
    const c = job.counts || {};
    const problems = (job.errors || []).concat(job.skipped || []).map((e) => `${e.source}: ${e.reason}`);
    status.textContent = job.status === "succeeded"
      ? `Done: ${c.added || 0} added, ${c.updated || 0} updated, ${c.unchanged || 0} unchanged, ${c.failed || 0} failed.${problems.length ? " " + problems.join("; ") : ""}`
      : `The ingest job ${job.status}: ${(job.error && job.error.message) || problems.join("; ")}`;
    await loadDocuments();
  } catch (error) {
    status.textContent = "Upload failed.";
    report(error);
  }
}

// -- evaluations ----------------------------------------------------------------------------

async function loadEvaluations() {
  const list = $("evaluations");
  const { evaluations } = await apiJson("/v1/evaluations");
  if (!evaluations.length) {
    const none = document.createElement("li");
    none.textContent = "No evaluation runs yet.";
    none.className = "muted";
    list.replaceChildren(none);
    return;
  }
  list.replaceChildren(...evaluations.map((run) => {
    const li = document.createElement("li");
    li.append(`${run.suite_name} · ${run.status} · ${new Date(run.created_at).toLocaleString()} `);
    if (run.reports && run.reports.html) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Open report";
      button.setAttribute("aria-label", `Open the report of ${run.suite_name} (${run.id})`);
      button.addEventListener("click", () => openReport(run.reports.html));
      li.append(button);
    }
    return li;
  }));
}

async function openReport(url) {
  try {
    const html = await (await api(url)).text();
    const frame = $("report");
    frame.srcdoc = html;
    frame.hidden = false;
    frame.focus();
  } catch (error) { report(error); }
}

// -- wiring -----------------------------------------------------------------------------------

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    state.sourceTexts.clear();
    refresh();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    $("api-key").value = "";
    refresh();
  });
  $("refresh").addEventListener("click", refresh);
  $("collection").addEventListener("change", () => {
    Promise.all([loadPipelines(), loadDocuments()]).catch(report);
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (question) ask(question);
  });
  $("stop-button").addEventListener("click", () => state.controller && state.controller.abort());
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    upload([...$("files").files]);
  });
  refresh();
}

init();
