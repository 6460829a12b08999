import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import { WebSocket } from "ws"
import * as Sandbox from "../src/Sandbox.js"
import { EventStore } from "../src/sandbox/Events.js"
import { at, each } from "./support/json.js"

// Real loopback HTTP: these tests exercise the server itself, so a plain `fetch` is the client.

class FetchFailed extends Data.TaggedError("FetchFailed")<{ readonly code: string; readonly message: string }> {}

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

const causeCode = (error: unknown): string => {
  const cause = error instanceof Error ? error.cause : undefined
  if (typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string") {
    return cause.code
  }
  return error instanceof Error && error.name === "AbortError" || error instanceof Error && error.name === "TimeoutError"
    ? "ABORTED"
    : "UNKNOWN"
}

const request = (url: string, init: RequestInit = {}): Effect.Effect<Reply, FetchFailed> =>
  Effect.tryPromise({
    try: async (signal) => {
      const signals = [signal, AbortSignal.timeout(3_000), ...(init.signal ? [init.signal] : [])]
      const response = await fetch(url, { ...init, signal: AbortSignal.any(signals) })
      return { status: response.status, headers: response.headers, text: await response.text() }
    },
    catch: (error) => new FetchFailed({ code: causeCode(error), message: String(error) })
  })

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })

const json = (reply: Reply): unknown => JSON.parse(reply.text)

const geminiUrl = (sandbox: Sandbox.Service, model = "gemini-2.5-flash", action = "generateContent") =>
  `${sandbox.url}/v1beta/models/${model}:${action}`
const geminiKey = { "x-goog-api-key": "sandbox-key" }
const prompt = (text: string) => ({ contents: [{ role: "user", parts: [{ text }] }] })
const askGemini = (sandbox: Sandbox.Service, text = "hello") => post(geminiUrl(sandbox), prompt(text), geminiKey)

const anthropicHeaders = { "x-api-key": "sandbox-key", "anthropic-version": "2023-06-01" }
const messagesBody = (extra: Record<string, unknown> = {}) => ({
  model: "claude-sonnet-4-5",
  max_tokens: 256,
  messages: [{ role: "user", content: "hello claude" }],
  ...extra
})

const event = (id: string | undefined, extra: Record<string, unknown> = {}) => ({
  ...(id === undefined ? {} : { id }),
  source_app: "big3",
  session_id: "s1",
  hook_event_type: "PreToolUse",
  payload: { tool_name: "Bash" },
  timestamp: 1_700_000_000_000,
  ...extra
})

const statuses = (replies: ReadonlyArray<Reply>) => replies.map((reply) => reply.status)

/** Polls (on real time, so it works under TestClock too) until the sandbox has recorded `count` requests. */
const awaitRequests = (sandbox: Sandbox.Service, count: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400; i++) {
      const requests = yield* sandbox.requests
      if (requests.length >= count) return requests
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Effect.dieMessage(`sandbox never saw ${count} requests`)
  })

describe("Sandbox", () => {
  describe("gemini", () => {
    it.scopedLive("routes the colon path and answers in the generateContent shape", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        assert.match(sandbox.url, /^http:\/\/127\.0\.0\.1:\d+$/)
        const reply = yield* askGemini(sandbox, "what is 2+2?")
        assert.strictEqual(reply.status, 200)
        assert.include(reply.headers.get("content-type") ?? "", "application/json")
        const body = json(reply)
        assert.deepInclude(body, {
          candidates: [{
            content: { role: "model", parts: [{ text: "sandbox answer to: what is 2+2?" }] },
            finishReason: "STOP",
            index: 0
          }],
          modelVersion: "gemini-2.5-flash"
        })
        assert.isObject(body)
        assert.isString(at(body, "responseId"))
        // Gemini 2.5 thinks by default: thoughts are counted apart and in the total.
        const count = (name: string) => Number(at(body, "usageMetadata", name))
        assert.isAbove(count("thoughtsTokenCount"), 0)
        assert.strictEqual(
          count("totalTokenCount"),
          count("promptTokenCount") + count("candidatesTokenCount") + count("thoughtsTokenCount")
        )
        assert.deepStrictEqual(at(body, "usageMetadata", "promptTokensDetails"), [
          { modality: "TEXT", tokenCount: count("promptTokenCount") }
        ])
        const [recorded] = yield* sandbox.requestsFor("gemini")
        assert.strictEqual(recorded?.path, "/v1beta/models/gemini-2.5-flash:generateContent")
        assert.strictEqual(recorded?.outcome, 200)
        assert.deepStrictEqual(recorded?.body, prompt("what is 2+2?"))
      }))

    it.scopedLive("serves countTokens and answers other model actions with a Gemini 404", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const count = yield* post(geminiUrl(sandbox, "gemini-2.5-flash", "countTokens"), prompt("hello"), geminiKey)
        assert.strictEqual(count.status, 200)
        assert.deepStrictEqual(json(count), { totalTokens: 2, promptTokensDetails: [{ modality: "TEXT", tokenCount: 2 }] })
        const embed = yield* post(geminiUrl(sandbox, "gemini-2.5-flash", "embedContent"), prompt("hello"), geminiKey)
        assert.strictEqual(embed.status, 404)
        assert.deepStrictEqual(json(embed), {
          error: { code: 404, message: "Requested entity was not found.", status: "NOT_FOUND" }
        })
        // Neither counts as a generateContent attempt.
        assert.lengthOf(yield* sandbox.requestsFor("gemini"), 0)
      }))

    // The wrapped request is a field of CountTokensRequest, so its proto paths start there
    // (public reports quote errors at 'generate_content_request.contents').
    it.scopedLive("countTokens names a field refused inside generateContentRequest at its generate_content_request path", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const reply = yield* post(geminiUrl(sandbox, "gemini-2.5-flash", "countTokens"), {
          generateContentRequest: {
            model: "models/gemini-2.5-flash",
            contents: [{ role: "user", parts: [{ text: "hello", bogusPart: 1 }] }],
            bogusField: 1
          }
        }, geminiKey)
        const inPart = `Invalid JSON payload received. Unknown name "bogusPart" at ` +
          `'generate_content_request.contents[0].parts[0]': Cannot find field.`
        const inRequest =
          `Invalid JSON payload received. Unknown name "bogusField" at 'generate_content_request': Cannot find field.`
        assert.strictEqual(reply.status, 400)
        assert.deepStrictEqual(json(reply), {
          error: {
            code: 400,
            message: `${inPart}\n${inRequest}`,
            status: "INVALID_ARGUMENT",
            details: [{
              "@type": "type.googleapis.com/google.rpc.BadRequest",
              fieldViolations: [
                { field: "generate_content_request.contents[0].parts[0]", description: inPart },
                { field: "generate_content_request", description: inRequest }
              ]
            }]
          }
        })
      }))

    it.scopedLive("answers declared tools with a functionCall, and a function response with text", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const declared = yield* post(geminiUrl(sandbox), {
          ...prompt("open the page"),
          tools: [{
            functionDeclarations: [{
              name: "open_url",
              parameters: { type: "OBJECT", properties: { url: { type: "STRING" } }, required: ["url"] }
            }]
          }]
        }, geminiKey)
        const declaredContent = at(json(declared), "candidates", 0, "content")
        assert.match(String(at(declaredContent, "parts", 0, "thoughtSignature")), /^[A-Za-z0-9+/]+=*$/)
        assert.deepStrictEqual(
          declaredContent,
          {
            role: "model",
            parts: [{
              functionCall: { name: "open_url", args: { url: "sandbox" } },
              thoughtSignature: at(declaredContent, "parts", 0, "thoughtSignature")
            }]
          }
        )
        const computerUse = yield* post(geminiUrl(sandbox), {
          ...prompt("click"),
          tools: [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }]
        }, geminiKey)
        assert.deepStrictEqual(
          at(json(computerUse), "candidates", 0, "content", "parts", 0, "functionCall"),
          { name: "click_at", args: { x: 500, y: 500 } }
        )
        const done = yield* post(geminiUrl(sandbox), {
          contents: [
            { role: "user", parts: [{ text: "click" }] },
            { role: "model", parts: [{ functionCall: { name: "click_at", args: { x: 1, y: 2 } } }] },
            { role: "user", parts: [{ functionResponse: { name: "click_at", response: { url: "about:blank" } } }] }
          ],
          tools: [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }]
        }, geminiKey)
        assert.deepStrictEqual(
          at(json(done), "candidates", 0, "content"),
          { role: "model", parts: [{ text: "sandbox answer to: click" }] }
        )
      }))

    it.scopedLive("blocks a prompt containing BLOCK_ME with promptFeedback and no candidates", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const reply = yield* askGemini(sandbox, "please BLOCK_ME now")
        assert.strictEqual(reply.status, 200)
        const body = json(reply)
        assert.isUndefined(at(body, "candidates"))
        assert.deepStrictEqual(at(body, "promptFeedback"), { blockReason: "SAFETY" })
        assert.property(body, "usageMetadata")
      }))

    it.scopedLive("rejects a wrong key with Google's API_KEY_INVALID body, a missing one with 403; accepts ?key=", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ geminiApiKey: "real-looking-key" })
        const expected = {
          error: {
            code: 400,
            message: "API key not valid. Please pass a valid API key.",
            status: "INVALID_ARGUMENT",
            details: [{
              "@type": "type.googleapis.com/google.rpc.ErrorInfo",
              reason: "API_KEY_INVALID",
              domain: "googleapis.com",
              metadata: { service: "generativelanguage.googleapis.com" }
            }]
          }
        }
        const missing = yield* post(geminiUrl(sandbox), prompt("hi"))
        const wrong = yield* post(geminiUrl(sandbox), prompt("hi"), { "x-goog-api-key": "nope" })
        assert.deepStrictEqual(statuses([missing, wrong]), [403, 400])
        assert.include(JSON.stringify(json(missing)), "PERMISSION_DENIED")
        assert.deepStrictEqual(json(wrong), expected)
        const viaQuery = yield* post(`${geminiUrl(sandbox)}?key=real-looking-key`, prompt("hi"))
        assert.strictEqual(viaQuery.status, 200)
      }))

    it.scopedLive("answers a body that is not JSON, or has no contents, with 400 INVALID_ARGUMENT", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        for (const body of ["{not json", { contents: [] }, { generationConfig: {} }, { contents: [{ parts: [{}] }] }]) {
          const reply = yield* post(geminiUrl(sandbox), body, geminiKey)
          assert.strictEqual(reply.status, 400, JSON.stringify(body))
          const error = at(json(reply), "error")
          assert.strictEqual(at(error, "code"), 400)
          assert.strictEqual(at(error, "status"), "INVALID_ARGUMENT")
          assert.isString(at(error, "message"))
        }
      }))
  })

  describe("fault plans", () => {
    it.scopedLive("a script of 503, 503, 200 gives those statuses in order, then normal answers", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [503, 503, { status: 200 }] } })
        const replies = [
          yield* askGemini(sandbox),
          yield* askGemini(sandbox),
          yield* askGemini(sandbox),
          yield* askGemini(sandbox)
        ]
        assert.deepStrictEqual(statuses(replies), [503, 503, 200, 200])
        assert.deepStrictEqual(json(replies[0]!), {
          error: { code: 503, message: "The model is overloaded. Please try again later.", status: "UNAVAILABLE" }
        })
        assert.isNull(replies[0]!.headers.get("retry-after"))
        const recorded = yield* sandbox.requestsFor("gemini")
        assert.deepStrictEqual(recorded.map((r) => [r.fault, r.outcome]), [
          ["status", 503],
          ["status", 503],
          ["none", 200],
          ["none", 200]
        ])
      }))

    // A real Gemini 429 (public reports, e.g. google-gemini/gemini-cli#8437): no Retry-After
    // header; the wait is only in RetryInfo (fractional), beside a QuotaFailure and a Help link.
    it.scopedLive("a Gemini 429 carries RetryInfo, QuotaFailure and Help in the body and no Retry-After header", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: "45.837906927 seconds" }, { status: 429, quota: "day" }])
        const hinted = yield* askGemini(sandbox)
        assert.strictEqual(hinted.status, 429)
        assert.isNull(hinted.headers.get("retry-after"))
        const error = at(json(hinted), "error")
        assert.strictEqual(at(error, "code"), 429)
        assert.strictEqual(at(error, "status"), "RESOURCE_EXHAUSTED")
        assert.match(String(at(error, "message")), /^You exceeded your current quota[\s\S]*Please retry in 45\.837906927s\.$/)
        assert.deepStrictEqual(at(error, "details"), [
          {
            "@type": "type.googleapis.com/google.rpc.Help",
            links: [{ description: "Learn more about Gemini API quotas", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }]
          },
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [{
              quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
              quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
              quotaDimensions: { location: "global", model: "gemini-2.5-flash" },
              quotaValue: "10"
            }]
          },
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "45.837906927s" }
        ])
        const daily = yield* askGemini(sandbox)
        assert.strictEqual(daily.status, 429)
        assert.deepStrictEqual(
          at(json(daily), "error", "details", 1, "violations", 0, "quotaId"),
          "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        )
        assert.lengthOf(each(at(json(daily), "error", "details")), 2, "no RetryInfo without a hint")
      }))

    it.scopedLive("reset drops the connection without an answer", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [{ reset: true }] } })
        const failure = yield* Effect.flip(askGemini(sandbox))
        assert.include(["ECONNRESET", "UND_ERR_SOCKET"], failure.code, failure.message)
        assert.strictEqual((yield* askGemini(sandbox)).status, 200)
        assert.deepStrictEqual((yield* sandbox.requestsFor("gemini")).map((r) => r.outcome), ["reset", 200])
      }))

    it.scopedLive("a hung request is released with a connection error when the sandbox stops", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { anthropic: [{ hang: true }] } })
        const pending = yield* Effect.fork(post(`${sandbox.url}/v1/messages`, messagesBody(), anthropicHeaders))
        const [recorded] = yield* awaitRequests(sandbox, 1)
        assert.strictEqual(recorded?.outcome, "hang")
        yield* sandbox.stop
        const exit = yield* Fiber.await(pending)
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const failure = yield* Effect.flip(exit)
          assert.notStrictEqual(failure.code, "ABORTED", "released by the sandbox, not by the client timeout")
        }
      }))

    it.scopedLive("a hung request ends when the client gives up, and stop does not wait for it", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { events: [{ hang: true }] } })
        const failure = yield* Effect.flip(request(`${sandbox.url}/events`, {
          method: "POST",
          body: JSON.stringify(event("e1")),
          signal: AbortSignal.timeout(100)
        }))
        assert.strictEqual(failure.code, "ABORTED")
        yield* sandbox.stop
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 0, distinctIds: 0, duplicates: 0, evicted: 0 })
      }))

    it.scopedLive("malformed answers 200 with a body that is not JSON", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({
          plans: { gemini: [{ malformed: true }], events: [{ malformed: true }], anthropic: [{ malformed: true }] }
        })
        const replies = [
          yield* askGemini(sandbox),
          yield* post(`${sandbox.url}/events`, event("e1")),
          yield* post(`${sandbox.url}/v1/messages`, messagesBody(), anthropicHeaders)
        ]
        for (const reply of replies) {
          assert.strictEqual(reply.status, 200)
          assert.include(reply.headers.get("content-type") ?? "", "application/json")
          assert.throws(() => JSON.parse(reply.text))
        }
        assert.deepStrictEqual((yield* sandbox.requests).map((r) => r.outcome), ["malformed", "malformed", "malformed"])
      }))

    it.scopedLive("a latency fault still answers normally, and is recorded as latency", () =>
      Effect.gen(function*() {
        // How long it waits is the Effect Clock's: the TestClock test below drives it.
        const sandbox = yield* Sandbox.make({ plans: { gemini: [{ latency: "10 millis" }] } })
        const reply = yield* askGemini(sandbox)
        assert.strictEqual(reply.status, 200)
        assert.strictEqual((yield* sandbox.requestsFor("gemini"))[0]?.fault, "latency")
      }))

    it.scoped("latency sleeps on the Effect Clock, so a TestClock drives it", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [{ latency: "1 hour" }] } })
        const pending = yield* Effect.fork(askGemini(sandbox))
        const [recorded] = yield* awaitRequests(sandbox, 1)
        assert.strictEqual(recorded?.time, 0, "arrival time comes from the TestClock")
        for (let i = 0; i < 400 && (yield* TestClock.sleeps()).length === 0; i++) {
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        }
        yield* TestClock.adjust("1 hour")
        assert.strictEqual((yield* Fiber.join(pending)).status, 200)
      }))

    it.scopedLive("a seeded random mix gives the same outcomes for the same seed", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const mix = (seed: number): Sandbox.FaultPlan => ({
          seed,
          rates: { rateLimited: 0.25, serverError: 0.25, malformed: 0.2 },
          retryAfter: "2 seconds"
        })
        const run = (seed: number) =>
          Effect.gen(function*() {
            yield* sandbox.reset
            yield* sandbox.setPlan("gemini", mix(seed))
            for (let i = 0; i < 24; i++) yield* askGemini(sandbox)
            return (yield* sandbox.requestsFor("gemini")).map((r) => r.outcome)
          })
        const first = yield* run(42)
        const again = yield* run(42)
        const other = yield* run(7)
        assert.deepStrictEqual(again, first)
        assert.notDeepEqual(other, first)
        // The mix really mixes: every kind shows up in 24 draws at these rates.
        for (const outcome of [200, 429, 503, "malformed"]) assert.include(first, outcome)
      }))
  })

  describe("observability events", () => {
    it.scopedLive("public mode behaves like the public server", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public" })
        const saved = yield* post(`${sandbox.url}/events`, event("e1"))
        assert.strictEqual(saved.status, 200)
        assert.deepStrictEqual(json(saved), { ...event("e1"), id: 1 })
        const again = yield* post(`${sandbox.url}/events`, event("e1"))
        assert.strictEqual(at(json(again), "id"), 2, "no idempotency: stored again")

        const missing = yield* post(`${sandbox.url}/events`, { source_app: "big3", session_id: "s1", payload: {} })
        assert.strictEqual(missing.status, 400)
        assert.deepStrictEqual(json(missing), { error: "Missing required fields" })
        const invalid = yield* post(`${sandbox.url}/events`, "{oops")
        assert.strictEqual(invalid.status, 400)
        assert.deepStrictEqual(json(invalid), { error: "Invalid request" })

        for (
          const reply of [
            yield* post(`${sandbox.url}/events/batch`, [event("e2")]),
            yield* request(`${sandbox.url}/health`),
            yield* request(`${sandbox.url}/`, { method: "DELETE" })
          ]
        ) {
          assert.strictEqual(reply.status, 200)
          assert.include(reply.headers.get("content-type") ?? "", "text/plain")
          assert.strictEqual(reply.text, "Multi-Agent Observability Server")
        }

        const preflight = yield* request(`${sandbox.url}/events`, { method: "OPTIONS" })
        assert.deepStrictEqual([preflight.status, preflight.headers.get("access-control-allow-origin")], [200, "*"])

        const stored = yield* sandbox.events
        assert.deepStrictEqual(stored.map((e) => [e.id, e.clientId]), [[1, "e1"], [2, "e1"]])
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 2, distinctIds: 1, duplicates: 1, evicted: 0 })
        const recent = yield* request(`${sandbox.url}/events/recent?limit=1`)
        assert.deepStrictEqual(each(json(recent), "id"), [2])
      }))

    it.scopedLive("extended mode stores a repeated id once and counts the duplicate", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const first = yield* post(`${sandbox.url}/events`, event("e1"))
        const repeat = yield* post(`${sandbox.url}/events`, event("e1", { summary: "changed" }))
        assert.deepStrictEqual(statuses([first, repeat]), [200, 200])
        assert.deepStrictEqual(json(repeat), json(first), "answered with the stored event")
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 1, distinctIds: 1, duplicates: 1, evicted: 0 })
        const health = yield* request(`${sandbox.url}/health`)
        assert.deepStrictEqual([health.status, json(health)], [200, { status: "ok" }])
      }))

    it.scopedLive("a batch is idempotent per id and answers {accepted, duplicates}", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        yield* post(`${sandbox.url}/events`, event("e1"))
        const batch = yield* post(`${sandbox.url}/events/batch`, [event("e1"), event("e2"), event("e3"), event("e2")])
        assert.strictEqual(batch.status, 200)
        assert.deepStrictEqual(json(batch), { accepted: 2, duplicates: 2 })
        const poisoned = yield* post(`${sandbox.url}/events/batch`, [event("e4"), { id: "e5", source_app: "x" }])
        assert.strictEqual(poisoned.status, 400)
        assert.deepStrictEqual(json(poisoned), { error: "Missing required fields", index: 1 })
        const unbindable = yield* post(`${sandbox.url}/events/batch`, [event("e4"), event("e5", { summary: [1] })])
        assert.deepStrictEqual([unbindable.status, at(json(unbindable), "index")], [400, 1])
        const notArray = yield* post(`${sandbox.url}/events/batch`, event("e6"))
        assert.deepStrictEqual([notArray.status, json(notArray)], [400, { error: "Invalid request" }])
        assert.deepStrictEqual((yield* sandbox.events).map((e) => e.clientId), ["e1", "e2", "e3"])
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 3, distinctIds: 3, duplicates: 2, evicted: 0 })
      }))

    // The public server: `parseInt(url.searchParams.get('limit') || '300')`
    // (disler/claude-code-hooks-multi-agent-observability, apps/server/src/index.ts).
    it.scopedLive("recent events default to the latest 300, as the public server's", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        yield* post(`${sandbox.url}/events/batch`, Array.from({ length: 310 }, (_, n) => event(`e${n}`, { timestamp: 1000 + n })))
        const recent = json(yield* request(`${sandbox.url}/events/recent`))
        assert.lengthOf(each(recent), 300)
        assert.deepStrictEqual([at(recent, 0, "id"), at(recent, 299, "id")], [11, 310])
      }))

    it.scopedLive("recent events come newest last, with the public server's numeric ids", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        yield* post(`${sandbox.url}/events/batch`, [1, 2, 3].map((n) => event(`e${n}`, { timestamp: 1000 * n })))
        const recent = yield* request(`${sandbox.url}/events/recent?limit=2`)
        assert.deepStrictEqual(
          each(json(recent)).map((e) => [at(e, "id"), at(e, "timestamp")]),
          [[2, 2000], [3, 3000]]
        )
      }))

    // Unbounded, 300,000 events held 464 MB and the store kept growing until a reset.
    it.scopedLive("the event store keeps the newest maxEvents events and counts the evicted", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ maxEvents: 3 })
        for (const n of [1, 2]) yield* post(`${sandbox.url}/events`, event(`e${n}`, { timestamp: 1000 * n }))
        const batch = yield* post(`${sandbox.url}/events/batch`, [3, 4, 5].map((n) => event(`e${n}`, { timestamp: 1000 * n })))
        assert.deepStrictEqual(json(batch), { accepted: 3, duplicates: 0 })
        assert.deepStrictEqual((yield* sandbox.events).map((e) => [e.id, e.clientId]), [[3, "e3"], [4, "e4"], [5, "e5"]])
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 3, distinctIds: 3, duplicates: 0, evicted: 2 })
        assert.deepStrictEqual(each(json(yield* request(`${sandbox.url}/events/recent`)), "id"), [3, 4, 5])
        const admin = json(yield* request(`${sandbox.url}/__sandbox/events`))
        assert.deepStrictEqual(at(admin, "stats"), { stored: 3, distinctIds: 3, duplicates: 0, evicted: 2 })
        assert.deepStrictEqual(each(at(admin, "events"), "clientId"), ["e3", "e4", "e5"])
      }))

    it.scopedLive("dedupe covers the kept events: a kept id is a duplicate, an evicted one is stored anew", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ maxEvents: 2 })
        for (const n of [1, 2, 3]) yield* post(`${sandbox.url}/events`, event(`e${n}`))
        const kept = yield* post(`${sandbox.url}/events`, event("e3"))
        assert.strictEqual(at(json(kept), "id"), 3, "answered with the stored event")
        const evicted = yield* post(`${sandbox.url}/events`, event("e1"))
        assert.strictEqual(at(json(evicted), "id"), 4, "a new server id, never a reused one")
        assert.deepStrictEqual((yield* sandbox.events).map((e) => [e.id, e.clientId]), [[3, "e3"], [4, "e1"]])
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 2, distinctIds: 2, duplicates: 1, evicted: 2 })
        yield* sandbox.reset
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 0, distinctIds: 0, duplicates: 0, evicted: 0 })
      }))

    it.scopedLive("public mode: an id stored twice stays known until its last copy is evicted", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public", maxEvents: 2 })
        for (const id of ["e1", "e1", "e2"]) yield* post(`${sandbox.url}/events`, event(id))
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 2, distinctIds: 2, duplicates: 1, evicted: 1 })
        yield* post(`${sandbox.url}/events`, event("e3"))
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 2, distinctIds: 2, duplicates: 1, evicted: 2 })
        assert.deepStrictEqual((yield* sandbox.events).map((e) => e.clientId), ["e2", "e3"])
      }))

    // Seen on the public server (Bun 1.4, bun:sqlite): it binds these fields to SQLite as they
    // came, so an object or array throws ("Binding expected string, …") and its catch answers
    // 400 "Invalid request"; a boolean binds as an integer and its TEXT column keeps the digit.
    it.scopedLive("public mode: a field SQLite cannot bind is refused, a boolean one is stored as its digit", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public" })
        for (const field of ["source_app", "session_id", "hook_event_type", "summary", "model_name", "timestamp"]) {
          for (const value of [{ k: 1 }, [1]]) {
            const refused = yield* post(`${sandbox.url}/events`, event(undefined, { [field]: value }))
            assert.deepStrictEqual([refused.status, refused.text], [400, `{"error":"Invalid request"}`], field)
          }
        }
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 0, distinctIds: 0, duplicates: 0, evicted: 0 })

        const saved = yield* post(`${sandbox.url}/events`, event(undefined, { source_app: true, summary: true }))
        assert.deepStrictEqual([saved.status, at(json(saved), "source_app"), at(json(saved), "id")], [200, true, 1])
        const recent = json(yield* request(`${sandbox.url}/events/recent`))
        assert.deepStrictEqual([at(recent, 0, "source_app"), at(recent, 0, "summary")], ["1", "1"])
        const options = json(yield* request(`${sandbox.url}/events/filter-options`))
        assert.deepStrictEqual(at(options, "source_apps"), ["1"])
      }))

    // Seen on the public server: its preflight is an empty body with `Content-Length: 0`, and
    // `?limit=abc` reaches SQLite as NaN ("datatype mismatch"), which Bun answers with its 500 page.
    it.scopedLive("public mode: the preflight has a zero length, a limit that is not a number is a 500", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public" })
        const preflight = yield* request(`${sandbox.url}/events`, { method: "OPTIONS" })
        assert.deepStrictEqual(
          [preflight.status, preflight.headers.get("content-length"), preflight.headers.get("transfer-encoding")],
          [200, "0", null]
        )
        const recent = yield* request(`${sandbox.url}/events/recent?limit=abc`)
        assert.deepStrictEqual(
          [recent.status, recent.headers.get("content-type"), recent.headers.get("access-control-allow-origin")],
          [500, "text/html;charset=utf-8", null]
        )
        const empty = yield* request(`${sandbox.url}/events/recent?limit=`)
        assert.deepStrictEqual([empty.status, empty.text], [200, "[]"], "an empty limit is the default ('' || '300')")
      }))

    // Seen on the public server: it answers the event's own truthy `timestamp` as sent, and its
    // INTEGER column keeps a number, a boolean as 1, a numeric string as its number and any other
    // string as text, which SQLite sorts after every number.
    it.scopedLive("public mode: a timestamp that is not a number is answered as sent and stored as SQLite keeps it", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public" })
        const answered: Array<unknown> = []
        for (const timestamp of ["abc", " 12 ", true, 5, "1e3", "0x10"]) {
          answered.push(at(json(yield* post(`${sandbox.url}/events`, event(undefined, { timestamp }))), "timestamp"))
        }
        assert.deepStrictEqual(answered, ["abc", " 12 ", true, 5, "1e3", "0x10"])
        const recent = json(yield* request(`${sandbox.url}/events/recent`))
        assert.deepStrictEqual(
          each(recent).map((e) => [at(e, "id"), at(e, "timestamp")]),
          [[3, 1], [4, 5], [2, 12], [5, 1000], [6, "0x10"], [1, "abc"]]
        )
      }))

    // The public server's WebSocket feed: `{"type":"initial","data":[recent 300]}` on connect, then
    // `{"type":"event","data":<the POST's answer>}` for each stored event; no upgrade, the banner.
    it.scopedLive("GET /stream sends the recent events, then each stored event", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ eventsMode: "public" })
        yield* post(`${sandbox.url}/events`, event("e1"))
        const messages = yield* Queue.unbounded<unknown>()
        yield* Effect.acquireRelease(
          Effect.async<WebSocket, Error>((resume) => {
            const socket = new WebSocket(`${sandbox.url.replace(/^http/, "ws")}/stream`)
            socket.on("message", (data) => Queue.unsafeOffer(messages, JSON.parse(String(data))))
            socket.once("open", () => resume(Effect.succeed(socket)))
            socket.once("error", (error) => resume(Effect.fail(error)))
          }),
          (socket) => Effect.sync(() => socket.terminate())
        )
        const next = Queue.take(messages).pipe(Effect.timeout("2 seconds"))
        const initial = yield* next
        assert.deepStrictEqual([at(initial, "type"), each(at(initial, "data"), "id")], ["initial", [1]])
        const saved = yield* post(`${sandbox.url}/events`, event("e2"))
        assert.deepStrictEqual(yield* next, { type: "event", data: json(saved) })
        const refused = yield* post(`${sandbox.url}/events`, { source_app: "big3" })
        assert.strictEqual(refused.status, 400)
        const plain = yield* request(`${sandbox.url}/stream`)
        assert.deepStrictEqual([plain.status, plain.text], [200, "Multi-Agent Observability Server"])
        yield* post(`${sandbox.url}/events`, event("e3"))
        assert.strictEqual(at(yield* next, "data", "id"), 3, "a refused event is not broadcast")
      }))

    it("the bounded store stays in order across many evictions", () => {
      const store = new EventStore(10)
      for (let n = 1; n <= 5_000; n++) {
        store.insert({ id: `e${n}`, source_app: "a", session_id: "s", hook_event_type: "t", payload: { n } }, n, true)
      }
      assert.deepStrictEqual(store.events().map((e) => e.id), Array.from({ length: 10 }, (_, i) => 4_991 + i))
      assert.deepStrictEqual(store.stats(), { stored: 10, distinctIds: 10, duplicates: 0, evicted: 4_990 })
      assert.isTrue(store.insert({ id: "e4991", source_app: "a", session_id: "s", hook_event_type: "t", payload: {} }, 0, true).duplicate)
      assert.isFalse(store.insert({ id: "e4990", source_app: "a", session_id: "s", hook_event_type: "t", payload: {} }, 0, true).duplicate)
    })

    it.scoped("maxEvents below 1 fails with SandboxError", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Sandbox.make({ maxEvents: 0 }))
        assert.strictEqual(error.message, "sandbox maxEvents must be a positive integer, got 0")
      }))

    it.scopedLive("with an observability key, events need a matching X-API-Key", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ observabilityApiKey: "obs-secret" })
        const without = yield* post(`${sandbox.url}/events`, event("e1"))
        assert.deepStrictEqual([without.status, json(without)], [401, { error: "Unauthorized" }])
        const withKey = yield* post(`${sandbox.url}/events`, event("e1"), { "x-api-key": "obs-secret" })
        assert.strictEqual(withKey.status, 200)
      }))

    it.scopedLive("faults on events and batches use the server's {error} format", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({
          plans: { events: [{ status: 429, retryAfter: "1 second" }], eventsBatch: [500] }
        })
        const limited = yield* post(`${sandbox.url}/events`, event("e1"))
        assert.deepStrictEqual([limited.status, limited.headers.get("retry-after"), json(limited)], [429, "1", {
          error: "Too many requests"
        }])
        const failed = yield* post(`${sandbox.url}/events/batch`, [event("e1")])
        assert.deepStrictEqual([failed.status, json(failed)], [500, { error: "Internal server error" }])
        assert.deepStrictEqual(yield* sandbox.eventStats, { stored: 0, distinctIds: 0, duplicates: 0, evicted: 0 })
      }))
  })

  describe("anthropic", () => {
    it.scopedLive("answers a message in the Messages API shape", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const reply = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), anthropicHeaders)
        assert.strictEqual(reply.status, 200)
        assert.match(reply.headers.get("request-id") ?? "", /^req_/)
        const body = json(reply)
        assert.match(String(at(body, "id")), /^msg_/)
        assert.deepInclude(body, {
          type: "message",
          role: "assistant",
          model: "claude-sonnet-4-5",
          content: [{ type: "text", text: "sandbox answer to: hello claude" }],
          stop_reason: "end_turn",
          stop_sequence: null
        })
        assert.isNumber(at(body, "usage", "input_tokens"))
        assert.isNumber(at(body, "usage", "output_tokens"))
        // count_tokens takes no max_tokens: the API refuses it as an extra input.
        const { max_tokens: _maxTokens, ...countBody } = messagesBody()
        const count = yield* post(`${sandbox.url}/v1/messages/count_tokens`, countBody, anthropicHeaders)
        assert.deepStrictEqual([count.status, Object.keys(Object(json(count)))], [200, ["input_tokens"]])
      }))

    it.scopedLive("streams the real event sequence", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const reply = yield* post(`${sandbox.url}/v1/messages`, messagesBody({ stream: true }), anthropicHeaders)
        assert.strictEqual(reply.status, 200)
        assert.include(reply.headers.get("content-type") ?? "", "text/event-stream")
        const events = reply.text.split("\n\n").filter((block) => block !== "").map((block) => {
          const [eventLine, dataLine] = block.split("\n")
          const type = eventLine?.replace(/^event: /, "")
          const data: unknown = JSON.parse(dataLine?.replace(/^data: /, "") ?? "")
          assert.strictEqual(at(data, "type"), type)
          return data
        })
        const types = events.map((e) => at(e, "type"))
        assert.deepStrictEqual(types.slice(0, 3), ["message_start", "content_block_start", "ping"])
        assert.deepStrictEqual(types.slice(-3), ["content_block_stop", "message_delta", "message_stop"])
        const deltas = events.filter((e) => at(e, "type") === "content_block_delta")
        assert.isAtLeast(deltas.length, 2)
        assert.strictEqual(deltas.map((e) => at(e, "delta", "text")).join(""), "sandbox answer to: hello claude")
        const messageDelta = events.find((e) => at(e, "type") === "message_delta")
        assert.deepInclude(at(messageDelta, "delta"), { stop_reason: "end_turn", stop_sequence: null })
      }))

    it.scopedLive("rejects a bad key with 401 authentication_error and a request id", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ anthropicApiKey: "test-anthropic-key" })
        const wrong = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), {
          "x-api-key": "wrong-anthropic-key",
          "anthropic-version": "2023-06-01"
        })
        assert.strictEqual(wrong.status, 401)
        const body = json(wrong)
        assert.deepStrictEqual(at(body, "error"), { type: "authentication_error", message: "invalid x-api-key" })
        assert.strictEqual(at(body, "type"), "error")
        assert.strictEqual(at(body, "request_id"), wrong.headers.get("request-id"))
        const bearer = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), {
          authorization: "Bearer test-anthropic-key",
          "anthropic-version": "2023-06-01"
        })
        assert.strictEqual(bearer.status, 200)
        const noVersion = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), { "x-api-key": "test-anthropic-key" })
        assert.strictEqual(noVersion.status, 400)
        assert.strictEqual(at(json(noVersion), "error", "type"), "invalid_request_error")
      }))

    it.scopedLive("faults use Anthropic's error types: 529 overloaded, 429 rate limit with retry-after", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { anthropic: [529, { status: 429, retryAfter: "2 seconds" }] } })
        const overloaded = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), anthropicHeaders)
        assert.strictEqual(overloaded.status, 529)
        assert.deepInclude(json(overloaded), { type: "error", error: { type: "overloaded_error", message: "Overloaded" } })
        assert.isNull(overloaded.headers.get("retry-after"))
        assert.isNotNull(overloaded.headers.get("request-id"))
        const limited = yield* post(`${sandbox.url}/v1/messages`, messagesBody(), anthropicHeaders)
        assert.strictEqual(limited.status, 429)
        assert.strictEqual(limited.headers.get("retry-after"), "2")
        assert.strictEqual(at(json(limited), "error", "type"), "rate_limit_error")
      }))

    it.scopedLive("answers invalid bodies and unknown routes in Anthropic's format", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const invalid = yield* post(`${sandbox.url}/v1/messages`, { model: "m", messages: [] }, anthropicHeaders)
        assert.strictEqual(invalid.status, 400)
        assert.strictEqual(at(json(invalid), "error", "type"), "invalid_request_error")
        assert.include(String(at(json(invalid), "error", "message")), "max_tokens: Field required")
        const unknown = yield* request(`${sandbox.url}/v1/nothing-here`, { headers: anthropicHeaders })
        assert.strictEqual(unknown.status, 404)
        assert.strictEqual(at(json(unknown), "error", "type"), "not_found_error")
      }))
  })

  describe("control", () => {
    it.scopedLive("stop refuses connections; start listens on the same port and keeps the events", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        assert.strictEqual((yield* post(`${sandbox.url}/events`, event("e1"))).status, 200)
        yield* sandbox.stop
        const refused = yield* Effect.flip(post(`${sandbox.url}/events`, event("e2")))
        assert.strictEqual(refused.code, "ECONNREFUSED")
        yield* sandbox.start
        assert.strictEqual((yield* post(`${sandbox.url}/events`, event("e2"))).status, 200)
        assert.deepStrictEqual((yield* sandbox.events).map((e) => e.clientId), ["e1", "e2"])
        yield* sandbox.start // already running: a no-op
        yield* sandbox.stop
        yield* sandbox.stop // already stopped: a no-op
      }))

    it.scopedLive("a taken port fails with SandboxError", () =>
      Effect.gen(function*() {
        const first = yield* Sandbox.make()
        const error = yield* Effect.flip(Sandbox.make({ port: first.port }))
        assert.strictEqual(error._tag, "SandboxError")
        assert.strictEqual(error.port, first.port)
        assert.include(error.message, "EADDRINUSE")
      }))

    it.scopedLive("recorded requests never contain a key", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({
          geminiApiKey: "gemini-secret-1",
          anthropicApiKey: "anthropic-secret-2",
          observabilityApiKey: "obs-secret-3"
        })
        yield* post(geminiUrl(sandbox), prompt("hi"), { "x-goog-api-key": "gemini-secret-1" })
        yield* post(`${geminiUrl(sandbox)}?key=gemini-secret-1`, prompt("hi"))
        yield* post(`${sandbox.url}/v1/messages`, messagesBody(), {
          authorization: "Bearer anthropic-secret-2",
          "anthropic-version": "2023-06-01"
        })
        yield* post(`${sandbox.url}/events`, event("e1"), { "x-api-key": "obs-secret-3" })
        const recorded = yield* sandbox.requests
        assert.lengthOf(recorded, 4)
        assert.deepStrictEqual(recorded.map((r) => r.outcome), [200, 200, 200, 200])
        const dump = JSON.stringify(recorded)
        for (const secret of ["gemini-secret-1", "anthropic-secret-2", "obs-secret-3"]) assert.notInclude(dump, secret)
        assert.strictEqual(recorded[0]?.headers["x-goog-api-key"], "<redacted>")
        assert.strictEqual(recorded[1]?.query["key"], "<redacted>")
        assert.strictEqual(recorded[2]?.headers["authorization"], "<redacted>")
        assert.strictEqual(recorded[3]?.headers["x-api-key"], "<redacted>")
      }))

    it.scopedLive("reset clears records, events and plans", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { gemini: [503, 503] } })
        yield* askGemini(sandbox)
        yield* post(`${sandbox.url}/events`, event("e1"))
        yield* sandbox.reset
        assert.lengthOf(yield* sandbox.requests, 0)
        assert.lengthOf(yield* sandbox.events, 0)
        assert.strictEqual((yield* askGemini(sandbox)).status, 200)
        yield* sandbox.setPlan("gemini", [503])
        yield* sandbox.clearPlans
        assert.strictEqual((yield* askGemini(sandbox)).status, 200)
      }))

    it.live("run serves until interrupted and logs its URL", () =>
      Effect.gen(function*() {
        const port = yield* Effect.scoped(Effect.map(Sandbox.make(), (sandbox) => sandbox.port))
        const logs: Array<unknown> = []
        const logger = Logger.make(({ message }) => logs.push(message))
        const fiber = yield* Effect.fork(
          Sandbox.run({ port }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        )
        let health = yield* Effect.either(request(`http://127.0.0.1:${port}/health`))
        for (let i = 0; i < 200 && Either.isLeft(health); i++) {
          yield* Effect.sleep("5 millis")
          health = yield* Effect.either(request(`http://127.0.0.1:${port}/health`))
        }
        assert.isTrue(Either.isRight(health) && health.right.status === 200)
        assert.include(JSON.stringify(logs), `http://127.0.0.1:${port}`)
        yield* Fiber.interrupt(fiber)
        const refused = yield* Effect.flip(request(`http://127.0.0.1:${port}/health`))
        assert.strictEqual(refused.code, "ECONNREFUSED")
      }))

    it.live("the layer provides the service and stops the server when released", () =>
      Effect.gen(function*() {
        const url = yield* Effect.gen(function*() {
          const sandbox = yield* Sandbox.Sandbox
          assert.strictEqual((yield* askGemini(sandbox)).status, 200)
          return sandbox.url
        }).pipe(Effect.provide(Sandbox.layer()))
        const refused = yield* Effect.flip(post(`${url}/health`, {}))
        assert.strictEqual(refused.code, "ECONNREFUSED")
      }))
  })
})
