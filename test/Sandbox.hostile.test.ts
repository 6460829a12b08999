/**
 * The sandbox under hostile input (issue 11): request bodies are capped as the real APIs cap
 * them, the request log is a bounded ring, and a port outside 0–65535 is a clean failure (the
 * library's `SandboxError`, the CLI's exit 2 with a message), never a stack trace.
 *
 * Raw `node:http` requests: a client that declares 100 MB and sends 1 KB is what a fetch cannot do.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as Http from "node:http"
import { WebSocket } from "ws"
import * as Sandbox from "../src/Sandbox.js"
import { lingerBytes } from "../src/sandbox/Http.js"
import { big3 } from "./support/cli.js"
import { at } from "./support/json.js"
import { freePort } from "./support/loopback.js"

interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
}

/**
 * POSTs to `url` with `headers`, writing `chunks` one after the other (stopping once the answer
 * has come); resolves with the answer. The sandbox may close the connection while we still write.
 */
const send = (url: string, headers: Http.OutgoingHttpHeaders, chunks: Iterable<Buffer>) =>
  Effect.async<Reply, Error>((resume) => {
    let answered = false
    const request = Http.request(url, { method: "POST", headers, agent: false }, (response) => {
      answered = true
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (text += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers, text })))
      response.on("error", (error) => resume(Effect.fail(error)))
    })
    request.on("error", (error) => {
      if (!answered) resume(Effect.fail(error))
    })
    const iterator = chunks[Symbol.iterator]()
    const writeNext = (): void => {
      if (answered || request.destroyed) return
      const next = iterator.next()
      if (next.done === true) {
        request.end()
        return
      }
      if (request.write(next.value)) setImmediate(writeNext)
      else request.once("drain", writeNext)
    }
    writeNext()
    return Effect.sync(() => request.destroy())
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no answer within 10 s") }))

/** GETs `url` and resolves with the answer. */
const get = (url: string) =>
  Effect.async<Reply, Error>((resume) => {
    const request = Http.get(url, { agent: false }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (text += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, headers: response.headers, text })))
      response.on("error", (error) => resume(Effect.fail(error)))
    })
    request.on("error", (error) => resume(Effect.fail(error)))
    return Effect.sync(() => request.destroy())
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no answer within 10 s") }))

const mib = 1024 * 1024

/** An event whose JSON nests `levels` deep: the event object, its payload object, then arrays. */
const nestedEvent = (levels: number) =>
  `{"source_app":"x","session_id":"s","hook_event_type":"D","payload":{"d":${"[".repeat(levels - 2)}${
    "]".repeat(levels - 2)
  }}}`

function* repeat(chunk: Buffer, times: number) {
  for (let i = 0; i < times; i++) yield chunk
}

const geminiPath = "/v1beta/models/gemini-2.5-flash:generateContent"
const geminiHeaders = { "content-type": "application/json", "x-goog-api-key": "sandbox-key" }

describe("Sandbox under hostile input", () => {
  // Gemini: 20 MB per request (ai.google.dev, "inline data … total request size limit 20MB");
  // Google's front end answers 400 "Request payload size exceeds the limit: N bytes."
  it.scopedLive("a Gemini body declared over 20 MiB is refused with 400 before it is read", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const reply = yield* send(
        `${sandbox.url}${geminiPath}`,
        { ...geminiHeaders, "content-length": String(100 * mib) },
        [Buffer.alloc(1024, "a")]
      )
      assert.strictEqual(reply.status, 400)
      assert.strictEqual(reply.headers.connection, "close")
      assert.deepStrictEqual(JSON.parse(reply.text), {
        error: { code: 400, message: "Request payload size exceeds the limit: 20971520 bytes.", status: "INVALID_ARGUMENT" }
      })
      const [recorded] = yield* sandbox.requests
      assert.deepStrictEqual(
        recorded && [recorded.route, recorded.outcome, recorded.bodyBytes, recorded.body],
        ["gemini", 400, 100 * mib, undefined]
      )
      // The plan was not consulted: the request never reached the model.
      assert.strictEqual(recorded?.fault, "none")
    }))

  // Anthropic: 32 MB per Messages request, 413 request_too_large (docs.claude.com, "Errors").
  it.scopedLive("an Anthropic body streamed past 32 MiB without a length is cut off with 413 request_too_large", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const reply = yield* send(
        `${sandbox.url}/v1/messages`,
        { "content-type": "application/json", "x-api-key": "sandbox-key", "anthropic-version": "2023-06-01", "transfer-encoding": "chunked" },
        repeat(Buffer.alloc(mib, "a"), 40)
      )
      assert.strictEqual(reply.status, 413)
      assert.strictEqual(at(JSON.parse(reply.text), "error", "type"), "request_too_large")
      const [recorded] = yield* sandbox.requests
      assert.strictEqual(recorded?.outcome, 413)
      assert.isAbove(recorded?.bodyBytes ?? 0, 32 * mib)
      assert.isUndefined(recorded?.body, "nothing of the body is kept")
    }))

  it.scopedLive("a body past the limit is read to its end before the 413, lingerBytes more at most: a client that goes on is cut off", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ maxRequestBytes: mib })
      // Writes until the connection goes (at most 128 MiB), whatever the answer says.
      const outcome = yield* Effect.async<{ readonly written: number; readonly cut: boolean }>((resume) => {
        let written = 0
        const request = Http.request(`${sandbox.url}/events`, {
          method: "POST",
          headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
          agent: false
        }, (response) => response.resume())
        const done = (cut: boolean) => resume(Effect.succeed({ written, cut }))
        request.on("error", () => done(true))
        const chunk = Buffer.alloc(mib, " ")
        const writeNext = (): void => {
          if (request.destroyed) return
          if (written >= 128 * mib) return done(false)
          written += chunk.length
          if (request.write(chunk)) setImmediate(writeNext)
          else request.once("drain", writeNext)
        }
        writeNext()
        return Effect.sync(() => request.destroy())
      }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the upload was never cut off") }))
      assert.isTrue(outcome.cut, "the connection was cut")
      // What the sandbox read (the limit, then lingerBytes), plus what the sockets' buffers held.
      assert.isAbove(outcome.written, mib + lingerBytes)
      assert.isBelow(outcome.written, mib + lingerBytes + 32 * mib)
      const [recorded] = yield* sandbox.requests
      assert.strictEqual(recorded?.outcome, 413)
      assert.isAbove(recorded?.bodyBytes ?? 0, mib + lingerBytes)
    }))

  // The observability server runs on Bun.serve, whose default maxRequestBodySize is 128 MiB.
  it.scopedLive("an events body over 128 MiB is refused with 413", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const reply = yield* send(
        `${sandbox.url}/events`,
        { "content-type": "application/json", "content-length": String(129 * mib) },
        [Buffer.alloc(16, " ")]
      )
      assert.deepStrictEqual([reply.status, reply.text], [413, "Payload Too Large"])
      assert.strictEqual((yield* sandbox.eventStats).stored, 0)
    }))

  it.scopedLive("maxRequestBytes lowers every route's limit", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ maxRequestBytes: 100 })
      const event = (payload: string) =>
        Buffer.from(JSON.stringify({ source_app: "a", session_id: "s", hook_event_type: "t", payload: { payload } }))
      const served = yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [event("small")])
      assert.strictEqual(served.status, 200)
      const refused = yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [event("x".repeat(100))])
      assert.strictEqual(refused.status, 413)
      assert.strictEqual((yield* sandbox.eventStats).stored, 1)
    }))

  it.scopedLive("big3 sandbox --max-events bounds the event store; below 1 it is a usage error (exit 2)", () =>
    Effect.gen(function*() {
      const refused = yield* big3(["sandbox", "--port", "0", "--max-events", "0"])
      assert.strictEqual(refused.code, 2)
      assert.strictEqual(refused.stderr, "big3 sandbox: --max-events must be 1 or more, got 0")
      const port = yield* freePort
      const server = yield* Effect.fork(big3(["sandbox", "--port", String(port), "--max-events", "2"]))
      const url = `http://127.0.0.1:${port}`
      const event = (n: number) =>
        Buffer.from(JSON.stringify({ source_app: "app", session_id: "s", hook_event_type: "Stop", payload: { n } }))
      let first = yield* Effect.either(send(`${url}/events`, { "content-type": "application/json" }, [event(1)]))
      for (let i = 0; i < 100 && first._tag === "Left"; i++) {
        yield* Effect.sleep("50 millis")
        first = yield* Effect.either(send(`${url}/events`, { "content-type": "application/json" }, [event(1)]))
      }
      assert.strictEqual(first._tag, "Right")
      for (const n of [2, 3]) yield* send(`${url}/events`, { "content-type": "application/json" }, [event(n)])
      const stats = yield* Effect.promise(() => fetch(`${url}/__sandbox/events`).then((response) => response.json()))
      assert.deepInclude(at(stats, "stats"), { stored: 2, evicted: 1 })
      yield* Fiber.interrupt(server)
    }))

  it.scopedLive("the request log keeps the newest requests only, by count", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ requestLog: { maxEntries: 5 } })
      for (let i = 0; i < 8; i++) yield* send(`${sandbox.url}/health`, {}, [])
      assert.deepStrictEqual((yield* sandbox.requests).map((request) => request.sequence), [4, 5, 6, 7, 8])
    }))

  it.scopedLive("the request log keeps the newest requests only, by bytes of body", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ requestLog: { maxBodyBytes: 250 } })
      const event = (n: number) =>
        Buffer.from(JSON.stringify({ source_app: "app", session_id: `s${n}`, hook_event_type: "Stop", payload: { n } }))
      assert.isAbove(event(1).length, 70)
      for (let n = 1; n <= 6; n++) yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [event(n)])
      const kept = yield* sandbox.requests
      assert.deepStrictEqual(kept.map((request) => at(request.body, "payload", "n")), [4, 5, 6])
      assert.strictEqual((yield* sandbox.eventStats).stored, 6, "the server's own store is not the log")
    }))

  // JSON.stringify recurses once per level and overflowed the stack near 8,000 levels, answering
  // an empty 500 after storing the event, and every later read of it failed the same way.
  it.scopedLive("an event nesting deeper than 1,000 levels is refused with 400 and later reads still answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const json = { "content-type": "application/json" }
      const refused = yield* send(`${sandbox.url}/events`, json, [Buffer.from(nestedEvent(8_000))])
      assert.strictEqual(refused.status, 400)
      assert.deepStrictEqual(JSON.parse(refused.text), {
        error: "Invalid request",
        detail: "the event nests deeper than 1000 levels of objects and arrays"
      })
      const batch = yield* send(`${sandbox.url}/events/batch`, json, [
        Buffer.from(`[${nestedEvent(3)},${nestedEvent(8_000)}]`)
      ])
      assert.strictEqual(batch.status, 400)
      assert.deepStrictEqual(JSON.parse(batch.text), {
        error: "Invalid request",
        index: 1,
        detail: "the event nests deeper than 1000 levels of objects and arrays"
      })
      assert.strictEqual((yield* sandbox.eventStats).stored, 0)

      const recent = yield* get(`${sandbox.url}/events/recent`)
      assert.deepStrictEqual([recent.status, recent.text], [200, "[]"])
      const events = yield* get(`${sandbox.url}/__sandbox/events`)
      assert.strictEqual(events.status, 200)
      assert.deepStrictEqual(at(JSON.parse(events.text), "stats", "stored"), 0)
      // The request log keeps a body too deep to hand back as JSON as its text.
      const requests = yield* get(`${sandbox.url}/__sandbox/requests?route=events`)
      assert.strictEqual(requests.status, 200)
      assert.deepStrictEqual(at(JSON.parse(requests.text), 0, "body"), nestedEvent(8_000))
    }))

  it.scopedLive("an event nesting exactly 1,000 levels is stored and read back whole", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const text = nestedEvent(1_000)
      const stored = yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [Buffer.from(text)])
      assert.strictEqual(stored.status, 200)
      const expected = JSON.stringify(at(JSON.parse(text), "payload"))
      const recent = yield* get(`${sandbox.url}/events/recent`)
      assert.strictEqual(recent.status, 200)
      assert.strictEqual(JSON.stringify(at(JSON.parse(recent.text), 0, "payload")), expected)
      const events = yield* get(`${sandbox.url}/__sandbox/events`)
      assert.strictEqual(events.status, 200)
      assert.strictEqual(JSON.stringify(at(JSON.parse(events.text), "events", 0, "payload")), expected)
      const requests = yield* get(`${sandbox.url}/__sandbox/requests`)
      assert.strictEqual(requests.status, 200)
    }))

  // The sandbox's own walkers of a request (token counts, schema checks) overflowed the stack on
  // them, answering a logged 500; the real APIs refuse such a request with their 400.
  it.scopedLive("Gemini and Anthropic requests nesting deeper than 1,000 levels are refused with their API's 400", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`
      const gemini = yield* send(`${sandbox.url}${geminiPath}`, geminiHeaders, [
        Buffer.from(`{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"v":${deep}}}}]}]}`)
      ])
      assert.strictEqual(gemini.status, 400)
      assert.deepStrictEqual(JSON.parse(gemini.text), {
        error: {
          code: 400,
          message: "Invalid JSON payload received. The request nests deeper than 1000 levels of objects and arrays.",
          status: "INVALID_ARGUMENT"
        }
      })
      const anthropic = yield* send(
        `${sandbox.url}/v1/messages`,
        { "content-type": "application/json", "x-api-key": "sandbox-key", "anthropic-version": "2023-06-01" },
        [Buffer.from(`{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t","input_schema":{"type":"object","properties":{"a":${deep}}}}]}`)]
      )
      assert.strictEqual(anthropic.status, 400)
      assert.deepStrictEqual(at(JSON.parse(anthropic.text), "error"), {
        type: "invalid_request_error",
        message: "The request body nests deeper than 1000 levels of objects and arrays"
      })
      assert.deepStrictEqual(
        [...(yield* sandbox.requestsFor("gemini")), ...(yield* sandbox.requestsFor("anthropic"))].map((request) => request.outcome),
        [400, 400]
      )
    }))

  it.scopedLive("a route that fails unexpectedly answers 500 in its API's format and logs why", () => {
    const logged: Array<string> = []
    const logger = Logger.make(({ cause, logLevel, message }) => {
      logged.push(`${logLevel.label} ${String(message)} | ${Cause.pretty(cause).split("\n")[0]}`)
    })
    return Effect.gen(function*() {
      const broken: Sandbox.GeminiResponder = () => Effect.dieMessage("responder exploded")
      const sandbox = yield* Sandbox.make({ geminiResponders: [broken] })
      const reply = yield* send(`${sandbox.url}${geminiPath}`, geminiHeaders, [
        Buffer.from(JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hi" }] }] }))
      ])
      assert.strictEqual(reply.status, 500)
      assert.strictEqual(at(JSON.parse(reply.text), "error", "status"), "INTERNAL")
      assert.deepStrictEqual(logged, [
        `ERROR sandbox: POST ${geminiPath} failed unexpectedly; answered 500 | RuntimeException: responder exploded`
      ])
      assert.deepStrictEqual((yield* sandbox.requestsFor("gemini")).map((request) => request.outcome), [500])
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  // The public server runs on Bun, whose ServerWebSocket drops what is sent to a client past its
  // backpressure limit (16 MiB by default; closeOnBackpressureLimit is off): a dashboard that
  // stops reading cannot make the server hold every event for it, and is served again once it reads.
  it.scopedLive("GET /stream drops messages for a client that stops reading, past its buffer limit, and serves it again after", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ eventsMode: "public", streamBufferBytes: 64 * 1024 })
      const types = yield* Queue.unbounded<string>()
      const socket = yield* Effect.acquireRelease(
        Effect.async<WebSocket, Error>((resume) => {
          const socket = new WebSocket(`${sandbox.url.replace(/^http/, "ws")}/stream`)
          socket.on("message", (data) => {
            const message: unknown = JSON.parse(String(data))
            Queue.unsafeOffer(types, at(message, "type") === "initial" ? "initial" : String(at(message, "data", "hook_event_type")))
          })
          socket.once("open", () => resume(Effect.succeed(socket)))
          socket.once("error", (error) => resume(Effect.fail(error)))
        }),
        (socket) => Effect.sync(() => socket.terminate())
      )
      const next = Queue.take(types).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no message within 5 s") }))
      assert.strictEqual(yield* next, "initial")
      socket.pause()
      const posted = 100
      const pad = "a".repeat(256 * 1024)
      for (let n = 0; n < posted; n++) {
        const body = JSON.stringify({ source_app: "x", session_id: "s", hook_event_type: `E${n}`, payload: { pad } })
        const reply = yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [Buffer.from(body)])
        assert.strictEqual(reply.status, 200)
      }
      socket.resume()
      // The pong is written behind whatever the sandbox still holds for this client: once it is
      // here, the sandbox holds nothing, so the next event must come through.
      yield* Effect.async<void>((resume) => {
        socket.once("pong", () => resume(Effect.void))
        socket.ping()
      })
      yield* send(`${sandbox.url}/events`, { "content-type": "application/json" }, [
        Buffer.from(JSON.stringify({ source_app: "x", session_id: "s", hook_event_type: "after", payload: {} }))
      ])
      const received: Array<string> = []
      for (let type = yield* next; type !== "after"; type = yield* next) received.push(type)
      assert.isBelow(received.length, posted, "some messages were dropped")
      assert.isAbove(received.length, 0)
      const order = received.map((type) => Number(type.slice(1)))
      assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), "what came, came in order")
    }))

  it.scoped("a port outside 0–65535 fails with SandboxError, not a defect", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Sandbox.make({ port: 99999 }))
      assert.strictEqual(error._tag, "SandboxError")
      assert.strictEqual(error.message, "sandbox cannot listen on 127.0.0.1:99999: a port is an integer from 0 to 65535")
    }))

  it.effect("big3 sandbox --port 99999 exits 2 with a message and no stack trace", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* big3(["sandbox", "--port", "99999"])
      assert.strictEqual(code, 2)
      assert.strictEqual(stderr, "big3 sandbox: --port must be an integer from 0 to 65535 (0 picks a free port), got 99999")
    }))
})
