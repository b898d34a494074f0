"use strict";
// The PerfectQueue dashboard: one page, views chosen by the URL's hash, data from /api/ (docs/dashboard.md).
// Every value from the queue is put on the page as text (textContent, attribute values), never parsed as markup,
// and the Content-Security-Policy lets no script run but this file.

let session = null;          // GET /api/session: queue, readOnly, anti-forgery token, refresh interval
let current = null;          // the mounted view: { refresh() }
let refreshing = false;

// ---- small helpers ----

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "onclick") node.addEventListener("click", value);
    else if (name === "onsubmit") node.addEventListener("submit", value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

function showStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text || "";
  status.className = "status" + (isError ? " error" : "");
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", [session.antiForgeryHeader]: session.antiForgeryToken },
    body: JSON.stringify(body),
  };
  const response = await fetch("/api/" + path, options);
  if (response.status === 401) { location.reload(); throw new Error("Signed out."); }
  let json = null;
  try { json = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(json && json.error ? json.error.message : response.status + " " + response.statusText);
  return json;
}

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise(resolve => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

// An action button (none in read-only mode): asks first, then calls the API and refreshes the view.
function action(label, question, path, body, cls) {
  if (session.readOnly) return null;
  return el("button", {
    class: "action " + (cls || ""), "data-action": path, text: label,
    onclick: async event => {
      event.preventDefault();
      if (!(await confirmAction(question))) return;
      try {
        await api(path, body);
        showStatus(label + ": done.");
        if (current) await current.refresh();
      } catch (e) { showStatus(label + " failed: " + e.message, true); }
    },
  });
}

// headers: names, or [name, class] pairs (a "num" column is right-aligned).
function table(headers, rows, props) {
  return el("table", props || {},
    el("thead", {}, el("tr", {}, headers.map(h => Array.isArray(h) ? el("th", { text: h[0], class: h[1] }) : el("th", { text: h })))),
    el("tbody", {}, rows));
}

function replace(container, ...children) { container.replaceChildren(...children.flat().filter(c => c)); }

function hashRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function taskLink(key) {
  return el("a", { href: "#/task?" + new URLSearchParams({ key }).toString(), class: "key", text: key });
}

// ---- views ----

function overviewView(root) {
  const cards = el("section", { id: "counts", class: "cards" });
  const oldest = el("p", { id: "oldest", class: "note" });
  const pauses = el("section", { id: "pauses" });
  const types = el("section", { id: "types" });
  const users = el("section", { id: "users" });
  const failed = el("p", {}, el("a", { id: "failed-link", href: "#/tasks?status=Finished&outcome=Failed", text: "Failed tasks →" }));
  replace(root, el("h2", { text: "Overview" }), cards, oldest, failed, pauses, types, users);

  // A row of counts, with a pause button for that type or user unless it (or the whole queue) is paused.
  const statusRow = (name, label, counts, scope, paused) => el("tr", { "data-name": name ?? "" },
    el("td", { text: label }), session.statuses.map(s => el("td", { class: "num", text: counts[s] })),
    el("td", {}, name === null || paused ? null :
      action("Pause", "Pause " + scope.what + "? Workers start none of its waiting tasks until it is resumed; running ones go on.", "queue/suspend", scope.body)));

  return {
    async refresh() {
      const [summary, paused] = await Promise.all([api("summary"), api("pauses")]);
      replace(cards, session.statuses.map(s => el("a", { class: "card status-" + s, "data-status": s, href: "#/tasks?status=" + s },
        el("span", { class: "count", text: summary.statuses[s] }), el("span", { class: "label", text: s }))));
      failed.hidden = summary.statuses.Finished === 0;
      oldest.textContent = summary.oldestWaitingAgeSeconds === null
        ? "Nothing is waiting." : "The oldest waiting task has waited " + age(summary.oldestWaitingAgeSeconds) + ".";
      replace(pauses, el("h3", { text: "Paused" }),
        paused.pauses.length === 0 ? el("p", { class: "note", text: "Nothing is paused." }) :
          table(["Scope", "Since", "By", "Reason", "Waiting", ""], paused.pauses.map(p => el("tr", { "data-scope": p.scope },
            el("td", { text: p.scope }), el("td", { text: when(p.since) }), el("td", { text: p.pausedBy }), el("td", { text: p.reason }),
            el("td", { class: "num", text: p.waiting }),
            el("td", {}, action("Resume", "Resume " + p.scope + "?", "queue/resume", { type: p.type, user: p.user }))))),
        paused.pauses.some(p => !p.type && !p.user) ? null :
          action("Pause the whole queue", "Pause the whole queue? Workers lease nothing until it is resumed; running tasks go on.", "queue/suspend", {}, "danger"));
      const whole = paused.pauses.some(p => !p.type && !p.user);
      const typePaused = t => whole || paused.pauses.some(p => p.type === t && !p.user);
      const userPaused = u => whole || paused.pauses.some(p => p.user === u && !p.type);
      replace(types, el("h3", { text: "By type" }), summary.types.length === 0 ? el("p", { class: "note", text: "No tasks." }) :
        table(["Type", ...session.statuses.map(s => [s, "num"]), ""], summary.types.map(t =>
          statusRow(t.type, t.type, t.statuses, { what: "type " + t.type, body: { type: t.type } }, typePaused(t.type)))));
      replace(users, el("h3", { text: "By user" }), summary.users.length === 0 ? el("p", { class: "note", text: "No tasks." }) :
        table(["User", ...session.statuses.map(s => [s, "num"]), ""], summary.users.map(u =>
          statusRow(u.user, u.user ?? "(no user)", u.statuses, { what: "user " + u.user, body: { user: u.user } }, userPaused(u.user)))));
    },
  };
}

function tasksView(root, params) {
  const field = (name, label, input) => el("label", {}, el("span", { text: label }), input);
  const select = (name, values) => el("select", { name }, el("option", { value: "", text: "any" }),
    values.map(v => el("option", { value: v, text: v, selected: params.get(name) === v })));
  const text = name => el("input", { name, value: params.get(name) || "", autocomplete: "off" });
  const form = el("form", { id: "filters", class: "filters" },
    field("status", "Status", select("status", session.statuses)),
    field("outcome", "Outcome", select("outcome", session.outcomes)),
    field("type", "Type", text("type")),
    field("user", "User", text("user")),
    field("prefix", "Key starts with", text("prefix")),
    el("button", { type: "submit", text: "Filter" }));
  form.addEventListener("submit", event => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
    location.hash = "#/tasks" + (query.toString() ? "?" + query : "");
  });
  const list = el("section", { id: "task-list" });
  const pager = el("nav", { class: "pager" });
  replace(root, el("h2", { text: "Tasks" }), form, list, pager);

  return {
    async refresh() {
      const query = new URLSearchParams();
      for (const name of ["status", "outcome", "type", "user", "prefix", "before"]) if (params.get(name)) query.set(name, params.get(name));
      const page = await api("tasks?" + query);
      replace(list, page.tasks.length === 0 ? el("p", { class: "note", id: "no-tasks", text: "No task matches." }) :
        table(["Key", "Type", "User", "Status", "Outcome", "Attempts", "Created", "Message"], page.tasks.map(t => el("tr", { "data-key": t.key },
          el("td", {}, taskLink(t.key)), el("td", { text: t.type }), el("td", { text: t.user }),
          el("td", { class: "status-" + t.status, text: t.status }), el("td", { text: t.outcome }),
          el("td", { class: "num", text: t.attempts }), el("td", { text: when(t.createdAt) }), el("td", { class: "message", text: t.message }))),
          { id: "tasks" }));
      const here = new URLSearchParams(params);
      here.delete("before");
      replace(pager,
        params.get("before") ? el("a", { href: "#/tasks" + (here.toString() ? "?" + here : ""), text: "← Newest" }) : null,
        page.next ? el("a", { id: "older", href: "#/tasks?" + new URLSearchParams([...here, ["before", page.next]]), text: "Older →" }) : null);
    },
  };
}

function taskView(root, params) {
  const key = params.get("key") || "";
  const head = el("section", { id: "task" });
  const history = el("section", { id: "history" });
  replace(root, el("h2", {}, "Task ", el("span", { class: "key", id: "task-key", text: key })), head, history);

  return {
    async refresh() {
      let detail;
      try { detail = await api("task?" + new URLSearchParams({ key })); }
      catch (e) { replace(head, el("p", { class: "error", text: e.message })); replace(history); return; }
      const t = detail.task;
      const row = (label, value) => value === null || value === undefined || value === "" ? null : el("tr", {}, el("th", { text: label }), el("td", { text: value }));
      const live = t.status !== "Finished";
      replace(head,
        el("table", { class: "fields" }, el("tbody", {},
          row("Type", t.type), row("User", t.user), row("Status", t.status), row("Outcome", t.outcome), row("Message", t.message),
          row("Attempts", t.attempts), row("Created", when(t.createdAt)), row("Started", when(t.startedAt)),
          row("Running for", age(t.runningForSeconds)), row("Worker", t.worker), row("Host", t.host),
          row("Finished", when(t.finishedAt)), row("Last run took", age(t.lastDurationSeconds)), row("Max running", t.maxRunning),
          row("Time limit", age(t.executionTimeoutSeconds)), row("Data problem", t.dataError))),
        el("h3", { text: "Data" }), el("pre", { class: "data", text: JSON.stringify(detail.data, null, 2) }),
        el("div", { class: "actions" },
          live ? action("Cancel", "Cancel task " + key + "? A running task is told at its worker's next heartbeat.", "tasks/cancel", { key }) : null,
          live ? action("Force finish", "Force finish task " + key + "? It ends at once as ForceFinished; its worker can write to it no more.", "tasks/finish", { key }, "danger") : null,
          live ? null : action("Re-run", "Run task " + key + " again, as a new first attempt?", "tasks/rerun", { key }),
          live ? null : action("Remove", "Remove task " + key + "? Its key is free at once.", "tasks/remove", { key }, "danger")));
      replace(history, el("h3", { text: "Attempts" }), detail.history.length === 0 ? el("p", { class: "note", text: "No attempt has ended yet." }) :
        detail.history.map(a => el("article", { class: "attempt", "data-attempt": a.attempt, "data-outcome": a.outcome },
          el("h4", {}, "Attempt " + a.attempt + ": ", el("span", { class: "outcome outcome-" + a.outcome, text: a.outcome })),
          el("p", { class: "note", text: [when(a.startedAt), a.durationSeconds === null ? "" : "took " + age(a.durationSeconds), a.host, a.processor].filter(x => x).join(" · ") }),
          a.message ? el("p", { class: "message", text: a.message }) : null,
          a.output ? el("pre", { class: "output", text: a.output }) : null)));
    },
  };
}

function workersView(root) {
  const list = el("section", { id: "worker-list" });
  replace(root, el("h2", { text: "Workers" }), list);
  return {
    async refresh() {
      const { workers } = await api("workers");
      replace(list, workers.length === 0 ? el("p", { class: "note", text: "No worker has a session." }) :
        table(["Session", "Host", "Pid", "Processors", "Running", "Last beat", "State", ""], workers.map(w => el("tr", { "data-id": w.id },
          el("td", { text: w.id }), el("td", { text: w.host }), el("td", { class: "num", text: w.pid }),
          el("td", { text: w.processors + " " + w.processorType }), el("td", { class: "num", text: w.running }),
          el("td", { text: age(w.lastBeatAgeSeconds) + " ago" }), el("td", { class: "state-" + w.state, text: w.state }),
          el("td", {}, w.state === "Alive" ? action("Stop", "Stop worker " + w.id + "? It leases nothing more and exits when its running tasks end.", "workers/stop", { id: w.id }, "danger") : null))),
          { id: "workers" }));
    },
  };
}

function schedulesView(root) {
  const list = el("section", { id: "schedule-list" });
  replace(root, el("h2", { text: "Schedules" }), list);
  return {
    async refresh() {
      const { schedules } = await api("schedules");
      replace(list, schedules.length === 0 ? el("p", { class: "note", text: "No schedule is registered." }) :
        table(["Name", "Cron", "Type", "Next fire", "Last fire", "Last outcome", "Paused", ""], schedules.map(s => el("tr", { "data-name": s.name },
          el("td", { text: s.name }), el("td", { text: s.cron + " " + s.timeZone }), el("td", { text: s.type }),
          el("td", { text: s.paused ? "" : when(s.nextFireAt) }), el("td", {}, s.lastFireKey ? taskLink(s.lastFireKey) : null, " ", when(s.lastFireAt)),
          el("td", { text: s.lastFireOutcome ?? s.lastFireStatus ?? "" }), el("td", { text: s.paused ? "paused" : "" }),
          el("td", {}, s.paused ? action("Resume", "Resume schedule " + s.name + "?", "schedules/resume", { name: s.name })
            : action("Suspend", "Suspend schedule " + s.name + "? It fires no more until resumed.", "schedules/suspend", { name: s.name })))),
          { id: "schedules" }));
    },
  };
}

const views = { "/": overviewView, "/tasks": tasksView, "/task": taskView, "/workers": workersView, "/schedules": schedulesView };

// One refresh at a time; a refresh that ends after the view changed marks nothing, and the new view loads at once.
let mounted = 0;
let failing = false;
async function refresh() {
  if (!current || refreshing || document.getElementById("confirm").open) return;
  refreshing = true;
  const generation = mounted;
  try {
    await current.refresh();
    if (generation === mounted) {
      document.body.dataset.loaded = "true";
      if (failing) { showStatus(""); failing = false; }
    }
  }
  catch (e) { showStatus(e.message, true); failing = true; }
  finally {
    refreshing = false;
    if (generation !== mounted) refresh();
  }
}

function mount() {
  const { path, params } = hashRoute();
  const make = views[path] || overviewView;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("here", link.getAttribute("href") === "#" + (path === "/task" ? "/tasks" : path));
  document.body.dataset.loaded = "false";
  mounted++;
  current = make(document.getElementById("view"), params);
  refresh();
}

async function start() {
  session = await api("session");
  document.getElementById("queue").textContent = session.queue;
  document.getElementById("mode").textContent = session.readOnly ? "read-only" : "";
  document.body.classList.toggle("read-only", session.readOnly);
  window.addEventListener("hashchange", mount);
  mount();
  setInterval(refresh, session.refreshMs);
}

start().catch(e => showStatus("The dashboard could not start: " + e.message, true));
