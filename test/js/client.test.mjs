// The official phoenix JS client (unmodified) against luachan. Run by the Go test
// TestJSClient, which starts the server on scripts/examples plus a "test:*" script and
// sets LUACHAN_URL (ws://host:port/socket).
import { test } from "node:test"
import assert from "node:assert/strict"
import { env, connect as connectTo, waitFor, reply, joined } from "./helpers.mjs"

const URL = env("LUACHAN_URL")
// NO_REPLY_MS is the push timeout for events the server never replies to, so their
// timers do not keep node alive after the test.
const NO_REPLY_MS = 100

// connect opens a socket to the server that the test disconnects when it ends.
const connect = (t, opts = {}) => connectTo(t, URL, opts)

// nextEvent resolves with the payload of the next `event` on channel.
function nextEvent(channel, event) {
  return waitFor(`${event} on ${channel.topic}`, (resolve) => {
    const ref = channel.on(event, (payload) => {
      channel.off(event, ref)
      resolve(payload)
    })
  })
}

test("join ok and join refused", async (t) => {
  const socket = connect(t)
  assert.deepEqual(await joined(socket.channel("rooms:lobby", {})), {})

  const refused = socket.channel("rooms:js-refused", {})
  const r = await reply("join refused", refused.join())
  assert.deepEqual(r, { status: "error", response: { reason: "unauthorized" } })
  refused.leave() // stop the client's rejoin attempts
})

test("push receives ok; current:rank is pushed and replied", async (t) => {
  const socket = connect(t)
  const channel = socket.channel("rooms:js-rank", { user: "alice" })
  const pushed = nextEvent(channel, "current:rank")
  await joined(channel)

  const r = await reply("current:rank reply", channel.push("current:rank", {}))
  assert.equal(r.status, "ok")
  assert.equal(typeof r.response.val, "number")
  assert.deepEqual(await pushed, r.response)
})

test("broadcasts with a per-subscriber is_editable", async (t) => {
  const topic = "rooms:js-edit"
  const alice = connect(t).channel(topic, { user: "alice" })
  const bob = connect(t).channel(topic, { user: "bob" })
  await joined(alice)
  await joined(bob)

  const toAlice = nextEvent(alice, "new:msg")
  const toBob = nextEvent(bob, "new:msg")
  const r = await reply("new:msg reply", alice.push("new:msg", { uid: "alice", body: "hello" }))
  assert.deepEqual(r, { status: "ok", response: {} })
  assert.deepEqual(await toAlice, { uid: "alice", body: "hello", is_editable: true })
  assert.deepEqual(await toBob, { uid: "alice", body: "hello", is_editable: false })
})

test("typing reaches the others, not the typist", async (t) => {
  const topic = "rooms:js-typing"
  const alice = connect(t).channel(topic, { user: "alice" })
  const bob = connect(t).channel(topic, { user: "bob" })
  await joined(alice)
  await joined(bob)

  const typingAtAlice = []
  alice.on("typing", (payload) => typingAtAlice.push(payload))
  const toBob = nextEvent(bob, "typing")
  alice.push("typing", { uid: "alice" }, NO_REPLY_MS)
  assert.deepEqual(await toBob, { uid: "alice" })

  // a later message is the marker: a typing for alice would have arrived before it
  const marker = nextEvent(alice, "new:msg")
  alice.push("new:msg", { uid: "alice", body: "marker" })
  await marker
  assert.deepEqual(typingAtAlice, [])
})

test("the client rejoins by itself after phx_error", async (t) => {
  const socket = connect(t)
  let opens = 0
  socket.onOpen(() => opens++)
  const channel = socket.channel("test:js-rejoin", {})
  let joins = 0
  let onJoin = () => {}
  channel.join().receive("ok", () => { joins++; onJoin() })
  await waitFor("first join", (resolve) => { onJoin = () => { if (joins === 1) resolve() }; onJoin() })

  const errored = waitFor("phx_error", (resolve) => channel.onError(resolve))
  const rejoined = waitFor("the automatic rejoin", (resolve) => { onJoin = () => { if (joins === 2) resolve() } })
  channel.push("crash", {}, NO_REPLY_MS)
  assert.deepEqual(await errored, { reason: "channel_crash" })
  await rejoined

  const r = await reply("echo after the rejoin", channel.push("echo", { back: "again" }))
  assert.deepEqual(r, { status: "ok", response: { back: "again" } })
  assert.equal(opens, 1, "the channel rejoined on the same connection, without a reconnect")
})

test("ArrayBuffer payloads go both ways as V2 binary frames", async (t) => {
  const socket = connect(t)
  const channel = socket.channel("test:js-binary", {})
  await joined(channel)

  const bytes = new Uint8Array([0, 1, 2, 255, 254, 104, 105])
  const pushed = nextEvent(channel, "bin_push")
  const broadcast = nextEvent(channel, "bin_bcast")
  const r = await reply("binary reply", channel.push("bin", bytes.buffer))
  assert.equal(r.status, "ok")
  for (const payload of [r.response, await pushed, await broadcast]) {
    assert.ok(payload instanceof ArrayBuffer, `want an ArrayBuffer, got ${payload}`)
    assert.deepEqual(new Uint8Array(payload), bytes)
  }
})

test("authToken travels as a subprotocol next to phoenix", async (t) => {
  // ws rejects the handshake unless the server picks one of the offered subprotocols
  const socket = connect(t, { authToken: "js-token" })
  assert.deepEqual(await joined(socket.channel("rooms:lobby", {})), {})
  assert.equal(socket.conn.protocol, "phoenix")
})
