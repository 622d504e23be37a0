// The school cloud's OpenID Connect provider in the sign-in tests: the
// certified oidc-provider package with a small login page of its own, run
// by tests/harness/oidc.py.
//
// Usage: node provider.mjs CONFIG.json
//   {"port": 12345, "issuer": "http://127.0.0.1:12345",
//    "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": [{"username", "password", "sub", "name"}]}
// Environment: SSP_OIDC_MODULES, the node_modules directory that holds
// oidc-provider (scripts/setup.sh installs it in the cache).
//
// Prints one JSON line {"ready": true, "issuer": ...} once it listens, then
// nothing on stdout; stops when its standard input closes or on SIGTERM.
//
// The login page checks the user name and password against the accounts;
// the account's `sub` is the subject, and its user name is the
// `preferred_username` claim (the Matrix localpart, as a school cloud maps
// it). Consent is granted without asking: the clients are the school
// cloud's own (first-party) applications.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

function fail(message) {
  process.stdout.write(JSON.stringify({ error: message }) + "\n");
  process.exit(2);
}

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const modules = process.env.SSP_OIDC_MODULES;
if (!modules) fail("SSP_OIDC_MODULES is not set");
let Provider;
try {
  // node_modules is not next to this file: import the package by path,
  // through the entry point its package.json names.
  const pkgDir = join(modules, "oidc-provider");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  ({ default: Provider } = await import(pathToFileURL(join(pkgDir, pkg.main)).href));
} catch (e) {
  fail(`cannot load oidc-provider from ${modules}: ${e}`);
}

const accounts = new Map(config.accounts.map((a) => [a.sub, a]));
const byUsername = new Map(config.accounts.map((a) => [a.username, a]));

// A signing key of this run only: Synapse reads it from jwks_uri.
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "test-run", use: "sig", alg: "RS256" };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: { openid: ["sub"], profile: ["preferred_username", "name"] },
  scopes: ["openid", "profile"],
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: account.username, name: account.name };
      },
    };
  },
  // First-party clients: what they ask for is granted, no consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid profile");
    await grant.save();
    return grant;
  },
});

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, error) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>School cloud sign-in</title></head>
<body>
<h1>School cloud</h1>
<form method="post" action="/interaction/${escapeHtml(uid)}">
  <label>User name <input id="username" name="username" autocomplete="username" required></label>
  <label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
  <button id="sign-in" type="submit">Sign in</button>
</form>
${error ? `<p id="error">${escapeHtml(error)}</p>` : ""}
</body></html>`;
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

// The login page, ahead of the provider's own routes.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== match[1] || details.prompt.name !== "login") ctx.throw(400, "unexpected interaction");
  ctx.set("Cache-Control", "no-store");
  ctx.type = "html";
  if (ctx.method === "GET") {
    ctx.body = loginPage(details.uid);
    return;
  }
  if (ctx.method !== "POST") ctx.throw(405);
  const form = await readForm(ctx.req);
  const account = byUsername.get(form.get("username") || "");
  if (!account || account.password !== form.get("password")) {
    ctx.status = 401;
    ctx.body = loginPage(details.uid, "Wrong user name or password.");
    return;
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: account.sub } }, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(to);
});

const server = provider.listen(config.port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ ready: true, issuer: config.issuer }) + "\n");
});
function stop() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
