// The status page: fetches /api/status and renders it; the query box asks
// /api/query. Everything from the server goes in with textContent, never as
// HTML, so a name or an error message can not inject markup.
"use strict";

const REFRESH_MS = 3000;
let current = null;
let filterText = "";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function ago(unix, now) {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(now - unix));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function renderSummary(doc) {
  const ready = document.getElementById("ready");
  ready.textContent = doc.ready ? "ready" : "not ready";
  ready.className = "pill " + (doc.ready ? "ok" : "bad");
  ready.title = doc.ready_reason || "";
  const s = document.getElementById("summary");
  s.replaceChildren();
  const when = doc.last_reload ? new Date(doc.last_reload * 1000).toLocaleString() : "";
  const parts = [
    ["zone", doc.zone],
    ["listening on", (doc.listen || []).join(", ")],
    ["manifests", doc.manifests],
    ["last reload", doc.last_reload ? `${when} (${ago(doc.last_reload, doc.now)}), took ${(doc.last_reload_seconds * 1000).toFixed(1)} ms` : "not loaded yet"],
    ["objects", Object.entries(doc.counts || {}).map(([k, v]) => `${v} ${k}`).join(", ")],
    ["forwarding", doc.forwarding ? "on" : "off"],
    ["version", doc.version],
  ];
  for (const [k, v] of parts) {
    s.append(el("span", {"data-field": k.replace(/ /g, "-")}, k + ": ", el("b", {}, v || "-")), " ");
  }
  if (!doc.ready && doc.ready_reason) s.append(el("div", {class: "bad"}, doc.ready_reason));
}

function renderErrors(doc) {
  const box = document.getElementById("errors");
  const errors = doc.errors || [];
  document.getElementById("error-count").textContent = errors.length ? `(${errors.length})` : "";
  box.replaceChildren();
  if (!errors.length) {
    box.className = "muted";
    box.textContent = "none";
    return;
  }
  box.className = "";
  const table = el("table", {id: "error-table"},
    el("thead", {}, el("tr", {}, el("th", {}, "file"), el("th", {}, "line"),
                       el("th", {}, "object"), el("th", {}, "field"), el("th", {}, "problem"))));
  const body = el("tbody");
  for (const e of errors) {
    body.append(el("tr", {class: "error", "data-file": e.file, "data-line": e.line === null ? "" : String(e.line)},
      el("td", {class: "mono"}, e.file), el("td", {class: "mono"}, e.line === null ? "" : e.line),
      el("td", {class: "mono"}, e.object), el("td", {class: "mono"}, e.field),
      el("td", {class: "bad"}, e.message)));
  }
  table.append(body);
  box.append(table);
}

function nameLink(name, type) {
  const a = el("a", {class: "name mono", href: "#", title: `ask ${name} ${type}`}, name);
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    document.getElementById("query-name").value = name;
    const sel = document.getElementById("query-type");
    if ([...sel.options].some((o) => o.value === type)) sel.value = type;
    ask();
  });
  return a;
}

function renderServices(doc) {
  const box = document.getElementById("services");
  box.replaceChildren();
  const count = document.getElementById("service-count");
  count.textContent = doc.services_total === undefined ? "" :
    `(${doc.services_shown} of ${doc.services_total} Services${doc.truncated ? ", narrow down with the filter" : ""})`;
  for (const ns of doc.namespaces || []) {
    const section = el("div", {class: "namespace", "data-namespace": ns.name});
    section.append(el("h3", {}, "namespace ", el("span", {class: "mono"}, ns.name)));
    if (!ns.services.length) {
      section.append(el("div", {class: "muted"}, "no Services"));
      box.append(section);
      continue;
    }
    const table = el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Service"), el("th", {}, "type"),
        el("th", {}, "ClusterIP"), el("th", {}, "ports"), el("th", {}, "endpoints"),
        el("th", {}, "DNS names"))));
    const body = el("tbody");
    for (const svc of ns.services) {
      const names = el("table", {class: "names"});
      for (const n of svc.names) {
        const type = n.type === "NXDOMAIN" ? "A" : n.type;
        names.append(el("tr", {class: "dns-name", "data-name": n.name, "data-type": n.type},
          el("td", {}, nameLink(n.name, type)), el("td", {class: "mono"}, n.type),
          el("td", {class: "mono muted"}, n.values.join(", "))));
      }
      const ports = svc.ports.map((p) => (p.name ? p.name + ":" : "") + p.port + "/" + p.protocol).join(", ");
      const eps = el("div", {});
      for (const e of svc.endpoints) {
        // The endpoint's DNS label, when it is not just the address dashed.
        const dashed = e.address.replace(/[.:]/g, "-");
        eps.append(el("div", {}, e.address, e.name !== dashed ? " (" + e.name + ")" : ""));
      }
      const ip = svc.kind === "ExternalName" ? svc.external_name :
                 svc.cluster_ips.length ? svc.cluster_ips.join(", ") : "None";
      body.append(el("tr", {class: "service", "data-service": svc.namespace + "/" + svc.name},
        el("td", {class: "mono"}, svc.name),
        el("td", {}, svc.type + (svc.kind === "Headless" ? " (headless)" : "")),
        el("td", {class: "mono"}, ip), el("td", {class: "mono"}, ports || "-"),
        el("td", {class: "mono"}, svc.endpoints.length ? eps : "-"), el("td", {}, names)));
    }
    table.append(body);
    section.append(table);
    box.append(section);
  }
}

async function refresh(force) {
  const url = "/api/status" + (filterText ? "?q=" + encodeURIComponent(filterText) : "");
  let doc;
  try {
    const res = await fetch(url, {cache: "no-store"});
    doc = await res.json();
  } catch (err) {
    document.getElementById("ready").textContent = "unreachable";
    document.getElementById("ready").className = "pill bad";
    return;
  }
  renderSummary(doc);
  const changed = force || !current || current.last_reload !== doc.last_reload ||
                  current.generation !== doc.generation || current.errors.length !== doc.errors.length;
  current = doc;
  if (changed) {
    renderErrors(doc);
    renderServices(doc);
  }
  document.body.dataset.generation = String(doc.generation);
}

async function ask() {
  const name = document.getElementById("query-name").value.trim();
  const type = document.getElementById("query-type").value;
  const out = document.getElementById("query-result");
  out.hidden = false;
  if (!name) {
    out.textContent = "type a name";
    return;
  }
  out.textContent = `asking ${name} ${type} ...`;
  out.dataset.state = "pending";
  try {
    const res = await fetch("/api/query?name=" + encodeURIComponent(name) + "&type=" + encodeURIComponent(type),
                            {cache: "no-store"});
    const body = await res.json();
    if (!res.ok) {
      out.textContent = "error: " + body.error;
      out.dataset.state = "error";
      return;
    }
    out.textContent = (body.note ? ";; " + body.note + "\n" : "") + body.text;
    out.dataset.rcode = body.rcode;
    out.dataset.state = "done";
  } catch (err) {
    out.textContent = "error: " + err;
    out.dataset.state = "error";
  }
}

function init() {
  const sel = document.getElementById("query-type");
  for (const t of ["A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "ANY"]) {
    sel.append(el("option", {value: t}, t));
  }
  document.getElementById("query-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    ask();
  });
  let timer = null;
  const filter = document.getElementById("filter");
  document.getElementById("filter-form").addEventListener("submit", (ev) => ev.preventDefault());
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { filterText = filter.value.trim(); refresh(true); }, 200);
  });
  refresh(true);
  setInterval(() => refresh(false), REFRESH_MS);
}

init();
