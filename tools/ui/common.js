"use strict";
// Shared by every app: the host bridge (MCP Apps, JSON-RPC 2.0 over postMessage with the host that renders this
// document in a sandboxed iframe) and `el`, the one way these apps put text on screen. Every value from the CRM
// goes through el(..., text) as a text node: no markup is ever parsed from data.

function el(tag, className, text, children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const child of children || []) if (child) node.append(child);
  return node;
}

const bridge = (() => {
  const PROTOCOL = "2026-01-26"; // the MCP Apps protocol version (ext-apps spec)
  const pending = new Map();
  const listeners = {};
  let nextId = 1;

  function post(message) {
    // The host's origin is not known to a sandboxed document (its own origin is opaque); replies are only
    // accepted from window.parent below, and nothing secret is ever sent.
    window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.method === undefined && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(String(msg.error.message || "the host refused the request")));
      else resolve(msg.result);
      return;
    }
    if (typeof msg.method !== "string") return;
    if (msg.id !== undefined) post({ id: msg.id, result: {} }); // ping, ui/resource-teardown
    for (const fn of listeners[msg.method] || []) fn(msg.params || {});
  });

  function request(method, params) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      post({ id, method, params });
    });
  }

  function notify(method, params) {
    post({ method, params });
  }

  function on(method, fn) {
    (listeners[method] = listeners[method] || []).push(fn);
  }

  async function start(name) {
    const init = await request("ui/initialize", {
      appInfo: { name, version: "1" }, appCapabilities: {}, protocolVersion: PROTOCOL,
    });
    notify("ui/notifications/initialized", {});
    let last = "";
    const report = () => {
      // The content's own size (the document element stretches to the frame, so it never shrinks).
      const box = document.body.getBoundingClientRect();
      const size = { width: Math.ceil(box.width), height: Math.ceil(box.height) };
      const key = size.width + "x" + size.height;
      if (key !== last) { last = key; notify("ui/notifications/size-changed", size); }
    };
    new ResizeObserver(report).observe(document.body);
    report();
    return init || {};
  }

  // A tool call through the host: the host sends it to this server on its own MCP session, so a write goes
  // through the server's gate (preview, the person's approval, re-read, audit) like a model's call.
  async function callTool(name, args) {
    return request("tools/call", { name, arguments: args });
  }

  return { on, start, callTool };
})();

// The structured answer of a tool result, or null; `errorText` says what an error result said.
function structured(result) {
  return result && !result.isError && result.structuredContent && typeof result.structuredContent === "object"
    ? result.structuredContent : null;
}

function errorText(result) {
  const parts = ((result && result.content) || []).filter((c) => c && c.type === "text").map((c) => c.text);
  return parts.join(" ") || "The tool answered with an error.";
}

function canWrite() {
  return document.documentElement.dataset.writes === "on";
}
