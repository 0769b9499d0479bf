// A test MCP Apps host: what a chat client does with sheepcrm-mcp's apps, built on the ext-apps AppBridge.
// It holds a real MCP session (streamable HTTP, same origin as the page) that advertises the Apps extension
// and form elicitation; `runTool` is the model's call: the host calls the tool, reads the tool's ui://
// resource, renders it in a sandboxed iframe (opaque origin) under the CSP the resource declares, and hands
// the app the call's arguments and result. The app's own tool calls go back through the bridge to the same
// session; an elicitation (a write's approval) is shown to the person here, outside the app.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge, PostMessageTransport, getToolUiResourceUri } from "@modelcontextprotocol/ext-apps/app-bridge";

const UI = "io.modelcontextprotocol/ui";
const MIME = "text/html;profile=mcp-app";
const host = { log: [], approvals: [], xss: [], violations: [], client: null, tools: [], bridge: null };
window.host = host;

// Anything that reaches the host page from an app other than the bridge's JSON-RPC is recorded: the
// injection tests plant payloads that would post {xss: ...} here if they ever ran.
window.addEventListener("message", (event) => {
  const data = event.data;
  if (data && typeof data === "object" && data.jsonrpc === "2.0") host.log.push({ to: "host", message: data });
  else host.xss.push(String(JSON.stringify(data)));
});
document.addEventListener("securitypolicyviolation", (e) => host.violations.push(e.violatedDirective));

function policy(csp) {
  const more = (list) => (Array.isArray(list) && list.length ? " " + list.join(" ") : "");
  const only = (list) => more(list) || " 'none'";
  return [
    "default-src 'none'",
    "script-src 'unsafe-inline'" + more(csp.resourceDomains),
    "style-src 'unsafe-inline'" + more(csp.resourceDomains),
    "img-src data:" + more(csp.resourceDomains),
    "font-src" + only(csp.resourceDomains),
    "media-src" + only(csp.resourceDomains),
    "connect-src" + only(csp.connectDomains),
    "frame-src" + only(csp.frameDomains),
    "base-uri" + only(csp.baseUriDomains),
  ].join("; ");
}

// The person answers the server's elicitation (a write's preview) here; tests click Accept or Decline.
function askPerson(params) {
  const box = document.getElementById("approval");
  document.getElementById("approval-message").textContent = String(params.message || "");
  const tick = document.getElementById("approval-tick");
  tick.checked = false;
  box.hidden = false;
  host.approvals.push(String(params.message || ""));
  return new Promise((resolve) => {
    const done = (answer) => {
      box.hidden = true;
      document.getElementById("approval-accept").onclick = null;
      document.getElementById("approval-decline").onclick = null;
      resolve(answer);
    };
    document.getElementById("approval-accept").onclick = () =>
      done({ action: "accept", content: { confirm: tick.checked } });
    document.getElementById("approval-decline").onclick = () => done({ action: "decline" });
  });
}

host.connect = async ({ token, apps = true, elicitation = true }) => {
  const capabilities = elicitation ? { elicitation: { form: {} } } : {};
  if (apps) capabilities.extensions = { [UI]: { mimeTypes: [MIME] } };
  const client = new Client({ name: "sheepcrm-test-host", version: "1.0.0" }, { capabilities });
  if (elicitation) client.setRequestHandler("elicitation/create", (request) => askPerson(request.params));
  const transport = new StreamableHTTPClientTransport(new URL("/mcp", location.origin), {
    requestInit: { headers: { Authorization: "Bearer " + token } },
  });
  await client.connect(transport);
  host.client = client;
  host.tools = (await client.listTools()).tools;
  return host.tools.map((t) => ({ name: t.name, ui: getToolUiResourceUri(t) || null }));
};

class LoggedTransport extends PostMessageTransport {
  async send(message, options) {
    host.log.push({ to: "app", message });
    return super.send(message, options);
  }
}

// The model calls `name`: show the text, or render the tool's app with the call's arguments and result.
host.runTool = async (name, args, { width, maxHeight = 640 } = {}) => {
  const client = host.client;
  document.getElementById("turn").textContent = "model called " + name;
  const tool = host.tools.find((t) => t.name === name);
  const result = await client.callTool({ name, arguments: args });
  const uri = tool ? getToolUiResourceUri(tool) : undefined;
  const text = document.getElementById("text");
  document.getElementById("app")?.remove();
  if (!uri) {
    text.hidden = false;
    text.textContent = result.content.map((c) => c.text || "").join("\n");
    return { rendered: false, result };
  }
  text.hidden = true;
  const read = await client.readResource({ uri });
  const content = read.contents[0];
  if (content.mimeType !== MIME) throw new Error("not an MCP App resource: " + content.mimeType);
  const declared = (content._meta && content._meta.ui) || {};
  const iframe = document.createElement("iframe");
  iframe.id = "app";
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.title = tool.title || name;
  document.getElementById("chat").append(iframe);
  const bridge = new AppBridge(client, { name: "sheepcrm-test-host", version: "1.0.0" },
    { serverTools: {}, logging: {} },
    { hostContext: { theme: "light", platform: "web", displayMode: "inline",
      containerDimensions: { maxHeight, ...(width ? { width } : {}) } } });
  host.bridge = bridge;
  bridge.onsizechange = ({ height }) => { if (height) iframe.style.height = Math.min(height, maxHeight * 4) + "px"; };
  const ready = new Promise((resolve) => {
    bridge.oninitialized = async () => {
      await bridge.sendToolInput({ arguments: args });
      await bridge.sendToolResult(result);
      resolve();
    };
  });
  await bridge.connect(new LoggedTransport(iframe.contentWindow, iframe.contentWindow));
  const csp = `<meta http-equiv="Content-Security-Policy" content="${policy(declared.csp || {})}">`;
  iframe.srcdoc = content.text.replace(/<head>/i, (head) => head + csp);
  await ready;
  return { rendered: true, result, csp: declared.csp || null };
};

window.hostReady = true;
