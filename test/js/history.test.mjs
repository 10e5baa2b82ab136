// History and recovery with the official phoenix client: params as a function, so
// every rejoin sends the last position seen, and channel.on's second argument, the
// broadcast's ref, which is its position. Run by TestJSClient, with scripts/examples'
// feed.lua, LUACHAN_URL, LUACHAN_HTTP and LUACHAN_API_KEY.
import { test } from "node:test"
import assert from "node:assert/strict"
import { env, connect, waitFor, joined } from "./helpers.mjs"

const URL = env("LUACHAN_URL")
const HTTP = env("LUACHAN_HTTP")
const KEY = env("LUACHAN_API_KEY")

// publish broadcasts one item through POST /api/broadcast (of the server at http).
async function publish(topic, n, http = HTTP) {
  const res = await fetch(`${http}/api/broadcast`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ topic, event: "item", payload: { n } }),
  })
  assert.equal(res.status, 202)
}

test("a reconnecting client misses nothing: since from the last ref", async (t) => {
  const topic = "feed:js-recovery"
  const socket = connect(t, URL)
  let last = null
  const channel = socket.channel(topic, () => (last ? { since: last } : {}))
  const got = []
  channel.on("item", (payload, ref) => {
    got.push(payload.n)
    last = ref
  })
  const first = await joined(channel)
  last = first.position

  let n = 0
  let publishing = true
  const publisher = (async () => {
    while (publishing) {
      await publish(topic, ++n)
      await new Promise((r) => setTimeout(r, 2))
    }
  })()

  for (let round = 0; round < 5; round++) {
    await waitFor(`items before disconnect ${round}`, (resolve) => {
      const until = got.length + 5
      const timer = setInterval(() => { if (got.length >= until) { clearInterval(timer); resolve() } }, 5)
    })
    socket.disconnect()
    await new Promise((r) => setTimeout(r, 30)) // broadcasts go on meanwhile
    socket.connect() // the channel rejoins with its params function: { since: last }
  }
  publishing = false
  await publisher
  await waitFor(`all ${n} items`, (resolve) => {
    const timer = setInterval(() => { if (got.length >= n) { clearInterval(timer); resolve() } }, 5)
  }, () => `${got.length} items, last ${got.at(-1)}`)
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1))
})

test("the join reply says whether it recovered", async (t) => {
  const socket = connect(t, URL)
  const stale = socket.channel("feed:js-stale", { since: "not-an-epoch:7" })
  const r = await joined(stale)
  assert.equal(r.recovered, false)
  assert.match(r.position, /^[0-9a-z]+:0$/)
})

// Two nodes sharing a Redis: LUACHAN_NODES and LUACHAN_NODES_HTTP, space-separated.
const NODES = env("LUACHAN_NODES").split(" ")
const NODES_HTTP = env("LUACHAN_NODES_HTTP").split(" ")

test("across two nodes with Redis: a client moving between nodes misses nothing", async (t) => {
  const topic = "feed:js-nodes"
  let last = null
  const got = []
  const refs = []
  let n = 0
  let publishing = true
  let publisher = null
  for (let round = 0; round < 6; round++) {
    // Each round on the other node, while the items are published on the one it left.
    const socket = connect(t, NODES[round % 2])
    const channel = socket.channel(topic, () => (last ? { since: last } : {}))
    channel.on("item", (payload, ref) => {
      got.push(payload.n)
      refs.push(ref)
      last = ref
    })
    const r = await joined(channel)
    if (last) assert.equal(r.recovered, true, `round ${round}: rejoin since ${last} on node ${round % 2}`)
    else last = r.position
    if (!publisher) {
      publisher = (async () => {
        while (publishing) {
          await publish(topic, ++n, NODES_HTTP[n % 2])
          await new Promise((r) => setTimeout(r, 2))
        }
      })()
    }
    await waitFor(`items in round ${round}`, (resolve) => {
      const until = got.length + 5
      const timer = setInterval(() => { if (got.length >= until) { clearInterval(timer); resolve() } }, 5)
    })
    socket.disconnect()
    await new Promise((r) => setTimeout(r, 30)) // broadcasts go on meanwhile
  }
  publishing = false
  await publisher
  const socket = connect(t, NODES[0])
  const channel = socket.channel(topic, { since: last })
  channel.on("item", (payload, ref) => { got.push(payload.n); refs.push(ref); last = ref })
  assert.equal((await joined(channel)).recovered, true)
  await waitFor(`all ${n} items`, (resolve) => {
    const timer = setInterval(() => { if (got.length >= n) { clearInterval(timer); resolve() } }, 5)
  }, () => `${got.length} items, last ${got.at(-1)}`)
  // The items alternate between the nodes' APIs, whose 202 comes before the append to
  // Redis: two nodes are two senders, so items close together may take their positions
  // in either order. What the client sees is every position once, gap-free, in order,
  // and every item once.
  const [epoch, first] = refs[0].split(":")
  assert.deepEqual(refs, refs.map((_, i) => `${epoch}:${Number(first) + i}`))
  assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1))
})
