// scripts/examples/socket.lua with the official phoenix client: who may connect. Run by the
// Go test TestJSClient, which starts a server on the examples with -secret and sets
// LUACHAN_URL_SECRET (ws://host:port/socket) and LUACHAN_SECRET. Tokens are minted here
// with node:crypto, as a backend in any language would mint them.
import { test } from "node:test"
import assert from "node:assert/strict"
import { Presence, Socket } from "phoenix"
import WebSocket from "ws"
import {
  connect, env, joined, metrics, mintToken, nowSeconds, same, until, waitFor,
} from "./helpers.mjs"

const URL = env("LUACHAN_URL_SECRET")
const SECRET = env("LUACHAN_SECRET")

// REFUSED_ATTEMPTS is how many refused connects a test sits through: enough to see the
// client back off and retry, and the server count each refusal.
const REFUSED_ATTEMPTS = 3

// refusedSocket connects with opts, expecting every attempt to be refused, and resolves
// once REFUSED_ATTEMPTS have failed, with the errors and the tries the client passed to
// reconnectAfterMs. It fails if the socket ever opens.
async function refusedSocket(t, opts) {
  const tries = []
  const errors = []
  let opened = false
  const socket = new Socket(URL, {
    transport: WebSocket,
    reconnectAfterMs: (n) => { tries.push(n); return 20 },
    ...opts,
  })
  t.after(() => socket.disconnect())
  socket.onOpen(() => { opened = true })
  const failed = waitFor(`${REFUSED_ATTEMPTS} refused connects`, (resolve) => {
    socket.onError((err) => {
      errors.push(err)
      if (errors.length === REFUSED_ATTEMPTS) resolve()
    })
  }, () => `${errors.length} errors, tries ${tries}`)
  socket.connect()
  await failed
  socket.disconnect() // stop retrying before the checks
  assert.equal(opened, false, "the socket opened")
  for (const err of errors) {
    // the ws transport reports the HTTP answer to the upgrade
    assert.match(String(err.message), /Unexpected server response: 403/)
  }
  // the client backs off: each retry is the next step of its reconnectAfterMs schedule
  assert.deepEqual(tries.slice(0, REFUSED_ATTEMPTS - 1), [1, 2])
  return { errors, tries }
}

test("a refused connect: HTTP 403, retried with backoff, nothing left on the server", async (t) => {
  // nothing else connects to this server before this test: no socket is open now
  const before = await metrics(URL)
  assert.equal(before.luachan_connections, 0, "open connections before the test")
  const { errors } = await refusedSocket(t, { authToken: "not-a-jwt" })

  const after = await metrics(URL)
  assert.equal(after.luachan_connections, 0, "a refused connect left a connection open")
  assert.equal(after.luachan_channels, 0, "a refused connect left a channel")
  assert.equal(after.luachan_connections_accepted_total, before.luachan_connections_accepted_total,
    "a refused connect was counted as accepted")
  // every refusal is counted
  assert.ok("luachan_connects_refused_total" in after,
    "/metrics has no luachan_connects_refused_total (socket.lua's refusals are not exported)")
  assert.ok(after.luachan_connects_refused_total - (before.luachan_connects_refused_total ?? 0) >= errors.length,
    `luachan_connects_refused_total went from ${before.luachan_connects_refused_total} to ${after.luachan_connects_refused_total} over ${errors.length} refusals`)
})

test("authToken accepted: its claims are the socket's assigns and id", async (t) => {
  const token = mintToken({ sub: "alice", exp: nowSeconds() + 3600 }, SECRET)
  const socket = connect(t, URL, { authToken: token })
  const who = await joined(socket.channel("whoami", {}))
  assert.deepEqual(who, { assigns: { user: "alice" }, id: "user_socket:alice" })
  assert.equal(socket.conn.protocol, "phoenix")

  // presence.lua tracks the user the token names, not the one the client claims
  const channel = socket.channel("presence:js-token", { user: "mallory" })
  const presence = new Presence(channel)
  const keys = () => presence.list((key) => key)
  const synced = until("alice in the presence list", (cb) => presence.onSync(cb),
    () => same(keys(), ["alice"]), () => JSON.stringify(keys()))
  await joined(channel)
  await synced
})

test("a token in params works the same", async (t) => {
  const token = mintToken({ sub: "bob" }, SECRET)
  const socket = connect(t, URL, { params: { token } })
  assert.deepEqual(await joined(socket.channel("whoami", {})), { assigns: { user: "bob" }, id: "user_socket:bob" })
})

test("anonymous sockets are welcome", async (t) => {
  const socket = connect(t, URL)
  assert.deepEqual(await joined(socket.channel("whoami", {})), { assigns: {}, id: null })
})

test("an expired token is refused", async (t) => {
  // exp a minute ago: past the server's few seconds of leeway for clock skew
  await refusedSocket(t, { authToken: mintToken({ sub: "alice", exp: nowSeconds() - 60 }, SECRET) })
})

test("a token signed with another secret is refused", async (t) => {
  await refusedSocket(t, { authToken: mintToken({ sub: "alice" }, "not-the-secret") })
})

test("authToken as a function: a refreshed token connects on the next try", async (t) => {
  // what an app does when its token expired while offline: the function is called for
  // every attempt, so the retry after the 403 brings the fresh token
  const tokens = [
    mintToken({ sub: "carol", exp: nowSeconds() - 60 }, SECRET),
    mintToken({ sub: "carol", exp: nowSeconds() + 3600 }, SECRET),
  ]
  let calls = 0
  let errors = 0
  const socket = new Socket(URL, {
    transport: WebSocket,
    reconnectAfterMs: () => 20,
    authToken: () => tokens[Math.min(calls++, tokens.length - 1)],
  })
  t.after(() => socket.disconnect())
  socket.onError(() => errors++)
  const opened = waitFor("the socket to open with the fresh token", (resolve) => socket.onOpen(resolve))
  socket.connect()
  await opened
  assert.equal(errors, 1, "the expired token was refused once")
  assert.deepEqual(await joined(socket.channel("whoami", {})), { assigns: { user: "carol" }, id: "user_socket:carol" })
})
