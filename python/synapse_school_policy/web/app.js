// The audit page of synapse-school-policy. No build step, no library.
//
// Security rules this file keeps:
// - the access token lives in the `session` variable only: never in the
//   URL, localStorage, sessionStorage or a cookie; reloading signs out;
// - every value from the server is put into the page with textContent or
//   as an SVG attribute, never as HTML (user ids and event types are chosen
//   by whoever acted);
// - requests go to this homeserver only (the page's own origin).
"use strict";

(function () {
  const API = "/_synapse/client/school_policy/v1";
  const CS = "/_matrix/client/v3";
  const PAGE_SIZE = 50;
  const EXPORT_MAX = 100000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd"];

  const TEXT = {
    en: {
      title: "School policy audit", language: "Language", logout: "Sign out",
      signin: "Sign in with your school account", username: "User name", password: "Password",
      signin_button: "Sign in", sso: "Sign in with single sign-on", refused: "No access",
      schools_status: "Schools", school: "School", opted_in: "Messenger enabled",
      teachers_room: "Teachers' room", announcement_room: "Announcement room",
      pending: "Reconciliation pending", last_error: "Last error", chart: "Denials per rule over time",
      period: "Period", show: "Show", records: "Audit records", since: "From", until: "Until",
      rule: "Rule", user: "User", apply: "Apply", export: "Export CSV", time: "Time",
      actor: "Actor", target: "Target", room: "Room", event_type: "Event type", callback: "Callback",
      enforced: "Enforced", newer: "Newer", older: "Older", reads: "Who read the audit",
      reader: "Reader", access: "Access", what: "What", filter: "Filter",
      footer: "Shows what the school policy blocked. It holds no message content.",
      any: "(any)", all_schools: "(all schools)", yes: "yes", no: "no", none: "none",
      page: "Page", no_records: "No records match.", no_denials: "No denials in this period.",
      scope_all: "You can read the audit of every school.",
      scope_all_ro: "You can read the audit of every school (read only).",
      scope_schools: "You can read the audit of: ",
      report_only: "report only", exporting: "Exporting…", export_capped: "Export stopped at ",
      bad_login: "Sign-in failed: ",
      kind: "Kind", kind_any: "(denials and actions)", kind_denial: "Denials",
      kind_action: "What the module did", count: "Count", group: "Group", reason: "Reason",
      action: "action", until_ts: " to ",
    },
    de: {
      title: "Audit der Schulrichtlinien", language: "Sprache", logout: "Abmelden",
      signin: "Mit dem Schulkonto anmelden", username: "Benutzername", password: "Passwort",
      signin_button: "Anmelden", sso: "Mit Single Sign-on anmelden", refused: "Kein Zugriff",
      schools_status: "Schulen", school: "Schule", opted_in: "Messenger freigeschaltet",
      teachers_room: "Lehrerzimmer", announcement_room: "Schulhof (Ankündigungen)",
      pending: "Abgleich ausstehend", last_error: "Letzter Fehler", chart: "Ablehnungen je Regel im Zeitverlauf",
      period: "Zeitraum", show: "Anzeigen", records: "Audit-Einträge", since: "Von", until: "Bis",
      rule: "Regel", user: "Nutzer", apply: "Anwenden", export: "CSV exportieren", time: "Zeit",
      actor: "Handelnde Person", target: "Ziel", room: "Raum", event_type: "Ereignistyp",
      callback: "Callback", enforced: "Durchgesetzt", newer: "Neuere", older: "Ältere",
      reads: "Wer das Audit gelesen hat", reader: "Leser", access: "Zugriff", what: "Was",
      filter: "Filter",
      footer: "Zeigt, was die Schulrichtlinien blockiert haben. Nachrichteninhalte sind nicht enthalten.",
      any: "(alle)", all_schools: "(alle Schulen)", yes: "ja", no: "nein", none: "keiner",
      page: "Seite", no_records: "Keine passenden Einträge.", no_denials: "Keine Ablehnungen in diesem Zeitraum.",
      scope_all: "Sie können das Audit aller Schulen lesen.",
      scope_all_ro: "Sie können das Audit aller Schulen lesen (nur lesend).",
      scope_schools: "Sie können das Audit dieser Schulen lesen: ",
      report_only: "nur protokolliert", exporting: "Export läuft…", export_capped: "Export beendet nach ",
      bad_login: "Anmeldung fehlgeschlagen: ",
      kind: "Art", kind_any: "(Ablehnungen und Aktionen)", kind_denial: "Ablehnungen",
      kind_action: "Was das Modul getan hat", count: "Anzahl", group: "Gruppe", reason: "Grund",
      action: "Aktion", until_ts: " bis ",
    },
  };

  // Everything the page knows, in memory only.
  const session = { token: null, access: null, rules: {}, schools: [] };
  let lang = (navigator.language || "en").toLowerCase().startsWith("de") ? "de" : "en";
  let auditPages = [];   // the `from` tokens of the pages seen, for "Newer"
  let auditNext = null;
  let readsNext = null;
  let lastChart = null;

  const $ = (id) => document.getElementById(id);
  const t = (key) => TEXT[lang][key] || TEXT.en[key] || key;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    $("lang").value = lang;
    document.querySelectorAll("[data-t]").forEach((node) => { node.textContent = t(node.dataset.t); });
    document.title = t("title");
    if (session.access) {
      fillSelects();
      showScope();
      reloadStatus();
      renderAuditRows(lastAuditRecords);
      $("page-no").textContent = t("page") + " " + (auditPages.length + 1);
      if (lastChart) drawChart(lastChart);
    }
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || ("HTTP " + status));
      this.status = status;
      this.errcode = body && body.errcode;
    }
  }

  async function call(method, path, query, body) {
    const url = new URL(path, window.location.origin);
    if (query) {
      for (const [key, value] of Object.entries(query)) {
        if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
      }
    }
    const headers = { "Accept": "application/json" };
    if (session.token) headers["Authorization"] = "Bearer " + session.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url.toString(), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // ---- signing in ----

  async function offerSso() {
    try {
      const flows = await call("GET", CS + "/login");
      const sso = (flows.flows || []).some((f) => f.type === "m.login.sso");
      $("sso-box").hidden = !sso;
    } catch (e) { /* password login stays */ }
  }

  function pageUrl() {
    const url = new URL(window.location.href);
    url.search = "";
    url.hash = "";
    return url.toString();
  }

  async function signedIn(loginResponse) {
    session.token = loginResponse.access_token;
    $("password").value = "";
    try {
      session.access = await call("GET", API + "/me");
    } catch (e) {
      $("login-view").hidden = true;
      $("refused-view").hidden = false;
      $("refused-reason").textContent = e.message;
      $("logout").hidden = false;
      $("whoami").textContent = loginResponse.user_id || "";
      return;
    }
    $("whoami").textContent = session.access.user_id;
    $("logout").hidden = false;
    $("login-view").hidden = true;
    $("audit-view").hidden = false;
    const [rules] = await Promise.all([call("GET", API + "/rules"), reloadStatus()]);
    session.rules = {};
    for (const rule of rules.rules) session.rules[rule.id] = rule;
    fillSelects();
    showScope();
    await Promise.all([loadAudit(null), loadChart(), loadReads(null)]);
  }

  async function passwordLogin(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const response = await call("POST", CS + "/login", null, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: $("username").value },
        password: $("password").value,
        initial_device_display_name: "School policy audit page",
      });
      await signedIn(response);
    } catch (e) {
      $("login-error").textContent = t("bad_login") + e.message;
    }
  }

  async function tokenLogin(loginToken) {
    try {
      const response = await call("POST", CS + "/login", null, {
        type: "m.login.token", token: loginToken,
        initial_device_display_name: "School policy audit page",
      });
      await signedIn(response);
    } catch (e) {
      $("login-error").textContent = t("bad_login") + e.message;
    }
  }

  async function logout() {
    try { await call("POST", CS + "/logout", null, {}); } catch (e) { /* token gone either way */ }
    session.token = null;
    session.access = null;
    window.location.replace(pageUrl());
  }

  // ---- scope, status, selects ----

  function showScope() {
    const a = session.access;
    if (a.access === "school_admin") $("scope-note").textContent = t("scope_schools") + a.schools.join(", ");
    else if (a.may_write) $("scope-note").textContent = t("scope_all");
    else $("scope-note").textContent = t("scope_all_ro");
  }

  async function reloadStatus() {
    const status = await call("GET", API + "/status");
    const body = $("status-table").tBodies[0];
    clear(body);
    session.schools = Object.keys(status.schools);
    for (const [school, s] of Object.entries(status.schools)) {
      const row = el("tr");
      row.append(el("td", school), el("td", s.messenger ? t("yes") : t("no")),
        el("td", s.teachers_room || t("none")), el("td", s.announcement_room || t("none")),
        el("td", s.pending), el("td", s.last_error || ""));
      body.append(row);
    }
  }

  function schoolChoices() {
    const a = session.access;
    return a.access === "school_admin" ? a.schools : session.schools;
  }

  function fillSelect(select, options, anyLabel) {
    const keep = select.value;
    clear(select);
    if (anyLabel !== null) select.append(new Option(anyLabel, ""));
    for (const [value, label] of options) select.append(new Option(label, value));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  function ruleName(id) {
    const rule = session.rules[id];
    return rule ? rule.name[lang] : id;
  }

  function fillSelects() {
    const schools = schoolChoices().map((s) => [s, s]);
    const several = session.access.access !== "school_admin" || schools.length > 1;
    fillSelect($("f-school"), schools, several ? t("all_schools") : null);
    fillSelect($("chart-school"), schools, several ? t("all_schools") : null);
    fillSelect($("f-rule"), Object.keys(session.rules).map((id) => [id, ruleName(id) + " (" + id + ")"]), t("any"));
  }

  // ---- the audit table ----

  function filterQuery() {
    const ms = (id) => {
      const value = $(id).value;
      if (!value) return null;
      const time = new Date(value).getTime();
      return Number.isFinite(time) && time > 0 ? time : null;
    };
    return {
      since: ms("f-since"), until: ms("f-until"), school: $("f-school").value || null,
      rule: $("f-rule").value || null, user: $("f-user").value.trim() || null,
      kind: $("f-kind").value || null,
    };
  }

  let lastAuditRecords = [];

  function renderAuditRows(records) {
    const body = $("audit-table").tBodies[0];
    clear(body);
    if (records.length === 0) {
      const row = el("tr");
      const cell = el("td", t("no_records"));
      cell.colSpan = 12;
      row.append(cell);
      body.append(row);
      return;
    }
    for (const r of records) {
      const row = el("tr");
      const action = r.kind === "action";
      // An action of the module names what it did where a denial names its rule.
      const rule = el("td", action ? r.action : ruleName(r.rule));
      rule.title = action ? t("action") + ": " + r.action
        : r.rule + (session.rules[r.rule] ? " — " + session.rules[r.rule].message[lang] : "");
      // A summary of a flood covers a time span.
      let when = new Date(r.ts).toLocaleString(lang);
      if (r.last_ts) when += t("until_ts") + new Date(r.last_ts).toLocaleTimeString(lang);
      row.append(el("td", when), rule, el("td", r.school || ""),
        el("td", r.actor || ""), el("td", r.target || ""), el("td", r.room_id || ""),
        el("td", r.event_type || ""), el("td", r.callback || ""),
        el("td", action ? "" : r.enforced ? t("yes") : t("report_only")),
        el("td", r.count || 1), el("td", r.group || ""), el("td", r.reason || ""));
      if (action) row.dataset.action = r.action;
      else row.dataset.rule = r.rule;
      body.append(row);
    }
  }

  async function loadAudit(from) {
    $("audit-error").textContent = "";
    try {
      const page = await call("GET", API + "/audit", { ...filterQuery(), limit: PAGE_SIZE, from });
      lastAuditRecords = page.records;
      renderAuditRows(page.records);
      auditNext = page.next;
      $("older").disabled = !auditNext;
      $("newer").disabled = auditPages.length === 0;
      $("page-no").textContent = t("page") + " " + (auditPages.length + 1);
    } catch (e) {
      $("audit-error").textContent = e.message;
    }
  }

  function csvField(value) {
    let text = value === null || value === undefined ? "" : String(value);
    // A spreadsheet runs a cell that starts with one of these as a formula;
    // a user id of the Matrix grammar (@localpart:server, lower-case
    // localpart) cannot be one and stays as it is.
    const userId = /^@[a-z0-9._=\-\/+]+:[A-Za-z0-9.\-:\[\]]+$/.test(text);
    if (!userId && /^[=+\-@\t\r]/.test(text)) text = "'" + text;
    return '"' + text.replace(/"/g, '""') + '"';
  }

  async function exportCsv() {
    const columns = ["id", "ts", "time", "kind", "count", "last_ts", "rule", "rule_name", "action",
      "school", "actor", "target", "room_id", "event_type", "callback", "enforced", "group", "reason",
      "worker"];
    const lines = [columns.join(",")];
    let from = null;
    let count = 0;
    $("audit-error").textContent = t("exporting");
    try {
      do {
        const page = await call("GET", API + "/audit", { ...filterQuery(), limit: 1000, from });
        for (const r of page.records) {
          const row = { ...r, time: new Date(r.ts).toISOString(), rule_name: r.rule ? ruleName(r.rule) : "" };
          lines.push(columns.map((c) => csvField(row[c])).join(","));
        }
        count += page.records.length;
        from = page.next;
      } while (from && count < EXPORT_MAX);
    } catch (e) {
      $("audit-error").textContent = e.message;
      return;
    }
    $("audit-error").textContent = from ? t("export_capped") + count : "";
    const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = "school-policy-audit.csv";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // ---- the chart (the server counts; the page only draws) ----

  async function loadChart() {
    const days = Number($("chart-period").value);
    const bucket = days <= 1 ? 3600000 : days <= 30 ? 86400000 / (days <= 7 ? 4 : 1) : 7 * 86400000;
    const until = Math.ceil(Date.now() / 60000) * 60000;
    const since = until - days * 86400000;
    try {
      const chart = await call("GET", API + "/audit/chart",
        { since, until, bucket, school: $("chart-school").value || null });
      lastChart = chart;
      drawChart(chart);
    } catch (e) {
      clear($("chart"));
      $("chart").append(el("p", e.message, "error"));
    }
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function drawChart(chart) {
    const box = $("chart");
    const legend = $("chart-legend");
    clear(box);
    clear(legend);
    const buckets = Math.ceil((chart.until - chart.since) / chart.bucket);
    const rules = [...new Set(chart.rows.map((r) => r[1]))].sort();
    if (chart.rows.length === 0) {
      box.append(el("p", t("no_denials")));
      return;
    }
    const totals = new Array(buckets).fill(0);
    const stacks = new Map();   // bucket -> [[rule, n], ...]
    for (const [start, rule, n] of chart.rows) {
      const b = Math.floor((start - chart.since) / chart.bucket);
      if (b < 0 || b >= buckets) continue;
      totals[b] += n;
      if (!stacks.has(b)) stacks.set(b, []);
      stacks.get(b).push([rule, n]);
    }
    const max = Math.max(1, ...totals);
    const W = 900, H = 260, left = 50, bottom = 30, top = 10;
    const plotW = W - left - 10, plotH = H - top - bottom;
    const barW = plotW / buckets;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
    root.append(svg("title", {}, t("chart")));
    const ticks = [...new Set([0, 1, 2, 3, 4].map((i) => Math.round(max * i / 4)))];
    for (const value of ticks) {
      const y = top + plotH - plotH * value / max;
      root.append(svg("line", { x1: left, x2: W - 10, y1: y, y2: y, stroke: "#e0e0e0" }));
      root.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", "font-size": 11 }, value));
    }
    const colour = (rule) => COLOURS[rules.indexOf(rule) % COLOURS.length];
    for (const [b, parts] of stacks) {
      let y = top + plotH;
      for (const [rule, n] of parts) {
        const h = plotH * n / max;
        y -= h;
        const rect = svg("rect", { x: left + b * barW + 1, y, width: Math.max(1, barW - 2), height: h, fill: colour(rule) });
        rect.append(svg("title", {}, `${ruleName(rule)}: ${n} (${new Date(chart.since + b * chart.bucket).toLocaleString(lang)})`));
        root.append(rect);
      }
    }
    const labels = Math.min(buckets, 8);
    for (let i = 0; i < labels; i++) {
      const b = Math.floor(i * buckets / labels);
      const date = new Date(chart.since + b * chart.bucket);
      const text = chart.bucket < 86400000 ? date.toLocaleString(lang, { day: "numeric", month: "numeric", hour: "2-digit" })
        : date.toLocaleDateString(lang);
      root.append(svg("text", { x: left + b * barW, y: H - 10, "font-size": 11 }, text));
    }
    box.append(root);
    for (const rule of rules) {
      const item = el("li");
      const swatch = svg("svg", { width: 12, height: 12, class: "swatch" });
      swatch.append(svg("rect", { width: 12, height: 12, fill: colour(rule) }));
      item.append(swatch, document.createTextNode(ruleName(rule)));
      legend.append(item);
    }
  }

  // ---- the read log ----

  async function loadReads(from) {
    const page = await call("GET", API + "/audit/reads", { limit: 20, from });
    const body = $("reads-table").tBodies[0];
    if (!from) clear(body);
    for (const r of page.records) {
      const row = el("tr");
      row.append(el("td", new Date(r.ts).toLocaleString(lang)), el("td", r.reader), el("td", r.access),
        el("td", r.op), el("td", JSON.stringify(r.query)));
      body.append(row);
    }
    readsNext = page.next;
    $("reads-older").disabled = !readsNext;
  }

  // ---- wiring ----

  document.addEventListener("DOMContentLoaded", () => {
    $("lang").addEventListener("change", () => { lang = $("lang").value; applyLanguage(); });
    $("login-form").addEventListener("submit", passwordLogin);
    $("sso").addEventListener("click", () => {
      window.location.assign(CS + "/login/sso/redirect?redirectUrl=" + encodeURIComponent(pageUrl()));
    });
    $("logout").addEventListener("click", logout);
    $("filter-form").addEventListener("submit", (e) => { e.preventDefault(); auditPages = []; loadAudit(null); });
    $("chart-form").addEventListener("submit", (e) => { e.preventDefault(); loadChart(); });
    $("older").addEventListener("click", () => { auditPages.push(auditNext); loadAudit(auditNext); });
    $("newer").addEventListener("click", () => { auditPages.pop(); loadAudit(auditPages[auditPages.length - 1] || null); });
    $("reads-older").addEventListener("click", () => loadReads(readsNext));
    $("export").addEventListener("click", exportCsv);
    applyLanguage();
    // Back from single sign-on: the one-time loginToken leaves the URL at
    // once, before it is exchanged for an access token kept in memory.
    const params = new URLSearchParams(window.location.search);
    const loginToken = params.get("loginToken");
    if (loginToken) {
      window.history.replaceState(null, "", pageUrl());
      tokenLogin(loginToken);
    }
    offerSso();
  });
})();
