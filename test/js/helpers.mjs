// Helpers shared by the test files.
import assert from "node:assert/strict"
import { createHmac } from "node:crypto"
import { isDeepStrictEqual } from "node:util"
import { Socket } from "phoenix"
import WebSocket from "ws" // Node 20 has no global WebSocket

// WAIT_MS bounds every wait on the server.
export const WAIT_MS = 5000

// env returns the environment variable name, or throws if the Go runner did not set it.
export function env(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set; run these tests through \`go test -run TestJSClient\``)
  return value
}

// connect opens a socket to url that the test disconnects when it ends. Rejoins and
// reconnects are quick unless opts says otherwise.
export function connect(t, url, opts = {}) {
  const socket = new Socket(url, {
    transport: WebSocket,
    rejoinAfterMs: () => 20,
    reconnectAfterMs: () => 20,
    ...opts,
  })
  socket.connect()
  t.after(() => socket.disconnect())
  return socket
}

// waitFor resolves with what start passes to its resolve callback, or rejects after
// WAIT_MS with what and, if given, the last state describe() reports.
export function waitFor(what, start, describe) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const last = describe ? `; last seen: ${describe()}` : ""
      reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}${last}`))
    }, WAIT_MS)
    start(
      (value) => { clearTimeout(timer); resolve(value) },
      (err) => { clearTimeout(timer); reject(err) },
    )
  })
}

// reply resolves with {status, response} for a push (a join or any event).
export function reply(what, push) {
  return waitFor(what, (resolve) => {
    push
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }))
  })
}

// joined joins channel, requires an ok reply and returns its response.
export async function joined(channel) {
  const r = await reply(`join ${channel.topic}`, channel.join())
  assert.equal(r.status, "ok", `join ${channel.topic}: ${JSON.stringify(r)}`)
  return r.response
}

// until resolves once check() returns true, testing it now and on every event that
// subscribe(callback) reports; describe() says what was seen last if it never does.
export function until(what, subscribe, check, describe) {
  return waitFor(what, (resolve) => {
    const test = () => { if (check()) resolve() }
    subscribe(test)
    test()
  }, describe)
}

// deepEqual without throwing, for until's checks.
export const same = isDeepStrictEqual

// mintToken signs claims as an HS256 JWT, by hand, as any backend's JWT library does.
export function mintToken(claims, secret) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString("base64url")
  const signing = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`
  return `${signing}.${createHmac("sha256", secret).update(signing).digest("base64url")}`
}

// nowSeconds is the current time as a JWT NumericDate.
export const nowSeconds = () => Math.floor(Date.now() / 1000)

// metrics fetches /metrics from the server of a ws://host:port/socket url and returns
// every luachan_ sample by name (labels included, as written).
export async function metrics(url) {
  const res = await fetch(url.replace(/^ws/, "http").replace(/\/socket$/, "/metrics"))
  assert.equal(res.status, 200, "GET /metrics")
  const samples = {}
  for (const line of (await res.text()).split("\n")) {
    const m = /^(luachan_\S+) (\S+)$/.exec(line)
    if (m) samples[m[1]] = Number(m[2])
  }
  return samples
}
