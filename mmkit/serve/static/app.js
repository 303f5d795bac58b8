// mmkit serve: the search page. Vanilla JS, no build step; every request goes to this origin.
//
// The query lives in the URL (?q=a+cat&not=dog&k=48&page=2, or ?similar=12), so a link can be
// shared and back/forward work: navigate() pushes a history entry and runs the query, popstate
// reads the URL back and runs it again. Uploaded files cannot be in a URL: they are kept in
// memory per history entry (`saved`), so back/forward within this tab still restore them.
"use strict";

const $ = (id) => document.getElementById(id);
const el = {
  form: $("search"), q: $("q"), not: $("not"), k: $("k"), file: $("file"), drop: $("drop"),
  dropText: $("drop-text"), chips: $("chips"), error: $("error"), status: $("status"),
  pager: $("pager"), prev: $("prev"), next: $("next"), range: $("range"), grid: $("grid"),
  info: $("info"), limits: $("limits"), limitsBox: $("limits-box"),
};
const DEFAULT_K = 24;
const NO_URL = "Uploaded files are not part of the page address: a shared link repeats only the text of the query.";

let info = {};            // GET /api/info
let current = readURL();  // {q, not, similar, k, page}: what the page shows
let uploads = [];         // [{kind: "image" | "audio", file, url}]: the uploaded query items
const saved = new Map();  // history entry -> its uploads
const tab = Math.random().toString(36).slice(2);  // entries of an earlier load share no key
let entries = 0, entry = `${tab}-0`;              // the current history entry
let request = 0;          // the latest request: an older answer that arrives late is dropped
const paths = new Map();  // id -> path, to name the image of a "more like this" query

// ------------------------------------------------------------------ query <-> URL
function readURL() {
  const p = new URLSearchParams(location.search);
  const k = parseInt(p.get("k"), 10);
  return {
    q: p.get("q") || "", not: p.get("not") || "", similar: p.get("similar"),
    k: k > 0 ? k : DEFAULT_K, page: Math.max(1, parseInt(p.get("page"), 10) || 1),
  };
}

function toURL(s) {
  const p = new URLSearchParams();
  if (s.similar != null) p.set("similar", s.similar);
  else {
    if (s.q.trim()) p.set("q", s.q.trim());
    if (s.not.trim()) p.set("not", s.not.trim());
  }
  if (s.k !== DEFAULT_K) p.set("k", s.k);
  if (s.page > 1) p.set("page", s.page);
  const qs = p.toString();
  return location.pathname + (qs ? "?" + qs : "");
}

function navigate(s) {
  current = s;
  entry = `${tab}-${++entries}`;
  saved.set(entry, uploads.slice());
  history.pushState({ entry }, "", toURL(s));
  showQuery();
  run();
}

window.addEventListener("popstate", (e) => {
  current = readURL();
  entry = e.state && e.state.entry;
  uploads = saved.get(entry) || [];
  showQuery();
  run();
});

// ------------------------------------------------------------------ running a query
// "a beach + 0.5:snow" is two text terms; the server reads the "0.5:" weight prefix.
const terms = (q) => q.split(/\s\+\s/).map((t) => t.trim()).filter(Boolean);

async function run() {
  const s = current, mine = ++request;
  showError("");
  if (s.similar == null && !terms(s.q).length && !uploads.length) return showResults(null);
  const params = new URLSearchParams({ k: s.k, offset: (s.page - 1) * s.k });
  if (info.why) params.set("why", "1");
  let url, init;
  if (s.similar != null) {
    url = `/api/similar/${encodeURIComponent(s.similar)}?${params}`;
  } else {
    terms(s.q).forEach((t) => params.append("text", t));
    if (s.not.trim()) params.append("not", s.not.trim());
    if (uploads.length) {  // files go as multipart/form-data, the other fields with them
      const form = new FormData();
      params.forEach((v, key) => form.append(key, v));
      uploads.forEach((u) => form.append(u.kind, u.file, u.file.name));
      url = "/api/search";
      init = { method: "POST", body: form };
    } else url = `/api/search?${params}`;
  }
  el.grid.setAttribute("aria-busy", "true");
  el.status.textContent = "Searching…";
  try {
    const body = await getJSON(url, init);
    if (mine === request) showResults(body);
  } catch (err) {
    if (mine === request) { showResults(null); showError(err.message); }
  } finally {
    if (mine === request) el.grid.removeAttribute("aria-busy");
  }
}

// fetch -> JSON; any failure becomes an Error with one line to show
async function getJSON(url, init) {
  let res;
  try { res = await fetch(url, init); } catch (_) {
    throw new Error("The server did not answer (is mmkit serve still running?)");
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  if (!body) throw new Error(`${url.split("?")[0]}: the answer is not JSON`);
  return body;
}

function showError(msg) {
  el.error.textContent = msg;
  el.error.hidden = !msg;
}

// ------------------------------------------------------------------ results
function showResults(body) {
  el.grid.replaceChildren();
  el.pager.hidden = true;
  el.status.replaceChildren();
  if (!body) return;
  // notes (the query is outside what the method knows) and warnings: one line above the grid
  for (const [cls, lines] of [["note", body.notes], ["warning", body.warnings]]) {
    for (const line of lines || []) el.status.append(span(cls, line));
  }
  const results = body.results || [], took = body.took_ms >= 0 ? ` in ${Math.round(body.took_ms)} ms` : "";
  el.status.append(span("took", body.total ? `${body.total} results${took}` : "No results."));
  // a "more like this" query names its image (the path, relative to the images folder)
  const q0 = (body.query || [])[0];
  if (current.similar != null && q0 && q0.modality === "image") paths.set(current.similar, q0.value);
  for (const r of results) {
    paths.set(String(r.id), r.path);
    el.grid.append(hit(r));
  }
  showChips();  // the "more like this" chip can now name its image
  if (body.total > results.length) {
    el.pager.hidden = false;
    const first = body.offset + 1, last = body.offset + results.length;
    el.range.textContent = results.length ? `${first}–${last} of ${body.total}`
                                          : `past the last of ${body.total}`;
    el.prev.disabled = body.offset <= 0;
    el.next.disabled = last >= body.total;
  }
}

function hit(r) {
  const li = document.createElement("li");
  const a = document.createElement("a");  // a real link: keyboard focus, open in a new tab
  a.href = toURL({ similar: String(r.id), k: current.k, page: 1 });
  a.title = `More like ${r.path}`;
  a.setAttribute("aria-label", `More like ${r.path}`);
  a.dataset.id = r.id;
  const img = document.createElement("img");
  img.src = r.thumb;
  img.alt = r.path;
  img.loading = "lazy";
  a.append(img);
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    uploads = [];
    navigate({ q: "", not: "", similar: String(r.id), k: current.k, page: 1 });
    window.scrollTo(0, 0);
  });
  const cap = document.createElement("div");
  cap.className = "caption";
  const orig = document.createElement("a");
  orig.href = r.image;
  orig.target = "_blank";
  orig.textContent = r.path;
  orig.className = "path";
  orig.title = "Open the original";
  cap.append(span("score", r.score.toFixed(3)), " ", orig);
  const why = whyText(r.why);
  if (why) cap.append(span("why", why));
  if (info.heatmap && current.similar == null && terms(current.q).length && !uploads.length) {
    // which pixels match the words: the server draws the similarity heat map on the image
    const p = new URLSearchParams();
    terms(current.q).forEach((t) => p.append("text", t));
    if (current.not.trim()) p.append("not", current.not.trim());
    const hm = document.createElement("button");
    hm.type = "button";
    hm.className = "heat";
    hm.textContent = "heat map";
    hm.title = "Which pixels match the words (similarity Grad-CAM); click again for the photo";
    hm.setAttribute("aria-pressed", "false");
    hm.addEventListener("click", () => {
      const on = img.dataset.heat !== "1";
      img.src = on ? `/heatmap/${encodeURIComponent(r.id)}?${p}` : r.thumb;
      img.dataset.heat = on ? "1" : "0";
      hm.setAttribute("aria-pressed", String(on));
    });
    cap.append(" ", hm);
  }
  li.append(a, cap);
  li.title = why ? `${r.path}\n${why}` : r.path;
  return li;
}

// {"<term>": {"concepts": [[label, share], ...] or [label, ...], "ocr": [words]}} -> one line
function whyText(why) {
  const items = Object.entries(why || {});
  return items.map(([term, w]) => {
    // [label, contribution to the score] (a text term) or a label (shared with a query image);
    // contributions that round to 0.00 explain nothing and are left out
    const concepts = (w.concepts || []).filter((c) => !Array.isArray(c) || c[1] >= 0.005)
      .map((c) => Array.isArray(c) ? `${c[0]} ${c[1].toFixed(2)}` : String(c));
    const parts = [concepts.join(", ")];
    if (w.ocr && w.ocr.length) parts.push(`reads “${w.ocr.join(" ")}”`);
    const text = parts.filter(Boolean).join("; ");
    return items.length > 1 ? `${term.replace(/^text /, "")}: ${text}` : text;
  }).filter(Boolean).join(" · ");
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

// ------------------------------------------------------------------ the query on screen
function showQuery() {
  el.q.value = current.similar == null ? current.q : "";
  el.not.value = current.similar == null ? current.not : "";
  if (![...el.k.options].some((o) => +o.value === current.k)) el.k.add(new Option(current.k));
  el.k.value = String(current.k);
  showChips();
}

function showChips() {
  el.chips.replaceChildren();
  if (current.similar != null) {
    const id = current.similar, path = paths.get(id) || `image ${id}`;
    el.chips.append(chip(thumb(`/thumb/${encodeURIComponent(id)}`, path), `more like ${path}`,
      null, () => navigate({ ...current, similar: null, q: "", not: "", page: 1 })));
  }
  uploads.forEach((u, i) => {
    const icon = u.kind === "image" ? thumb(u.url, u.file.name) : span("note-icon", "♪");
    el.chips.append(chip(icon, u.file.name, NO_URL, () => {
      uploads = uploads.filter((_, j) => j !== i);
      navigate({ ...current, page: 1 });
    }));
  });
}

function chip(icon, label, title, onRemove) {
  const li = document.createElement("li");
  li.className = "chip";
  if (title) li.title = title;
  const x = document.createElement("button");
  x.type = "button";
  x.textContent = "×";
  x.setAttribute("aria-label", `Remove ${label} from the query`);
  x.addEventListener("click", onRemove);
  li.append(icon, span("label", label), x);
  return li;
}

function thumb(src, alt) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = alt;
  img.addEventListener("error", () => img.remove());  // no broken-image icon in a chip
  return img;
}

// ------------------------------------------------------------------ uploads
function addFiles(files) {
  const audio = (info.modalities || []).includes("audio"), added = [];
  for (const file of files) {
    // a file of no known type goes as an image: the server decodes it or says why not
    const kind = file.type.startsWith("audio/") ? (audio ? "audio" : null)
      : file.type.startsWith("image/") || !file.type ? "image" : null;
    if (!kind) return showError(`${file.name}: not an image${audio ? " or a sound" : ""}`);
    if (info.max_upload_bytes && file.size > info.max_upload_bytes) {
      return showError(`${file.name}: ${mb(file.size)} is more than the ${mb(info.max_upload_bytes)} this server accepts`);
    }
    added.push({ kind, file, url: URL.createObjectURL(file) });
  }
  uploads = uploads.concat(added);
  navigate({ ...current, q: el.q.value, not: el.not.value, similar: null, page: 1 });
}

const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;

el.file.addEventListener("change", () => {
  if (el.file.files.length) addFiles([...el.file.files]);
  el.file.value = "";  // the same file can be chosen again
});
// drop anywhere on the page; the drop zone lights up
document.addEventListener("dragover", (e) => { e.preventDefault(); el.drop.classList.add("over"); });
document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) el.drop.classList.remove("over"); });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  el.drop.classList.remove("over");
  if (e.dataTransfer.files.length) addFiles([...e.dataTransfer.files]);
});

// ------------------------------------------------------------------ the form
el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  navigate({ q: el.q.value, not: el.not.value, similar: null, k: +el.k.value, page: 1 });
});
el.k.addEventListener("change", () => navigate({ ...current, k: +el.k.value, page: 1 }));
el.prev.addEventListener("click", () => { navigate({ ...current, page: current.page - 1 }); window.scrollTo(0, 0); });
el.next.addEventListener("click", () => { navigate({ ...current, page: current.page + 1 }); window.scrollTo(0, 0); });

// ------------------------------------------------------------------ start
async function start() {
  history.replaceState({ entry }, "", location.href);
  showQuery();
  try {
    info = await getJSON("/api/info");
    const built = info.built_at ? ` · built ${String(info.built_at).slice(0, 16).replace("T", " ")}` : "";
    el.info.textContent = `${info.method} · ${info.n_images} images${info.ocr ? " · reads words in photos" : ""}${built}`;
    el.info.title = `${info.root || ""}\nfingerprint ${info.fingerprint || ""}`;
    el.limits.textContent = info.limits || "";
    el.limitsBox.hidden = !info.limits;
    if ((info.modalities || []).includes("audio")) {
      el.file.accept = "image/*,audio/*";
      el.dropText.textContent = "Drop an image or a sound here, or";
    }
  } catch (err) {
    el.info.textContent = "";
    showError(err.message);
  }
  run();  // a URL with a query runs it
}
start();
