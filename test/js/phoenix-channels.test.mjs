// The npm package phoenix-channels 1.0.0 (a Node port of the Phoenix 1.3 JS client,
// speaking V1 JSON objects over the `websocket` package) against luachan, unmodified.
// Run by the Go test TestJSClient, which sets LUACHAN_URL (ws://host:port/socket) to a
// server on scripts/examples.
import { test } from "node:test"
import assert from "node:assert/strict"
import phoenixChannels from "phoenix-channels"
import { env, waitFor, reply } from "./helpers.mjs"

const { Socket } = phoenixChannels
const URL = env("LUACHAN_URL")
// HEARTBEAT_MS is the client's heartbeat interval here, instead of its 30 s default.
const HEARTBEAT_MS = 50
// HEARTBEATS is how many answered heartbeats the heartbeat test waits for.
const HEARTBEATS = 3

// connect opens a socket that the test tears down when it ends. The client's
// disconnect() leaves its heartbeat interval and its channels' rejoin timers running,
// which would keep node alive, so the teardown stops them too.
function connect(t, opts = {}) {
  const socket = new Socket(URL, { reconnectAfterMs: () => 20, ...opts })
  socket.connect()
  t.after(() => {
    socket.disconnect()
    clearInterval(socket.heartbeatTimer)
    socket.reconnectTimer.reset()
    socket.channels.forEach((channel) => channel.rejoinTimer.reset())
  })
  return socket
}

// joined joins channel and requires an ok reply.
async function joined(channel) {
  const r = await reply(`join ${channel.topic}`, channel.join())
  assert.equal(r.status, "ok", `join ${channel.topic}: ${JSON.stringify(r)}`)
  return r.response
}

// nextEvent resolves with the payload of the next `event` on channel (the client
// has no off() for one binding, so each event name is awaited once per channel).
function nextEvent(channel, event) {
  return waitFor(`${event} on ${channel.topic}`, (resolve) => {
    channel.on(event, (payload) => { channel.off(event); resolve(payload) })
  })
}

test("phoenix-channels: heartbeats are answered and the socket stays up", async (t) => {
  const socket = connect(t, { heartbeatIntervalMs: HEARTBEAT_MS })
  let answered = 0
  let closes = 0
  socket.onClose(() => { closes++ })
  await waitFor(`${HEARTBEATS} answered heartbeats`, (resolve) => {
    socket.onMessage((msg) => {
      if (msg.topic === "phoenix" && msg.event === "phx_reply" && msg.payload.status === "ok") {
        if (++answered === HEARTBEATS) resolve()
      }
    })
  }, () => `${answered} answered`)
  // a heartbeat left unanswered would have closed the socket ("hearbeat timeout")
  assert.equal(closes, 0)
})

test("phoenix-channels: join, push with reply, receive a broadcast, leave", async (t) => {
  const topic = "rooms:pc-chat"
  const alice = connect(t).channel(topic, { user: "alice" })
  const bobSocket = connect(t)
  const bob = bobSocket.channel(topic, { user: "bob" })
  assert.deepEqual(await joined(alice), {})
  assert.deepEqual(await joined(bob), {})

  const toAlice = nextEvent(alice, "new:msg")
  const toBob = nextEvent(bob, "new:msg")
  const r = await reply("new:msg reply", alice.push("new:msg", { uid: "alice", body: "hello" }))
  assert.deepEqual(r, { status: "ok", response: {} })
  assert.deepEqual(await toAlice, { uid: "alice", body: "hello", is_editable: true })
  assert.deepEqual(await toBob, { uid: "alice", body: "hello", is_editable: false })

  const rank = await reply("current:rank reply", bob.push("current:rank", {}))
  assert.equal(rank.status, "ok")
  assert.equal(typeof rank.response.val, "number")

  // leave: the ok reply closes the channel on the client, and the server sends bob's
  // socket nothing more of the topic (what arrives after phx_close is recorded)
  const closed = waitFor(`${topic} closed`, (resolve) => bob.onClose(resolve))
  const bobAfter = []
  const serverClosed = waitFor(`the server's phx_close of ${topic}`, (resolve) => {
    let seen = false
    bobSocket.onMessage((msg) => {
      if (msg.topic !== topic) return
      if (seen) bobAfter.push(msg)
      if (msg.event === "phx_close") { seen = true; resolve() }
    })
  })
  const left = await reply("leave reply", bob.leave())
  assert.deepEqual(left, { status: "ok", response: {} })
  await closed
  await serverClosed
  const marker = nextEvent(alice, "new:msg")
  await reply("new:msg after the leave", alice.push("new:msg", { uid: "alice", body: "bye" }))
  await marker
  assert.deepEqual(bobAfter, [])
})

test("phoenix-channels: a refused join answers error", async (t) => {
  const socket = connect(t)
  const channel = socket.channel("rooms:pc-refused", {})
  const r = await reply("join refused", channel.join())
  assert.deepEqual(r, { status: "error", response: { reason: "unauthorized" } })
  channel.leave() // stop the client's rejoin attempts
})
