// The official TypeScript SDK client against the `oauth_proxy` example, with the SDK's own
// OAuth support: discovery from the 401, dynamic registration, PKCE, token, tool call, and a
// refresh through the SDK. The "browser" part (upstream login, consent) is driven with fetch
// and a cookie jar. Prints one JSON line: {"client_id", "whoami", "refreshed"}.
// With a certificate and key, the client does not register: it serves its Client ID Metadata
// Document over https on 127.0.0.1 and uses that URL as its client_id (SEP-991).
//
//   node oauth_client.mjs <mcp url> <redirect url> [<cert.pem> <key.pem>]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError, refreshAuthorization, discoverAuthorizationServerMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";

const [url, redirectUrl, certFile, keyFile] = process.argv.slice(2);
const origin = new URL(url).origin;
const jar = new Map();

async function browser(target, init = {}) {
  const headers = { ...(init.headers ?? {}), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") };
  const res = await fetch(target, { ...init, headers, redirect: "manual" });
  for (const set of res.headers.getSetCookie()) {
    const [pair, ...attrs] = set.split(";");
    const at = pair.indexOf("=");
    const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
    if (attrs.some((a) => a.trim() === "Max-Age=0")) jar.delete(name);
    else jar.set(name, value);
  }
  return res;
}

const hidden = (page, name) => new RegExp(`name="${name}" value="([^"]+)"`).exec(page)[1];

const clientMetadata = { redirect_uris: [redirectUrl], client_name: "SDK e2e", token_endpoint_auth_method: "none",
  grant_types: ["authorization_code", "refresh_token"], response_types: ["code"] };

// The metadata document, served until the script ends; its URL is the client_id.
async function serveMetadataDocument() {
  const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ client_id: documentUrl, ...clientMetadata }));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const documentUrl = `https://127.0.0.1:${server.address().port}/client.json`;
  server.unref();
  return documentUrl;
}
const documentUrl = certFile ? await serveMetadataDocument() : undefined;

const state = {};
const provider = {
  get clientMetadataUrl() { return documentUrl; },
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() { return clientMetadata; },
  clientInformation() { return state.client; },
  saveClientInformation(c) { state.client = c; },
  tokens() { return state.tokens; },
  saveTokens(t) { state.tokens = t; },
  codeVerifier() { return state.verifier; },
  saveCodeVerifier(v) { state.verifier = v; },
  async redirectToAuthorization(authorizationUrl) {
    let res = await browser(authorizationUrl.toString()); // → upstream
    if (!res.headers.get("location")) throw new Error(`authorize: ${res.status} ${await res.text()}`);
    res = await browser(res.headers.get("location")); // upstream → our callback
    res = await browser(res.headers.get("location")); // consent page
    if (res.status !== 200) throw new Error(`consent page: ${res.status}`);
    const page = await res.text();
    res = await browser(`${origin}/oauth/consent`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin },
      body: new URLSearchParams({ ticket: hidden(page, "ticket"), csrf: hidden(page, "csrf"), decision: "approve" }).toString(),
    });
    const back = new URL(res.headers.get("location"));
    state.code = back.searchParams.get("code");
  },
};

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: "tower-mcp-auth-oauth-e2e", version: "1.0.0" });
  try {
    await client.connect(transport);
    return client;
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    await transport.finishAuth(state.code);
    return null;
  }
}

try {
  const first = await connect();
  const client = first ?? (await connect());
  const result = await client.callTool({ name: "whoami", arguments: {} });
  const whoami = JSON.parse(result.content.find((c) => c.type === "text").text);
  await client.close();
  const metadata = await discoverAuthorizationServerMetadata(origin);
  const old = state.tokens.refresh_token;
  const refreshed = await refreshAuthorization(origin, { metadata, clientInformation: state.client, refreshToken: old });
  console.log(JSON.stringify({ client_id: state.client.client_id, whoami,
    refreshed: Boolean(refreshed.access_token) && refreshed.refresh_token !== old }));
} catch (e) {
  console.error(`oauth e2e client failed: ${e?.stack ?? e}`);
  process.exit(1);
}
