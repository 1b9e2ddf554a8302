// constructicon's one script: it only adds liveness to pages that work
// without it. A build page follows its build's event stream (new log lines,
// step and build states); list pages fetch themselves again when the
// megatron says something changed; times say how long ago, kept current;
// the builder filter narrows as one types.
"use strict";

function ago(ms) {
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  if (s < 172800) return "yesterday";
  return Math.floor(s / 86400) + " days ago";
}

function refreshTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const ms = Date.parse(t.getAttribute("datetime"));
    if (!isNaN(ms)) t.textContent = ago(ms);
  }
}

function setLabel(el, word, cls) {
  if (!el) return;
  el.textContent = word;
  el.className = el.className.split(" ").filter(c => c === "state" || c === "step-state").concat([cls]).join(" ");
}

function followBuild() {
  const live = document.getElementById("live");
  if (!live) return;
  const source = new EventSource(live.dataset.events);
  source.addEventListener("build", e => {
    const b = JSON.parse(e.data);
    setLabel(document.getElementById("build-state"), b.word, b.class);
    const took = document.getElementById("build-duration");
    if (took && b.took) took.textContent = b.took;
    b.steps.forEach((s, i) => {
      const section = document.getElementById("s" + i);
      if (!section) return;
      setLabel(section.querySelector(".step-state"), s.word, s.class);
      const time = section.querySelector(".step-time");
      if (time) time.textContent = s.took;
      if (s.class === "running") section.querySelector("details").open = true;
    });
  });
  source.addEventListener("log", e => {
    const chunk = JSON.parse(e.data);
    const list = document.getElementById("log-" + chunk.step);
    if (!list) return;
    const follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    const fragment = document.createDocumentFragment();
    for (const [number, html] of chunk.lines) {
      const li = document.createElement("li");
      li.id = "s" + chunk.step + "-L" + number;
      const a = document.createElement("a");
      a.className = "ln";
      a.href = "#" + li.id;
      a.textContent = number;
      const span = document.createElement("span");
      // The server escaped the text and added only its colour spans.
      span.innerHTML = html;
      li.append(a, span);
      fragment.append(li);
    }
    list.append(fragment);
    list.closest("details").open = true;
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  });
  source.addEventListener("end", () => {
    source.close();
    // The finished page has what only it shows (artifacts, buttons).
    location.reload();
  });
}

function followPage() {
  const source = new EventSource("/events");
  source.addEventListener("changed", async () => {
    const answer = await fetch(location.href, { headers: { "accept": "text/html" } });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("main");
    const focused = document.activeElement && document.activeElement.id;
    const typing = focused && document.activeElement.matches("input, textarea, select");
    // Never pull a form from under someone using it.
    if (!fresh || typing || document.querySelector("main form.force input:focus")) return;
    document.getElementById("main").replaceWith(fresh);
    applyFilter();
    refreshTimes(document);
  });
}

function applyFilter() {
  const input = document.getElementById("filter");
  if (!input) return;
  const needle = input.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("tr.builder")) {
    row.hidden = needle !== "" && !row.dataset.name.toLowerCase().includes(needle);
  }
  for (const repo of document.querySelectorAll("section.repo")) {
    repo.hidden = needle !== "" && !repo.querySelector("tr.builder:not([hidden])");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.body.dataset.live;
  if (live === "build") followBuild();
  if (live === "page") followPage();
  const filter = document.getElementById("filter");
  if (filter) filter.addEventListener("input", applyFilter);
  refreshTimes(document);
  setInterval(() => refreshTimes(document), 30000);
});
