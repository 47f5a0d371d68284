// The backup console: every action is a call of the backup API with the session cookie (same routes and
// permissions as the CLI). The timeline is drawn as inline SVG from timeline.json (the archive's index).
"use strict";
(function () {
  const root = document.getElementById("console");
  if (!root) return;
  const API = root.dataset.api;
  const CONSOLE = root.dataset.console;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const state = {
    backups: [],
    archive: null,
    span: 7 * 24 * 3600 * 1000,
    end: null, // null: the window ends now
    cursor: null,
    dryRunFor: null, // "id|path" of the dry run the user has seen
    watching: null, // {backup, restore}
    rates: {}, // backup id -> [time, nodes] of the previous poll
  };

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(path, init);
    let doc = null;
    try {
      doc = await answer.json();
    } catch (e) {
      doc = null;
    }
    if (answer.status === 401) {
      window.location.assign(CONSOLE + "/login");
      throw new ApiError(401, "signed out");
    }
    if (!answer.ok) {
      const message = (doc && doc.errors && doc.errors.join("; ")) || answer.statusText;
      throw new ApiError(answer.status, answer.status === 403 ? "Not permitted: " + message : message);
    }
    return doc;
  }

  function notice(error) {
    const box = $("notice");
    if (!error) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.hidden = false;
    box.textContent = error.message || String(error);
  }

  // ------------------------------------------------------------------ formatting
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }
  function svg(tag, attrs, title) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (title) node.append(Object.assign(document.createElementNS(SVG, "title"), { textContent: title }));
    return node;
  }
  function svgText(attrs, text) {
    const node = svg("text", attrs);
    node.textContent = text;
    return node;
  }
  const utc = (ms) => (ms == null ? "–" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"));
  const shortStatus = (s) => (s || "").replace("STATUS_", "");
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function age(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  const lastRestore = (b) => (b.restores && b.restores.length ? b.restores[b.restores.length - 1] : null);

  // ------------------------------------------------------------------ backups, the running job
  async function refreshBackups() {
    const doc = await api("GET", API + "/list");
    state.backups = (doc.backup_info || []).slice().sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
    renderBackups();
    renderJob();
    renderRestoreChoices();
    drawTimeline();
  }

  const shown = {}; // what each part last drew: redrawn only on a change, so keyboard focus stays put
  function changed(part, value) {
    const text = JSON.stringify(value);
    if (shown[part] === text) return false;
    shown[part] = text;
    return true;
  }

  function renderBackups() {
    const rows = state.backups.map((b) => [b.id, b.status, b.size, (lastRestore(b) || {}).status, age(b.timestamp)]);
    if (!changed("backups", rows)) return;
    const body = $("backup-table").tBodies[0];
    body.replaceChildren();
    if (!state.backups.length) {
      body.append(el("tr", {}, el("td", { colspan: "8", text: "No backups yet." })));
      return;
    }
    for (const b of state.backups) {
      const restore = lastRestore(b);
      const components = Object.keys(b.component_status || {}).join(", ");
      const actions = el("td");
      if (b.status === "STATUS_READY") {
        actions.append(
          el("button", {
            type: "button",
            text: "Restore…",
            "aria-label": "Restore " + b.label,
            onclick: () => chooseBackup(b.id, true),
          })
        );
      }
      const drill = b.drill ? shortStatus(b.drill.status || b.drill.result || "") : "–";
      body.append(
        el(
          "tr",
          { "data-id": b.id },
          el("th", { scope: "row", title: b.id, text: b.label + (b.safety ? " (safety)" : "") }),
          el("td", { class: "status " + shortStatus(b.status).toLowerCase(), text: shortStatus(b.status) }),
          el("td", { text: components }),
          el("td", { text: bytes(b.size || 0) }),
          el("td", { text: age(b.timestamp), title: b.timestamp }),
          el("td", { text: restore ? shortStatus(restore.status) + ", " + age(restore.timestamp) + " ago" : "–" }),
          el("td", { text: drill }),
          actions
        )
      );
    }
  }

  function renderJob() {
    const box = $("job-body");
    const running = state.backups.filter(
      (b) => b.progress || b.status === "STATUS_BACKING_UP" || (lastRestore(b) || {}).status === "STATUS_RESTORING"
    );
    box.replaceChildren();
    if (!running.length) {
      box.append(el("p", { text: "No job is running." }));
      return;
    }
    for (const b of running) {
      const p = b.progress || {};
      const kind = b.status === "STATUS_BACKING_UP" ? "Backup" : "Restore";
      const lines = [kind + " of " + b.label + ": " + (p.phase || "running")];
      if (p.nodes != null) {
        let counts = p.nodes + (p.total ? " of " + p.total : "") + " znodes";
        const prev = state.rates[b.id];
        const now = Date.now();
        if (prev && now > prev[0] && p.nodes >= prev[1]) {
          const rate = ((p.nodes - prev[1]) * 1000) / (now - prev[0]);
          counts += ", " + Math.round(rate) + " znodes/s";
          if (p.total && rate > 0) counts += ", about " + Math.ceil((p.total - p.nodes) / rate) + " s left";
        }
        state.rates[b.id] = [now, p.nodes];
        lines.push(counts);
      } else if (!b.progress) {
        lines.push("(its progress shows on the leading master's console)");
      }
      const cancel = el("button", {
        type: "button",
        text: "Cancel",
        "aria-label": "Cancel the job on " + b.label,
        onclick: async () => {
          try {
            await api("POST", API + "/cancel", { id: b.id });
            notice(null);
          } catch (e) {
            notice(e);
          }
          refreshBackups().catch(notice);
        },
      });
      box.append(el("div", { class: "job" }, ...lines.map((t) => el("p", { text: t })), cancel));
    }
  }

  // ------------------------------------------------------------------ restore: dry run first, then the label
  function renderRestoreChoices() {
    const select = $("restore-backup");
    const chosen = select.value;
    const ready = state.backups.filter((b) => b.status === "STATUS_READY");
    if (!changed("choices", ready.map((b) => b.id))) return;
    select.replaceChildren(
      ...ready.map((b) => el("option", { value: b.id, text: b.label + " — " + utc(Date.parse(b.timestamp)) }))
    );
    if (chosen && ready.some((b) => b.id === chosen)) select.value = chosen;
  }

  function chooseBackup(id, focus) {
    const select = $("restore-backup");
    select.value = id;
    invalidateDryRun();
    if (focus) $("restore-path").focus();
  }

  const restoreKey = () => $("restore-backup").value + "|" + $("restore-path").value.trim();
  const chosenBackup = () => state.backups.find((b) => b.id === $("restore-backup").value);

  function invalidateDryRun() {
    state.dryRunFor = null;
    $("dry-run-result").replaceChildren();
    $("confirm").hidden = true;
    $("confirm-label").value = "";
    $("restore-start").disabled = true;
  }

  function restoreBody(dryRun) {
    const body = { id: $("restore-backup").value };
    const path = $("restore-path").value.trim();
    if (path) body.paths = [path];
    if (dryRun) body.dry_run = true;
    return body;
  }

  async function dryRun() {
    const backup = chosenBackup();
    if (!backup) {
      notice(new Error("choose a READY backup first"));
      return;
    }
    const key = restoreKey();
    const out = $("dry-run-result");
    out.replaceChildren(el("p", { text: "Computing the difference…" }));
    $("dry-run").disabled = true;
    try {
      const diff = await api("POST", API + "/restore", restoreBody(true));
      if (key !== restoreKey()) return; // the choice changed meanwhile: this difference is not for it
      notice(null);
      const summary =
        "Dry run: the restore would create " + diff.created + ", update " + diff.updated + ", delete " +
        diff.deleted + " znodes (" + diff.unchanged + " unchanged).";
      const list = el("ul", { class: "changes", "aria-label": "Changes the restore would make" });
      for (const change of diff.changes.slice(0, 50)) list.append(el("li", { text: change.op + " " + change.path }));
      const more = diff.changes.length - 50 + (diff.left_out || 0);
      out.replaceChildren(el("p", { id: "dry-run-summary", text: summary }), list);
      if (more > 0) out.append(el("p", { text: "… and " + more + " more." }));
      state.dryRunFor = key;
      $("confirm-expected").textContent = backup.label;
      $("confirm").hidden = false;
      $("confirm-label").focus();
      checkConfirm();
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", text: e.message }));
    } finally {
      $("dry-run").disabled = false;
    }
  }

  function checkConfirm() {
    const backup = chosenBackup();
    const ok = backup && state.dryRunFor === restoreKey() && $("confirm-label").value === backup.label;
    $("restore-start").disabled = !ok;
  }

  async function startRestore() {
    checkConfirm();
    if ($("restore-start").disabled) return;
    const backup = chosenBackup();
    $("restore-start").disabled = true;
    try {
      const started = await api("POST", API + "/restore", restoreBody(false));
      notice(null);
      state.watching = { backup: backup.id, restore: started.backup_info.id, label: backup.label };
      $("restore-status").textContent = "Restore of " + backup.label + " started.";
      invalidateDryRun();
      watchRestore();
    } catch (e) {
      $("restore-status").textContent = e.message;
      $("restore-start").disabled = false;
    }
  }

  async function watchRestore() {
    const w = state.watching;
    if (!w) return;
    try {
      const doc = await api("GET", API + "/list?prefix=" + encodeURIComponent(w.backup) + "&wait=10");
      const b = (doc.backup_info || []).find((x) => x.id === w.backup);
      const r = b && (b.restores || []).find((x) => x.id === w.restore);
      if (!r) throw new Error("restore " + w.restore + " is not in the catalog");
      const phase = b.progress && b.progress.phase ? " (" + b.progress.phase + ")" : "";
      let text = "Restore of " + w.label + ": " + shortStatus(r.status) + phase;
      if (r.status !== "STATUS_RESTORING") {
        const stats = Object.values(r.component_status || {})
          .map((c) => c.stats)
          .filter(Boolean);
        const sum = (k) => stats.reduce((n, s) => n + (s[k] || 0), 0);
        if (stats.length) text += ": created " + sum("created") + ", updated " + sum("updated") + ", deleted " + sum("deleted");
        if (r.reason) text += " — " + r.reason;
        state.watching = null;
      }
      $("restore-status").textContent = text;
      $("restore-status").dataset.state = shortStatus(r.status);
      refreshBackups().catch(notice);
    } catch (e) {
      $("restore-status").textContent = e.message;
    }
    if (state.watching) setTimeout(watchRestore, 200);
  }

  // ------------------------------------------------------------------ schedules
  async function refreshSchedules() {
    const body = $("schedule-table").tBodies[0];
    let doc;
    try {
      doc = await api("GET", API + "/schedules");
    } catch (e) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "5", text: e.message })));
      return;
    }
    body.replaceChildren();
    if (!doc.schedules.length) body.append(el("tr", {}, el("td", { colspan: "5", text: "No schedules." })));
    for (const s of doc.schedules) {
      const last = state.backups.find((b) => b.id === s.last_backup_id);
      body.append(
        el(
          "tr",
          {},
          el("th", { scope: "row", text: s.name }),
          el("td", { text: s.cron }),
          el("td", { text: s.paused ? "paused" : utc(Date.parse(s.next_run)) }),
          el("td", { text: s.last_run_at ? utc(Date.parse(s.last_run_at)) : "never" }),
          el("td", { text: last ? shortStatus(last.status) : s.last_backup_id ? "deleted" : "–" })
        )
      );
    }
  }

  // ------------------------------------------------------------------ the timeline
  async function refreshTimeline() {
    const answer = await fetch(CONSOLE + "/timeline.json", { credentials: "same-origin" });
    if (!answer.ok) throw new ApiError(answer.status, "timeline: " + answer.statusText);
    state.archive = await answer.json();
    renderRanges();
    drawTimeline();
  }

  function renderRanges() {
    const body = $("ranges").tBodies[0];
    body.replaceChildren();
    const a = state.archive;
    if (!a.configured) {
      body.append(el("tr", {}, el("td", { colspan: "7", text: "No continuous archive is configured (--zk-archive)." })));
      return;
    }
    for (const m of a.masters) {
      for (const g of m.generations) {
        const rows = g.ranges.length ? g.ranges : [null];
        for (const r of rows) {
          body.append(
            el(
              "tr",
              {},
              el("th", { scope: "row", text: m.stream }),
              el("td", { text: g.id + (g.ended ? " (ended: " + g.ended + ")" : "") }),
              el("td", { text: r ? utc(r.first_ms) : "nothing restorable" }),
              el("td", { text: r ? utc(r.last_ms) : "–" }),
              el("td", { text: String(g.snapshots.length) }),
              el("td", { text: String(g.gaps.length) }),
              el("td", { text: g.reason || "–" })
            )
          );
        }
      }
    }
  }

  function windowBounds() {
    const end = state.end == null ? Date.now() + state.span * 0.02 : state.end;
    return [end - state.span, end];
  }

  function drawTimeline() {
    const chart = $("timeline-chart");
    if (!state.archive) return;
    const masters = state.archive.masters;
    const [t0, t1] = windowBounds();
    const width = Math.max(chart.clientWidth || 800, 400);
    const left = 90;
    const rowH = 34;
    const height = 40 + Math.max(1, masters.length) * rowH + 30;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 10);
    const clip = (t) => Math.min(Math.max(x(t), left), width - 10);
    const root = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, "aria-hidden": "true" });
    // time axis
    for (let i = 0; i <= 6; i++) {
      const t = t0 + ((t1 - t0) * i) / 6;
      root.append(svg("line", { x1: x(t), x2: x(t), y1: 20, y2: height - 24, class: "grid-line" }));
      const label = state.span > 2 * 86400000 ? utc(t).slice(5, 16) : utc(t).slice(11, 19);
      root.append(svgText({ x: x(t), y: height - 8, class: "axis", "text-anchor": "middle" }, label));
    }
    masters.forEach((m, i) => {
      const y = 30 + i * rowH;
      root.append(svgText({ x: 4, y: y + 16, class: "label" }, m.stream));
      for (const g of m.generations) {
        if (g.started_ms && g.started_ms >= t0 && g.started_ms <= t1) {
          root.append(svg("line", { x1: x(g.started_ms), x2: x(g.started_ms), y1: y - 4, y2: y + 26, class: "generation" },
            "new history " + g.id + ": " + (g.reason || "")));
        }
        for (const r of g.ranges) {
          if (r.last_ms < t0 || r.first_ms > t1) continue;
          const x0 = clip(r.first_ms);
          const w = Math.max(2, clip(r.last_ms) - x0);
          root.append(svg("rect", { x: x0, y, width: w, height: 22, class: "range" },
            m.stream + " " + g.id + ": restorable " + utc(r.first_ms) + " – " + utc(r.last_ms)));
        }
        for (const gap of g.gaps) {
          if (gap.from_ms == null || gap.to_ms == null || gap.to_ms < t0 || gap.from_ms > t1) continue;
          const x0 = clip(gap.from_ms);
          root.append(svg("rect", { x: x0, y, width: Math.max(2, clip(gap.to_ms) - x0), height: 22, class: "gap" },
            "gap: segments missing " + gap.after + " – " + gap.before));
        }
        for (const s of g.snapshots) {
          if (s.time_ms == null || s.time_ms < t0 || s.time_ms > t1) continue;
          root.append(svg("line", { x1: x(s.time_ms), x2: x(s.time_ms), y1: y + 16, y2: y + 26, class: "snapshot" },
            "snapshot " + s.zxid + " (" + bytes(s.bytes) + ")"));
        }
      }
    });
    // the backups, as markers along the top
    for (const b of state.backups) {
      const t = Date.parse(b.timestamp);
      if (t < t0 || t > t1) continue;
      const cx = x(t);
      const marker = svg("path", { d: `M${cx} 6 l6 7 l-6 7 l-6 -7 z`, class: "backup " + shortStatus(b.status).toLowerCase() },
        "backup " + b.label + " (" + shortStatus(b.status) + ") " + utc(t));
      if (b.status === "STATUS_READY") marker.addEventListener("click", () => chooseBackup(b.id, true));
      root.append(marker);
    }
    if (state.cursor != null && state.cursor >= t0 && state.cursor <= t1) {
      root.append(svg("line", { x1: x(state.cursor), x2: x(state.cursor), y1: 4, y2: height - 24, class: "cursor" }));
    }
    root.addEventListener("click", (ev) => {
      if (ev.target.classList && ev.target.classList.contains("backup")) return;
      const box = root.getBoundingClientRect();
      const px = ev.clientX - box.left;
      if (px < left) return;
      state.cursor = t0 + ((px - left) / (width - left - 10)) * (t1 - t0);
      pickMoment(state.cursor);
    });
    chart.replaceChildren(root);
    $("timeline-window").textContent = utc(t0) + " – " + utc(t1);
  }

  function pickMoment(t) {
    const found = [];
    for (const m of state.archive.masters) {
      for (const g of m.generations) {
        for (const r of g.ranges) if (r.first_ms <= t && t <= r.last_ms) found.push(m.stream + " (" + g.id + ")");
      }
    }
    const when = new Date(t).toISOString().replace(/\.\d+Z$/, "Z");
    const text = found.length
      ? when + " is restorable from " + found.join(", ") + ". Point-in-time restore: use dcos-zk restore --repo " +
        (state.archive.repository || "REPO") + " --to-time " + when + " (not from this page yet)."
      : when + ": the archive cannot restore this moment.";
    $("moment").textContent = text;
    drawTimeline();
  }

  function zoom(span) {
    const [t0, t1] = windowBounds();
    const onCursor = state.cursor != null && state.cursor >= t0 && state.cursor <= t1;
    state.span = Math.min(Math.max(span, 60000), 28 * 86400000);
    if (!onCursor && state.end == null) return drawTimeline(); // a window ending now keeps ending now
    const mid = onCursor ? state.cursor : (t0 + t1) / 2;
    state.end = Math.min(mid + state.span / 2, Date.now() + state.span * 0.02);
    if (state.end >= Date.now()) state.end = null;
    drawTimeline();
  }

  function pan(direction) {
    const [, t1] = windowBounds();
    state.end = t1 + (direction * state.span) / 2;
    if (state.end >= Date.now()) state.end = null;
    drawTimeline();
  }

  function chartKey(ev) {
    const [t0, t1] = windowBounds();
    const step = (t1 - t0) / 50;
    // The cursor starts near the window's end: the latest moments are the ones usually wanted.
    if (state.cursor == null || state.cursor < t0 || state.cursor > t1) state.cursor = t1 - (t1 - t0) / 20;
    if (ev.key === "ArrowLeft") state.cursor -= step;
    else if (ev.key === "ArrowRight") state.cursor += step;
    else if (ev.key === "+" || ev.key === "=") return zoom(state.span / 4), ev.preventDefault();
    else if (ev.key === "-") return zoom(state.span * 4), ev.preventDefault();
    else if (ev.key === "Enter" || ev.key === " ") return pickMoment(state.cursor), ev.preventDefault();
    else return;
    ev.preventDefault();
    drawTimeline();
  }

  // ------------------------------------------------------------------ wiring
  document.querySelectorAll("#timeline [data-span]").forEach((b) =>
    b.addEventListener("click", () => zoom(Number(b.dataset.span)))
  );
  document.querySelectorAll("#timeline [data-pan]").forEach((b) =>
    b.addEventListener("click", () => pan(Number(b.dataset.pan)))
  );
  document.querySelector("#timeline [data-now]").addEventListener("click", () => {
    state.end = null;
    drawTimeline();
  });
  $("timeline-chart").addEventListener("keydown", chartKey);
  $("restore-backup").addEventListener("change", invalidateDryRun);
  $("restore-path").addEventListener("input", invalidateDryRun);
  $("confirm-label").addEventListener("input", checkConfirm);
  $("dry-run").addEventListener("click", dryRun);
  $("restore-start").addEventListener("click", startRestore);
  $("restore-form").addEventListener("submit", (ev) => ev.preventDefault());
  window.addEventListener("resize", drawTimeline);

  async function poll() {
    try {
      await refreshBackups();
      notice(null);
    } catch (e) {
      notice(e);
    }
    setTimeout(poll, 2000);
  }
  poll().then(() => refreshSchedules());
  refreshTimeline().catch(notice);
  setInterval(() => refreshTimeline().catch(notice), 30000);
  setInterval(() => refreshSchedules(), 30000);
})();
