// Connects to an MCP server with the official TypeScript SDK client, lists the tools and
// calls `whoami`, and prints one JSON line: {"tools": [...], "whoami": {...}}.
//
//   node client.mjs <url> [--api-key KEY | --token TOKEN]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, flag, value] = process.argv.slice(2);
if (!url) {
  console.error("usage: node client.mjs <url> [--api-key KEY | --token TOKEN]");
  process.exit(2);
}
const headers = {};
if (flag === "--api-key") headers["X-API-Key"] = value;
else if (flag === "--token") headers["Authorization"] = `Bearer ${value}`;
else if (flag) {
  console.error(`unknown option ${flag}`);
  process.exit(2);
}

const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "tower-mcp-auth-interop", version: "1.0.0" });
try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  let whoami = null;
  if (names.includes("whoami")) {
    const result = await client.callTool({ name: "whoami", arguments: {} });
    const text = result.content?.find((c) => c.type === "text")?.text ?? "null";
    whoami = JSON.parse(text);
  }
  console.log(JSON.stringify({ tools: names, whoami }));
  await client.close();
} catch (e) {
  console.error(`interop client failed: ${e?.message ?? e}`);
  process.exit(1);
}
