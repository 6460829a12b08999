/**
 * The observability client's small pure parts on the emit path: the event check (a direct check
 * in front of the Schema), the ids it stamps, reading an id back from a body, and the signal the
 * spool writer waits on.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { EventInput, isEventInput } from "../src/observability/Domain.js"
import { idOf } from "../src/observability/Spool.js"
import { Signal, State, uuidv7 } from "../src/observability/State.js"

const base = { source_app: "app", session_id: "s", hook_event_type: "PreToolUse", payload: { tool: "Bash" } }

class Inherited {
  get source_app() {
    return "app"
  }
  session_id = "s"
  hook_event_type = "PreToolUse"
  payload = {}
}

/** Values at the edges of the shape: right, wrong, and the Schema's own corners. */
const cases: ReadonlyArray<readonly [string, unknown]> = [
  ["the usual event", base],
  ["all optional fields", { ...base, id: "x", timestamp: 1, summary: "s", chat: [1, "a"], model_name: "m" }],
  ["optional fields set to undefined", { ...base, id: undefined, timestamp: undefined, summary: undefined, chat: undefined }],
  ["extra fields", { ...base, extra: 1 }],
  ["a null-prototype object", Object.assign(Object.create(null), base)],
  ["a payload that is a class instance", { ...base, payload: new Date(0) }],
  ["a payload that is an array", { ...base, payload: [1, 2] }],
  ["a payload that is null", { ...base, payload: null }],
  ["a payload that is a string", { ...base, payload: "text" }],
  ["a missing payload", { source_app: "app", session_id: "s", hook_event_type: "x" }],
  ["a number for source_app", { ...base, source_app: 1 }],
  ["a string timestamp", { ...base, timestamp: "1" }],
  ["NaN as timestamp", { ...base, timestamp: Number.NaN }],
  ["an object as chat", { ...base, chat: {} }],
  ["a number as summary", { ...base, summary: 2 }],
  ["a number as model_name", { ...base, model_name: 2 }],
  ["a number as id", { ...base, id: 2 }],
  ["fields inherited from a class", new Inherited()],
  ["an array", [base]],
  ["null", null],
  ["a string", "event"],
  ["undefined", undefined]
]

describe("Observability event check", () => {
  it("agrees with Schema.is(EventInput) on every case", () => {
    const schemaIs = Schema.is(EventInput)
    for (const [name, value] of cases) assert.strictEqual(isEventInput(value), schemaIs(value), name)
  })

  it("accepts the usual event and refuses a wrong one", () => {
    assert.isTrue(isEventInput(base))
    assert.isFalse(isEventInput({ ...base, payload: "text" }))
  })
})

describe("Observability ids", () => {
  const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  it("uuidv7 and State.newId are UUIDv7s whose first 48 bits are the millisecond", () => {
    const now = 0x0190_a1b2_c3d4
    const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, now)
    const ids = [uuidv7(now), state.newId(now), state.newId(now), state.newId(now + 1)]
    for (const id of ids) assert.match(id, v7)
    assert.strictEqual(ids[1]!.slice(0, 13), "0190a1b2-c3d4")
    assert.strictEqual(ids[3]!.slice(0, 13), "0190a1b2-c3d5")
    assert.strictEqual(new Set(ids).size, 4)
  })

  it("ids drawn past the pool of random bytes stay distinct, and their variant digit takes each of its four values", () => {
    const now = 0x0190_a1b2_c3d4
    const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, now)
    const ids = Array.from({ length: 2_000 }, (_, i) => i % 2 === 0 ? uuidv7(now) : state.newId(now))
    for (const id of ids) assert.match(id, v7)
    assert.strictEqual(new Set(ids).size, ids.length)
    // Each digit comes from 2 random bits: all four appear among 2,000 ids unless the bits are not random.
    assert.deepStrictEqual([...new Set(ids.map((id) => id[19]))].sort(), ["8", "9", "a", "b"])
    // The 74 random bits, as hex: no position is stuck on one digit.
    for (const at of [15, 16, 17, 20, 21, 22, 24, 30, 35]) assert.isAbove(new Set(ids.map((id) => id[at])).size, 8, `digit ${at}`)
  })

  it("idOf reads the id of an emitted body, escaped or not, and of any other JSON event", () => {
    assert.strictEqual(idOf(`{"id":"0190a1b2-c3d4-7abc","source_app":"a"}`), "0190a1b2-c3d4-7abc")
    assert.strictEqual(idOf(JSON.stringify({ id: `a"b\\c`, x: 1 })), `a"b\\c`)
    assert.strictEqual(idOf(JSON.stringify({ x: 1, id: "later" })), "later")
    assert.strictEqual(idOf("not json"), "")
  })
})

describe("Observability signal", () => {
  it.effect("a fire with nobody waiting is not kept: a later wait waits for the next fire", () =>
    Effect.gen(function*() {
      const signal = new Signal()
      signal.fire()
      const waiter = yield* Effect.fork(signal.wait)
      yield* Effect.yieldNow()
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiter)))
      signal.fire()
      yield* Fiber.join(waiter)
    }))

  it.effect("next() is bound when called: a fire before the waiter runs still wakes it", () =>
    Effect.gen(function*() {
      const signal = new Signal()
      const next = signal.next()
      signal.fire()
      yield* next
    }))
})
