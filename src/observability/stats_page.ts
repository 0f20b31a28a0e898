/**
 * The stats page served at `/` on the admin port: a table per frontend with
 * its backends, like HAProxy's stats page. Plain inline JavaScript fetches
 * `/stats` every second and redraws; values go in with `textContent`, so a
 * backend id or frontend name is never parsed as HTML. When `/stats` answers
 * 401 (lb has `--admin-token-file`) the page asks for the token once, keeps
 * it in the tab (sessionStorage) and sends it as `Authorization: Bearer` on
 * every fetch and POST.
 * @module
 */

/** The whole page: HTML, CSS and script in one document. */
export const STATS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lb stats</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
  h1 { font-size: 18px; margin: 0 0 .2em; }
  h2 { font-size: 15px; margin: 1.2em 0 .3em; }
  #meta { color: #555; }
  #status.stale { color: #b00; font-weight: bold; }
  table { border-collapse: collapse; min-width: 60em; }
  th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: right; white-space: nowrap; }
  th { background: #dde4ee; }
  td.id, th.id { text-align: left; font-family: monospace; }
  tr.frontend td { background: #eef2f8; font-weight: bold; }
  tr.UP td.state { background: #c8f0c0; }
  tr.DOWN td.state { background: #f4b8b0; }
  tr.DRAIN td.state { background: #a8c8f0; }
  tr.DOWN td { color: #800; }
  button { font-size: 11px; }
  #login { margin: 1em 0; padding: .6em 1em; border: 1px solid #bbb; background: #f6f6f6; }
  #login-error { color: #b00; margin-left: .6em; }
</style>
</head>
<body>
<h1>lb stats</h1>
<div id="meta"><span id="version"></span> · up <span id="uptime">?</span> · RSS <span id="rss">?</span> · threads <span id="threads">?</span>
  · <span id="status">loading…</span></div>
<noscript><p>This page needs JavaScript; the same data is at <a href="/stats">/stats</a> and
<a href="/metrics">/metrics</a>.</p></noscript>
<form id="login" hidden>
  <label>Admin token <input id="token" type="password" autocomplete="current-password"
    required></label>
  <button type="submit">Show stats</button><span id="login-error"></span>
</form>
<div id="frontends"></div>
<script>
"use strict";
const TOKEN_KEY = "lb-admin-token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let asking = false;

function authorization() {
  return token ? { authorization: "Bearer " + token } : {};
}

function askToken(message) {
  asking = true;
  document.getElementById("login-error").textContent = message;
  document.getElementById("login").hidden = false;
  document.getElementById("status").textContent = "needs the admin token";
  document.getElementById("token").focus();
}

document.getElementById("login").onsubmit = (event) => {
  event.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  asking = false;
  refresh();
};

const COLUMNS = ["Name", "State", "Weight", "Active", "Total", "Bytes in", "Bytes out",
  "Errors", "Check", ""];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function cell(cls, text, title) {
  const td = el("td", { class: cls }, String(text));
  if (title) td.title = title;
  return td;
}

function action(id, frontend, verb) {
  const button = el("button", { type: "button" }, verb);
  button.onclick = async () => {
    const url = "/backends/" + encodeURIComponent(id) + "/" + verb +
      "?frontend=" + encodeURIComponent(frontend);
    const response = await fetch(url, { method: "POST", headers: authorization() });
    if (response.status === 401) askToken("the token was refused");
    refresh();
  };
  return button;
}

function frontendTable(fe) {
  const errors = fe.ended.reset + fe.ended["no-backend"] + fe.ended.timeout;
  const table = el("table", { "data-frontend": fe.name });
  table.append(el("tr", {}, ...COLUMNS.map((c, i) => el("th", i === 0 ? { class: "id" } : {}, c))));
  const row = el("tr", { class: "frontend", "data-frontend": fe.name });
  row.append(
    cell("id", "Frontend " + fe.name + " (" + fe.addr + ", " + fe.balance + ")"),
    cell("state", "OPEN"), cell("weight", ""), cell("active", fe.active),
    cell("total", fe.total), cell("bytes-in", bytes(fe.bytesIn), fe.bytesIn + " bytes"),
    cell("bytes-out", bytes(fe.bytesOut), fe.bytesOut + " bytes"),
    cell("errors", errors, "reset " + fe.ended.reset + ", no backend " + fe.ended["no-backend"] +
      ", timeout " + fe.ended.timeout),
    cell("check", ""), cell("actions", ""));
  table.append(row);
  for (const be of fe.backends) {
    const tr = el("tr", { class: "backend " + be.state, "data-backend": be.id });
    const actions = el("td", { class: "actions" },
      action(be.id, fe.name, be.drained ? "enable" : "drain"));
    tr.append(
      cell("id", be.id + (be.backup ? " (backup)" : "")),
      cell("state", be.state), cell("weight", be.weight), cell("active", be.active),
      cell("total", be.total), cell("bytes-in", bytes(be.bytesIn), be.bytesIn + " bytes"),
      cell("bytes-out", bytes(be.bytesOut), be.bytesOut + " bytes"),
      cell("errors", be.connectFailures, "failed connects"),
      be.state === "DOWN"
        ? cell("check", be.lastError || "down", "last error")
        : cell("check", be.lastCheckMs < 0 ? "-" : be.lastCheckMs + " ms"), actions);
    table.append(tr);
  }
  return el("section", {}, el("h2", {}, "Frontend " + fe.name), table);
}

async function refresh() {
  if (asking) return;
  const status = document.getElementById("status");
  try {
    const response = await fetch("/stats", { cache: "no-store", headers: authorization() });
    if (response.status === 401) {
      askToken(token ? "the token was refused" : "");
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const stats = await response.json();
    document.getElementById("version").textContent = "lb " + stats.version;
    document.getElementById("uptime").textContent = duration(stats.uptimeSeconds);
    document.getElementById("rss").textContent = bytes(stats.rssBytes);
    document.getElementById("threads").textContent = (stats.threads || [])
      .map((t) => t.thread + ": " + t.active + " open, " + t.total + " accepted").join("; ");
    document.getElementById("frontends").replaceChildren(...stats.frontends.map(frontendTable));
    status.textContent = "updated " + new Date(stats.time).toLocaleTimeString();
    status.className = "";
  } catch (error) {
    status.textContent = "cannot reach lb (" + error.message + "); showing the last data";
    status.className = "stale";
  }
}

refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
