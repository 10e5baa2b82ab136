// The official phoenix JS client over its LongPoll transport (what longPollFallbackMs
// falls back to where WebSockets are blocked), against luachan's /socket/longpoll. Run
// by the Go test TestJSClient, which sets LUACHAN_URL (ws://host:port/socket).
import { test } from "node:test"
import assert from "node:assert/strict"
import { LongPoll } from "phoenix"
import WebSocket from "ws"
import { env, connect as connectTo, waitFor, reply } from "./helpers.mjs"

const URL = env("LUACHAN_URL")

// connect opens a socket over transport; LongPoll derives its http:// endpoint from the
// socket's URL.
const connect = (t, transport) => connectTo(t, URL, { transport })

test("LongPoll: join, push and reply, and broadcasts both ways with a WebSocket client", async (t) => {
  const topic = "rooms:js-longpoll"
  const poll = connect(t, LongPoll).channel(topic, { user: "polly" })
  const ws = connect(t, WebSocket).channel(topic, { user: "wes" })

  assert.equal((await reply("longpoll join", poll.join())).status, "ok")
  assert.equal((await reply("websocket join", ws.join())).status, "ok")

  // a reply to a LongPoll push, and a push to the LongPoll client alone
  const rank = waitFor("current:rank push", (resolve) => poll.on("current:rank", resolve))
  const r = await reply("current:rank", poll.push("current:rank", {}))
  assert.equal(r.status, "ok")
  assert.equal(typeof r.response.val, "number")
  assert.deepEqual(await rank, r.response)

  // a broadcast from the WebSocket client reaches the LongPoll one, with its handle_out field
  const atPoll = waitFor("new:msg at the LongPoll client", (resolve) => poll.on("new:msg", resolve))
  assert.equal((await reply("new:msg", ws.push("new:msg", { uid: "wes", body: "hi" }))).status, "ok")
  assert.deepEqual(await atPoll, { uid: "wes", body: "hi", is_editable: false })

  // and one from the LongPoll client reaches the WebSocket one
  const atWs = waitFor("new:msg at the WebSocket client", (resolve) => ws.on("new:msg", (m) => m.uid === "polly" && resolve(m)))
  assert.equal((await reply("new:msg", poll.push("new:msg", { uid: "polly", body: "yo" }))).status, "ok")
  assert.deepEqual(await atWs, { uid: "polly", body: "yo", is_editable: false })
})
