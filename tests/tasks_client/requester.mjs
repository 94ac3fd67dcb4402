// The official MCP tasks requester (npm @modelcontextprotocol/ext-tasks on
// @modelcontextprotocol/client) driving mcp-ollama's `chat` (or, with REQUESTER_TOOL=pull_model, `pull_model`) as a task over stdio.
//
//   node requester.mjs <prefix> <legacy|modern> <modes> <command> [args...]
//
// <prefix> is the npm prefix holding both packages (.ci/node); <modes> is "complete", "cancel" or
// both, comma-separated, run one after the other on the same connection. Prints one JSON line per
// mode on stdout:
//   complete: {"kind", "status", "result", "statuses"}   (statuses: notifications/tasks/status seen)
//   cancel:   {"kind", "acknowledged", "snapshot"}       (snapshot: the task's own status afterwards)
// Exits 1 with the error on stderr when anything fails.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [prefix, era, modes, command, ...args] = process.argv.slice(2);

// The packages live in <prefix>/node_modules, not next to this file: resolve their ESM entry points
// through their package.json "exports" (the same files their own imports load).
async function load(specifier) {
  const parts = specifier.split("/");
  const name = parts.slice(0, 2).join("/");
  const subpath = parts.length > 2 ? `./${parts.slice(2).join("/")}` : ".";
  const dir = join(prefix, "node_modules", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  let entry = manifest.exports[subpath];
  entry = entry.import ?? entry;
  entry = entry.default ?? entry;
  return import(pathToFileURL(join(dir, entry)).href);
}

const { Client } = await load("@modelcontextprotocol/client");
const { StdioClientTransport } = await load("@modelcontextprotocol/client/stdio");
const { createTaskSessionFromClient, resultFromTaskOutcome } = await load("@modelcontextprotocol/ext-tasks/client");

const clientInfo = { name: "mcp-ollama-tasks-test", version: "0.0.1" };
const clientCapabilities = {};
const client = new Client(clientInfo, {
  capabilities: clientCapabilities,
  ...(era === "modern" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {}),
});
const statuses = [];
client.fallbackNotificationHandler = async (notification) => {
  if (notification.method === "notifications/tasks/status") statuses.push(notification.params.status);
};
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
await client.connect(transport);

// 2026-07-28: the TS client's codecs refuse `resultType: "task"`, so the requester sends through
// rawDispatch, and this small coordinator owns those requests' (string) ids.
let nextId = 0;
const pending = new Map();
const sdkOnMessage = transport.onmessage;
transport.onmessage = (message, extra) => {
  if (message && "id" in message && !("method" in message) && pending.has(message.id)) {
    const settle = pending.get(message.id);
    pending.delete(message.id);
    settle("error" in message ? { kind: "error", error: message.error } : { kind: "result", result: message.result });
    return;
  }
  sdkOnMessage?.(message, extra);
};
const rawDispatch = (request, options = {}) =>
  new Promise((resolve, reject) => {
    const id = `tasks-raw-${++nextId}`;
    pending.set(id, resolve);
    options.signal?.addEventListener("abort", () => { pending.delete(id); reject(options.signal.reason); }, { once: true });
    transport.send({ jsonrpc: "2.0", id, ...request }).catch((error) => { pending.delete(id); reject(error); });
  });

const session = createTaskSessionFromClient(client, {
  endpointId: "mcp-ollama",
  ...(era === "modern"
    ? { rawDispatch, v2RequestFraming: { protocolVersion: "2026-07-28", clientInfo, clientCapabilities } }
    : {}),
});
let exitCode = 0;
try {
  // REQUESTER_TOOL=pull_model drives a pull (gemma3:4b) instead of a chat.
  const pulling = process.env.REQUESTER_TOOL === "pull_model";
  const [tool, args, started] = pulling
    ? ["pull_model", { model: "gemma3:4b" }, " %"]
    : ["chat", { message: "tell me a long story" }, "tokens so far"];
  for (const mode of modes.split(",")) {
    const execution = await session.callTool(tool, args, { task: { preference: "require" } });
    if (execution.kind !== "task") throw new Error(`expected a task, got ${execution.kind}`);
    if (mode === "cancel") {
      // Cancel once the model is writing (its first token is in the status message) or bytes are
      // coming (a percentage), so that there is a stream for the server to close.
      const task = session.task(execution.handle.taskId);
      for (let polls = 0; !((await task.snapshot()).statusMessage ?? "").includes(started); polls++) {
        if (polls > 500) throw new Error(`the ${tool} call never started`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await execution.cancel();
      const snapshot = await session.task(execution.handle.taskId).snapshot();
      console.log(JSON.stringify({ kind: execution.kind, acknowledged: true, snapshot: snapshot.status }));
    } else {
      const { outcome } = await execution.settle();
      const result = resultFromTaskOutcome(outcome);
      console.log(JSON.stringify({ kind: execution.kind, status: outcome.status, result, statuses }));
    }
  }
} catch (error) {
  console.error(error?.stack ?? String(error));
  exitCode = 1;
} finally {
  await session.close();
  await client.close();
}
process.exit(exitCode);
