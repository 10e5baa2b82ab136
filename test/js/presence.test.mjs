// The official phoenix client's Presence against scripts/examples/presence.lua. Run by the
// Go test TestJSClient, which starts the server and sets LUACHAN_URL (ws://host:port/socket).
import { test } from "node:test"
import assert from "node:assert/strict"
import { Presence } from "phoenix"
import { connect, env, joined, reply, same, until } from "./helpers.mjs"

const URL = env("LUACHAN_URL")

// client connects a socket, joins topic as user and follows its Presence.
async function client(t, topic, user, opts) {
  const socket = connect(t, URL, opts)
  const channel = socket.channel(topic, { user })
  const presence = new Presence(channel)
  await joined(channel)
  return { user, socket, channel, presence }
}

// statuses is what a client's presence.list() shows: each user's meta statuses.
function statuses(presence) {
  return Object.fromEntries(presence.list((key, { metas }) => [key, metas.map((m) => m.status)]))
}

// refs is each user's phx_refs, to compare a client's list with the server's. They are
// sorted: two sockets tracking one key at once may reach the clients in either order.
function refs(state) {
  return Object.fromEntries(Object.entries(state).map(([key, { metas }]) => [key, metas.map((m) => m.phx_ref).sort()]))
}

// allSee waits, on each client's onSync, until its presence.list() shows want; then it
// checks every meta's shape and that luachan.presence.list (presence.lua's "list" event)
// agrees with the client on every phx_ref.
async function allSee(step, clients, want) {
  for (const c of clients) {
    await until(`${c.user} to see ${JSON.stringify(want)} ${step}`, (cb) => c.presence.onSync(cb),
      () => same(statuses(c.presence), want), () => JSON.stringify(statuses(c.presence)))
  }
  for (const c of clients) {
    const mine = Object.fromEntries(c.presence.list((key, p) => [key, p]))
    for (const [key, { metas }] of Object.entries(mine)) {
      for (const meta of metas) {
        assert.equal(typeof meta.phx_ref, "string", `${key}'s meta ${JSON.stringify(meta)}`)
        assert.equal(typeof meta.online_at, "number", `${key}'s meta ${JSON.stringify(meta)}`)
      }
    }
    const r = await reply(`list from ${c.user}`, c.channel.push("list", {}))
    assert.equal(r.status, "ok")
    assert.deepEqual(refs(r.response), refs(mine), `the server's list and ${c.user}'s ${step}`)
  }
}

test("three clients: joins, an update, a leave and a dropped connection", async (t) => {
  const topic = "presence:js-three"
  const alice = await client(t, topic, "alice")
  const bob = await client(t, topic, "bob")
  // carol's client must not come back by itself after her connection drops
  const carol = await client(t, topic, "carol", { reconnectAfterMs: () => 60000 })
  const everyone = [alice, bob, carol]
  await allSee("after the joins", everyone, { alice: ["online"], bob: ["online"], carol: ["online"] })

  const onlineAt = alice.presence.list((key, { metas }) => metas[0].online_at)
  const r = await reply("status", alice.channel.push("status", { status: "away" }))
  assert.deepEqual(r, { status: "ok", response: {} })
  await allSee("after alice's update", everyone, { alice: ["away"], bob: ["online"], carol: ["online"] })
  // an update replaces the meta: same online_at, one meta, not two
  assert.deepEqual(bob.presence.list((key, { metas }) => metas[0].online_at), onlineAt)

  const left = await reply("leave", bob.channel.leave())
  assert.equal(left.status, "ok")
  await allSee("after bob left", [alice, carol], { alice: ["away"], carol: ["online"] })

  // the TCP connection just goes, without a close frame: the server notices and untracks
  carol.socket.conn.terminate()
  await allSee("after carol's connection dropped", [alice], { alice: ["away"] })
})

test("the same user twice is one key with two metas; a reconnect resyncs", async (t) => {
  const topic = "presence:js-resync"
  const dave = await client(t, topic, "dave")
  const tab1 = await client(t, topic, "erin")
  const tab2 = await client(t, topic, "erin")
  const all = [dave, tab1, tab2]
  await allSee("with two tabs", all, { dave: ["online"], erin: ["online", "online"] })

  let leaves = 0
  let joins = 0
  dave.presence.onLeave((key) => { if (key === "erin") leaves++ })
  dave.presence.onJoin((key) => { if (key === "erin") joins++ })

  // tab2's connection drops; its client reconnects and rejoins by itself, and gets a
  // fresh presence_state it syncs with what it knew
  let reopened = 0
  tab2.socket.onOpen(() => reopened++)
  tab2.socket.conn.terminate()
  await until("tab2 to reconnect", (cb) => tab2.socket.onOpen(cb), () => reopened > 0)
  await allSee("after tab2 reconnected", all, { dave: ["online"], erin: ["online", "online"] })
  assert.ok(leaves >= 1 && joins >= 1, `dave saw erin's second meta leave (${leaves}) and join again (${joins})`)
})
