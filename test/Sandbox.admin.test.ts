/**
 * Chaos from outside the process: fault plans as JSON (`big3 sandbox --faults FILE`) and the
 * loopback admin API under `/__sandbox/`, over real HTTP on 127.0.0.1. The cross-process run of
 * the CLI is in cli.signals.test.ts, with the other tests that start `big3` as a process.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { isLoopback } from "../src/sandbox/Admin.js"
import * as Sandbox from "../src/Sandbox.js"
import { big3 } from "./support/cli.js"
import { at, each } from "./support/json.js"

interface Reply {
  readonly status: number
  readonly text: string
}

const request = (url: string, init: RequestInit = {}) =>
  Effect.tryPromise({
    try: async (): Promise<Reply> => {
      const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) })
      return { status: response.status, text: await response.text() }
    },
    catch: (error) => new Error(String(error))
  })

const admin = (sandbox: Sandbox.Service, method: string, route: string, body?: unknown) =>
  request(`${sandbox.url}/__sandbox${route}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
  })

const askGemini = (sandbox: Sandbox.Service) =>
  request(`${sandbox.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-goog-api-key": "sandbox-key" },
    body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hi" }] }] })
  })

const postEvent = (sandbox: Sandbox.Service) =>
  request(`${sandbox.url}/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ source_app: "app", session_id: "s1", hook_event_type: "Stop", payload: {} })
  })

describe("Sandbox fault plans from outside", () => {
  describe("as JSON", () => {
    it("parses steps, mixes and durations as the in-process plans", () => {
      const parsed = Sandbox.parsePlans(JSON.stringify({
        gemini: [503, { status: 429, retryAfter: "45.8 seconds", quota: "day" }, { midStream: "error", after: 2 }],
        anthropic: { seed: 7, rates: { serverError: 0.25 }, retryAfter: 1500 },
        events: [{ hang: true }, { reset: true }, { malformed: true }, { latency: "2 seconds" }]
      }))
      assert.isTrue(Either.isRight(parsed))
      if (Either.isRight(parsed)) {
        assert.deepStrictEqual(Object.keys(parsed.right).sort(), ["anthropic", "events", "gemini"])
        const step = parsed.right.gemini
        assert.isTrue(Array.isArray(step) && step.length === 3)
      }
    })

    it("says what is wrong and where: an unknown route, an unknown step field, a bad duration", () => {
      const left = (text: string) => Either.match(Sandbox.parsePlans(text), { onLeft: (reason) => reason, onRight: () => "parsed" })
      const of = (value: unknown) => left(JSON.stringify(value))
      assert.match(left("{"), /^not JSON \(/)
      assert.strictEqual(of({ gemeni: [503] }), "at gemeni: no such route; routes: gemini, events, eventsBatch, anthropic, realtime")
      assert.strictEqual(
        of({ gemini: [{ statsu: 503 }] }),
        "at gemini.0: expected a status code or an object with one of status, latency, hang, reset, malformed, midStream"
      )
      assert.strictEqual(
        of({ gemini: [503, { status: 429, retryAfter: "soon" }] }),
        `at gemini.1.retryAfter: expected a duration such as "2 seconds" or a number of milliseconds`
      )
      assert.strictEqual(of({ gemini: [700] }), "at gemini.0: Expected a number between 100 and 599, actual 700")
      assert.strictEqual(of({ events: [{ hang: true, extra: 1 }] }), `at events.0.extra: is unexpected, expected: "hang"`)
      assert.strictEqual(
        of({ anthropic: { seed: 1, rates: { bogus: 1 } } }),
        `at anthropic.rates.bogus: is unexpected, expected: "rateLimited" | "serverError" | "latency" | "hang" | "reset" | "malformed"`
      )
    })
  })

  describe("the Realtime plan as JSON", () => {
    it("parses every kind of step, one per connection, beside the HTTP routes' plans", () => {
      const steps = [
        "normal",
        { status: 503, retryAfter: "2 seconds" },
        { hang: true },
        { dropAfter: 3 },
        { stallAfter: 4 },
        { expireAfter: 5 },
        { errorAfter: 7, code: "server_error", message: "boom" },
        { status: 429, code: "insufficient_quota" }
      ]
      const parsed = Sandbox.parsePlans(JSON.stringify({ gemini: [503], realtime: steps }))
      assert.isTrue(Either.isRight(parsed))
      if (Either.isRight(parsed)) {
        assert.deepStrictEqual(parsed.right.realtime, [
          "normal",
          { status: 503, retryAfter: Duration.seconds(2) },
          { hang: true },
          { dropAfter: 3 },
          { stallAfter: 4 },
          { expireAfter: 5 },
          { errorAfter: 7, code: "server_error", message: "boom" },
          { status: 429, code: "insufficient_quota" }
        ])
        assert.deepStrictEqual(parsed.right.gemini, [503])
      }
      assert.deepStrictEqual(Sandbox.parseRealtimePlan(JSON.stringify([{ errorAfter: 0 }])), Either.right([{ errorAfter: 0 }]))
    })

    it("says what is wrong and where: not a list, an unknown step, a bad count, a status that refuses nothing", () => {
      const left = (parsed: Either.Either<unknown, string>) => Either.match(parsed, { onLeft: (reason) => reason, onRight: () => "parsed" })
      const ofPlans = (value: unknown) => left(Sandbox.parsePlans(JSON.stringify(value)))
      const ofPlan = (value: unknown) => left(Sandbox.parseRealtimePlan(JSON.stringify(value)))
      assert.strictEqual(ofPlans({ realtime: { seed: 1, rates: {} } }), "at realtime: expected an array of steps, one per connection")
      const kinds = `expected "normal" or an object with one of status, hang, dropAfter, stallAfter, expireAfter, errorAfter`
      assert.strictEqual(ofPlans({ realtime: ["normal", { errorAftr: 7 }] }), `at realtime.1: ${kinds}`)
      // A bare status is an HTTP route's step; a connection's refusal says so: { "status": 503 }.
      assert.strictEqual(ofPlans({ realtime: [503] }), `at realtime.0: ${kinds}`)
      assert.strictEqual(ofPlan([{ dropAfter: -1 }]), "at plan.0.dropAfter: Expected a non-negative number, actual -1")
      assert.strictEqual(ofPlan([{ errorAfter: 7, code: 500 }]), "at plan.0.code: Expected string, actual 500")
      assert.strictEqual(ofPlan([{ status: 200 }]), "at plan.0.status: Expected a number between 400 and 599, actual 200")
      assert.strictEqual(ofPlan([{ stallAfter: 2, extra: 1 }]), `at plan.0.extra: is unexpected, expected: "stallAfter"`)
    })
  })

  describe("the admin API", () => {
    it.scopedLive("sets, lists and clears plans; the plan drives the next requests", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const put = yield* admin(sandbox, "PUT", "/plans/gemini", [503, { status: 429, retryAfter: "2 seconds" }])
        assert.strictEqual(put.status, 204)
        const listed = yield* admin(sandbox, "GET", "/plans")
        assert.deepStrictEqual(JSON.parse(listed.text), { gemini: [503, { status: 429, retryAfter: 2000 }] })
        assert.strictEqual((yield* askGemini(sandbox)).status, 503)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {
          gemini: [{ status: 429, retryAfter: 2000 }]
        })
        const several = yield* admin(sandbox, "POST", "/plans", { events: [500], anthropic: [529] })
        assert.strictEqual(several.status, 204)
        assert.deepStrictEqual(Object.keys(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text)).sort(), [
          "anthropic",
          "events",
          "gemini"
        ])
        assert.strictEqual((yield* admin(sandbox, "DELETE", "/plans/gemini")).status, 204)
        assert.strictEqual((yield* askGemini(sandbox)).status, 200)
        assert.strictEqual((yield* postEvent(sandbox)).status, 500)
        assert.strictEqual((yield* admin(sandbox, "DELETE", "/plans")).status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {})
      }))

    it.scopedLive("lists recorded requests (by route) and stored events, and resets", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        yield* askGemini(sandbox)
        yield* postEvent(sandbox)
        const all = JSON.parse((yield* admin(sandbox, "GET", "/requests")).text)
        assert.deepStrictEqual(each(all, "route"), ["gemini", "events"])
        assert.strictEqual(at(all, 0, "headers", "x-goog-api-key"), "<redacted>")
        const gemini = JSON.parse((yield* admin(sandbox, "GET", "/requests?route=gemini")).text)
        assert.deepStrictEqual(each(gemini, "path"), ["/v1beta/models/gemini-2.5-flash:generateContent"])
        const events = JSON.parse((yield* admin(sandbox, "GET", "/events")).text)
        assert.deepStrictEqual(at(events, "stats"), { stored: 1, distinctIds: 0, duplicates: 0, evicted: 0 })
        assert.deepStrictEqual(each(at(events, "events"), "session_id"), ["s1"])
        assert.strictEqual((yield* admin(sandbox, "POST", "/reset")).status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/requests")).text), [])
        assert.lengthOf(yield* sandbox.events, 0)
      }))

    it.scopedLive("refuses a bad plan (400), an unknown route (404) and is not recorded as traffic", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const bad = yield* admin(sandbox, "PUT", "/plans/gemini", [{ status: "503" }])
        assert.strictEqual(bad.status, 400)
        assert.deepStrictEqual(JSON.parse(bad.text), { error: "invalid fault plan: at plan.0.status: Expected number, actual \"503\"" })
        const unknown = yield* admin(sandbox, "PUT", "/plans/openai", [503])
        assert.deepStrictEqual([unknown.status, JSON.parse(unknown.text)], [404, {
          error: `no fault-plan route "openai"; routes: gemini, events, eventsBatch, anthropic, realtime`
        }])
        const notJson = yield* admin(sandbox, "POST", "/plans", "{oops")
        assert.strictEqual(notJson.status, 400)
        assert.lengthOf(yield* sandbox.requests, 0)
      }))

    it.scopedLive("sets, lists and clears the Realtime plan; the next connection takes its first step", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const put = yield* admin(sandbox, "PUT", "/plans/realtime", [
          { status: 503, retryAfter: "2 seconds" },
          { errorAfter: 7, code: "server_error" }
        ])
        assert.strictEqual(put.status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {
          realtime: [{ status: 503, retryAfter: 2000 }, { errorAfter: 7, code: "server_error" }]
        })
        // The refusal comes before any check of the upgrade, so a plain GET takes the step.
        const refused = yield* request(`${sandbox.realtime.url.replace(/^ws/, "http")}?model=gpt-realtime`)
        assert.strictEqual(refused.status, 503)
        assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.fault), [
          { status: 503, retryAfter: Duration.seconds(2) }
        ])
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {
          realtime: [{ errorAfter: 7, code: "server_error" }]
        })
        assert.strictEqual((yield* admin(sandbox, "DELETE", "/plans/realtime")).status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {})
        // In the --faults shape with the other routes, and cleared with them.
        assert.strictEqual((yield* admin(sandbox, "POST", "/plans", { gemini: [503], realtime: [{ hang: true }] })).status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {
          gemini: [503],
          realtime: [{ hang: true }]
        })
        assert.strictEqual((yield* admin(sandbox, "DELETE", "/plans")).status, 204)
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {})
        const bad = yield* admin(sandbox, "PUT", "/plans/realtime", [{ errorAfter: "7" }])
        assert.deepStrictEqual([bad.status, JSON.parse(bad.text)], [400, {
          error: `invalid fault plan: at plan.0.errorAfter: Expected number, actual "7"`
        }])
        assert.deepStrictEqual(JSON.parse((yield* admin(sandbox, "GET", "/plans")).text), {})
      }))

    it("answers loopback clients only", () => {
      for (const address of ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"]) assert.isTrue(isLoopback(address), address)
      for (const address of ["10.0.0.2", "192.168.1.5", "::ffff:10.0.0.2", "fe80::1", "1.127.0.0"]) {
        assert.isFalse(isLoopback(address), address)
      }
    })
  })

  describe("big3 sandbox --faults", () => {
    it.scoped("a file that is not a plan exits 2 naming the file and the problem", () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-faults-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const file = path.join(dir, "faults.json")
        fs.writeFileSync(file, JSON.stringify({ gemini: [{ hang: "yes" }] }))
        const { code, stderr } = yield* big3(["sandbox", "--port", "0", "--faults", file])
        assert.strictEqual(code, 2)
        assert.strictEqual(stderr, `big3 sandbox: --faults ${file}: at gemini.0.hang: Expected true, actual "yes"`)
        const missing = yield* big3(["sandbox", "--port", "0", "--faults", path.join(dir, "nope.json")])
        assert.strictEqual(missing.code, 2)
        fs.writeFileSync(file, JSON.stringify({ realtime: [{ errorAfter: 7, code: "server_error" }, { dropAfter: 2.5 }] }))
        const realtime = yield* big3(["sandbox", "--port", "0", "--faults", file])
        assert.deepStrictEqual([realtime.code, realtime.stderr], [
          2,
          `big3 sandbox: --faults ${file}: at realtime.1.dropAfter: Expected an integer, actual 2.5`
        ])
      }))
  })
})
