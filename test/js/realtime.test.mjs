// Supabase's realtime-js client against scripts/examples/realtime.lua: Broadcast (self,
// ack, JSON and ArrayBuffer payloads), Presence, and the access token, on realtime-js's
// default vsn=2.0.0 (broadcasts as binary kinds 3 and 4) and on vsn=1.0.0 (JSON text).
// Run by the Go test TestJSClient, which starts the server and sets LUACHAN_URL.
import { test } from "node:test"
import assert from "node:assert/strict"
import { RealtimeClient } from "@supabase/realtime-js"
import WebSocket from "ws" // Node 20 has no global WebSocket
import { env, same, until, waitFor } from "./helpers.mjs"

const URL = env("LUACHAN_URL")

// client connects a RealtimeClient speaking vsn, disconnected when the test ends.
function client(t, vsn, opts = {}) {
  const c = new RealtimeClient(URL, {
    transport: WebSocket,
    vsn,
    params: { apikey: "anon-key" }, // realtime-js requires one; luachan ignores it
    heartbeatIntervalMs: 60000,
    reconnectAfterMs: () => 20,
    ...opts,
  })
  t.after(() => c.disconnect())
  return c
}

// subscribed subscribes channel and resolves once realtime-js reports SUBSCRIBED.
function subscribed(channel) {
  return waitFor(`${channel.topic} to be SUBSCRIBED`, (resolve, reject) => {
    channel.subscribe((status, err) => {
      if (status === "SUBSCRIBED") resolve()
      else reject(new Error(`${channel.topic}: ${status} ${err ?? ""}`))
    })
  })
}

// hooks maps each list listen returns to the callbacks run on each new message.
const hooks = new WeakMap()

// listen subscribes to every broadcast on channel (before subscribe) and returns the
// list they are collected in.
function listen(channel) {
  const got = []
  hooks.set(got, [])
  channel.on("broadcast", { event: "*" }, (msg) => {
    got.push(msg)
    for (const h of hooks.get(got)) h()
  })
  return got
}

// received waits until list holds n messages.
function received(what, list, n) {
  return until(what, (cb) => hooks.get(list).push(cb), () => list.length >= n, () => JSON.stringify(list))
}

for (const vsn of ["2.0.0", "1.0.0"]) {
  test(`vsn ${vsn}: broadcast with self and ack, and without`, async (t) => {
    const topic = `room-broadcast-${vsn}`
    const ann = client(t, vsn).channel(topic, { config: { broadcast: { self: true, ack: true } } })
    const bob = client(t, vsn).channel(topic) // realtime-js's defaults: self and ack off
    const annGot = listen(ann)
    const bobGot = listen(bob)
    await subscribed(ann)
    await subscribed(bob)

    // ack: send resolves with the server's reply; self: ann gets her own. The empty
    // list comes back as one (luachan.array keeps [] a JSON array).
    const first = { type: "broadcast", event: "cursor", payload: { x: 1, list: [], nested: { l: [] } } }
    assert.equal(await ann.send(first), "ok")
    await received("ann's own broadcast", annGot, 1)
    await received("ann's broadcast at bob", bobGot, 1)
    assert.deepEqual(annGot[0], first)
    assert.deepEqual(bobGot[0], first)

    // bob, without self: ann gets his broadcast, he does not; his own next message is
    // ann's second, proving his own never came.
    const second = { type: "broadcast", event: "typing", payload: { who: "bob" } }
    assert.equal(await bob.send(second), "ok") // without ack it resolves at once
    await received("bob's broadcast at ann", annGot, 2)
    assert.deepEqual(annGot[1], second)
    const third = { type: "broadcast", event: "cursor", payload: { x: 2 } }
    assert.equal(await ann.send(third), "ok")
    await received("ann's second broadcast at bob", bobGot, 2)
    assert.deepEqual(bobGot, [first, third])

    if (vsn === "2.0.0") {
      // an ArrayBuffer goes out as kind 3 (binary encoding) and comes back as kind 4
      const bytes = new Uint8Array([0, 1, 254, 255])
      assert.equal(await ann.send({ type: "broadcast", event: "blob", payload: bytes.buffer }), "ok")
      await received("the binary broadcast at bob", bobGot, 3)
      assert.equal(bobGot[2].event, "blob")
      assert.ok(bobGot[2].payload instanceof ArrayBuffer, `binary payload ${bobGot[2].payload}`)
      assert.deepEqual(new Uint8Array(bobGot[2].payload), bytes)
    }
  })

  test(`vsn ${vsn}: presence track, sync, join and leave`, async (t) => {
    const topic = `room-presence-${vsn}`
    const channel = (key) => client(t, vsn).channel(topic, { config: { presence: { key, enabled: true } } })
    const ann = channel("ann")
    const bob = channel("bob")
    const events = { ann: [], bob: [] }
    const changed = [] // callbacks run on every presence event
    for (const [name, ch] of [["ann", ann], ["bob", bob]]) {
      ch.on("presence", { event: "sync" }, () => { events[name].push("sync"); changed.forEach((h) => h()) })
      ch.on("presence", { event: "join" }, ({ key }) => { events[name].push(`join ${key}`); changed.forEach((h) => h()) })
      ch.on("presence", { event: "leave" }, ({ key }) => { events[name].push(`leave ${key}`); changed.forEach((h) => h()) })
    }
    // who each client sees, as realtime-js's presenceState() gives it
    const seen = (ch) => Object.fromEntries(Object.entries(ch.presenceState()).map(([k, metas]) => [k, metas.map((m) => m.status)]))
    const sees = (what, ch, want) => until(what, (cb) => changed.push(cb), () => same(seen(ch), want), () => JSON.stringify(seen(ch)))

    await subscribed(ann)
    assert.equal(await ann.track({ status: "online" }), "ok")
    await sees("ann to see herself", ann, { ann: ["online"] })
    await subscribed(bob)
    assert.equal(await bob.track({ status: "away" }), "ok")
    await sees("bob to see both", bob, { ann: ["online"], bob: ["away"] })
    await sees("ann to see both", ann, { ann: ["online"], bob: ["away"] })
    const meta = ann.presenceState().bob[0]
    assert.equal(typeof meta.presence_ref, "string", JSON.stringify(meta))
    assert.ok(events.ann.includes("join bob"), JSON.stringify(events.ann))

    // tracking again replaces the meta
    assert.equal(await bob.track({ status: "online" }), "ok")
    await sees("ann to see bob's update", ann, { ann: ["online"], bob: ["online"] })

    assert.equal(await bob.untrack(), "ok")
    await sees("ann to see bob leave", ann, { ann: ["online"] })
    assert.ok(events.ann.includes("leave bob"), JSON.stringify(events.ann))
  })

  test(`vsn ${vsn}: the access token is sent on join and on refresh`, async (t) => {
    let token = "token-1"
    const c = client(t, vsn, { accessToken: async () => token })
    const ch = c.channel(`room-token-${vsn}`, { config: { broadcast: { self: true, ack: true } } })
    const got = listen(ch)
    await subscribed(ch)
    token = "token-2"
    await c.setAuth() // pushes access_token to every joined channel
    // the channel carries on: a broadcast still goes round and is acknowledged
    assert.equal(await ch.send({ type: "broadcast", event: "after", payload: {} }), "ok")
    await received("the broadcast after the refresh", got, 1)
    assert.equal(ch.state, "joined")
  })
}
