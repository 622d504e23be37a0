// A real matrix-js-sdk client, driven over stdin/stdout by
// tests/system/test_real_clients_js.py.
//
// It logs in with a password, runs the SDK's own sync loop, and answers with
// what the SDK itself concludes from the state it synced: Room.maySendMessage()
// (the check Element uses to disable the composer), RoomState.maySendEvent()
// for plain and encrypted messages, and the room list with each room's name.
//
// Environment: SSP_JS_MODULES (the node_modules directory that holds
// matrix-js-sdk; scripts/setup.sh installs it in the cache), SSP_BASE_URL,
// SSP_USER, SSP_PASSWORD.
//
// Protocol: one JSON object per line each way. After the first sync the
// client prints {"ready": true, ...snapshot}. Then, for each line read:
//   {"op": "snapshot"}                             -> the snapshot now
//   {"op": "wait", "room": ID, "may_send": BOOL, "timeout_ms": N}
//       -> the snapshot once the SDK's maySendMessage() for ROOM equals BOOL
//          (through its own incremental sync), or when N ms have passed;
//          "timed_out" says which.
// End of input stops the client.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

function fail(message) {
  process.stdout.write(JSON.stringify({ error: message }) + "\n");
  process.exit(2);
}

// stdout carries the protocol only: the SDK's log lines (console.info and
// friends write to stdout in Node) go to stderr. Done before the SDK is
// loaded, because its logger binds the console methods when it is created.
for (const method of ["log", "info", "debug", "trace"]) {
  console[method] = (...args) => console.error(...args);
}

const modules = process.env.SSP_JS_MODULES;
if (!modules) fail("SSP_JS_MODULES is not set");
let sdk;
try {
  // node_modules is not next to this file, so the package is imported by
  // path, through the entry point its package.json names.
  const pkgDir = join(modules, "matrix-js-sdk");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  sdk = await import(pathToFileURL(join(pkgDir, pkg.main)).href);
  // The SDK logs every sync at info level; only warnings are worth keeping.
  const { logger } = await import(pathToFileURL(join(pkgDir, "lib", "logger.js")).href);
  logger.setLevel?.("warn");
} catch (e) {
  fail(`cannot load matrix-js-sdk from ${modules}: ${e}`);
}

const baseUrl = process.env.SSP_BASE_URL;
const user = process.env.SSP_USER;
const password = process.env.SSP_PASSWORD;

// The test reads our stdout with no timeout of its own: never hang silently
// before the first answer.
const startWatchdog = setTimeout(() => fail("no login and first sync within 90 s"), 90_000);

const loginClient = sdk.createClient({ baseUrl });
let session;
try {
  session = await loginClient.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "matrix-js-sdk test client",
  });
} catch (e) {
  fail(`login failed: ${e}`);
}
loginClient.stopClient();

const client = sdk.createClient({
  baseUrl,
  userId: session.user_id,
  accessToken: session.access_token,
  deviceId: session.device_id,
});

function snapshot() {
  const rooms = client.getRooms().map((room) => ({
    room_id: room.roomId,
    name: room.name,
    membership: room.getMyMembership(),
    // What Element asks before it shows the composer.
    may_send_message: room.maySendMessage(),
    may_send_plain: room.currentState.maySendEvent("m.room.message", session.user_id),
    may_send_encrypted: room.currentState.maySendEvent("m.room.encrypted", session.user_id),
    events_default: room.currentState.getStateEvents("m.room.power_levels", "")?.getContent()?.events_default ?? null,
  }));
  return { user_id: session.user_id, rooms };
}

function roomMaySend(roomId) {
  const room = client.getRoom(roomId);
  return room ? room.maySendMessage() : null;
}

const ready = new Promise((resolve, reject) => {
  client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
    if (state === "PREPARED") resolve();
    if (state === "ERROR") reject(new Error(`sync failed: ${data?.error}`));
  });
});
await client.startClient({ initialSyncLimit: 5 });
try {
  await ready;
} catch (e) {
  fail(String(e));
}
clearTimeout(startWatchdog);
process.stdout.write(JSON.stringify({ ready: true, ...snapshot() }) + "\n");

async function waitFor(roomId, maySend, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (roomMaySend(roomId) !== maySend) {
    if (Date.now() >= deadline) return true;
    // Woken by the SDK's own sync loop; the poll only bounds the wait.
    await new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        client.off(sdk.ClientEvent.Sync, done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(500, Math.max(0, deadline - Date.now())));
      client.on(sdk.ClientEvent.Sync, done);
    });
  }
  return false;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  if (command.op === "snapshot") {
    process.stdout.write(JSON.stringify(snapshot()) + "\n");
  } else if (command.op === "wait") {
    const timedOut = await waitFor(command.room, command.may_send, command.timeout_ms ?? 30000);
    process.stdout.write(JSON.stringify({ timed_out: timedOut, ...snapshot() }) + "\n");
  } else {
    process.stdout.write(JSON.stringify({ error: `unknown op ${command.op}` }) + "\n");
  }
}
client.stopClient();
process.exit(0);
