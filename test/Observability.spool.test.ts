/**
 * The spool pieces of the observability client (redeliverer, spool writer) against an in-memory
 * spool whose reads and writes fail, die or hang on demand; time is the TestClock's.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { Breaker } from "../src/CircuitBreaker.js"
import type { Delivery } from "../src/observability/Delivery.js"
import * as Options from "../src/observability/Options.js"
import * as Redeliverer from "../src/observability/Redeliverer.js"
import { State } from "../src/observability/State.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { captureLogs } from "./support/capture.js"
import { makeFakeSpool } from "./support/spool.js"

/** Delivers everything it is given, and remembers what. */
const deliveringAll = () => {
  const sent: Array<string> = []
  const delivery: Delivery = {
    deliver: (bodies) => Effect.sync(() => bodies.map((body) => void sent.push(body))),
    sendOne: (body) => Effect.sync(() => void sent.push(body)),
    singleConcurrency: 4,
    splitConcurrency: 4
  }
  return { delivery, sent }
}

const setup = (ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const fake = makeFakeSpool(ids)
    const opened = yield* fake.spool.open
    const state = new State("single", opened, 0)
    const settings = yield* Options.resolve({ redeliveryInterval: "1 second" })
    const { delivery, sent } = deliveringAll()
    const redeliverer = yield* Redeliverer.make({
      spool: fake.spool,
      state,
      settings,
      clock: yield* Effect.clock,
      delivery,
      breaker: new Breaker("observability", ReliabilityConfig.defaultBreakers.observability)
    })
    return { ...fake, state, redeliverer, sent }
  })

/** Lets forked fibers run until they wait on something. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("Observability spool redelivery", () => {
  it.effect("a spool that cannot be read keeps its size, is counted and logged, and is read again a second later", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { faults, redeliverer, rows, sent, state } = yield* setup(["a", "b"])
      faults.page.push("fail")
      const fiber = yield* Effect.fork(redeliverer.run)
      yield* settle
      assert.deepStrictEqual(
        { spoolSize: state.spoolSize, storageErrors: state.counters.storageErrors, sent: sent.length },
        { spoolSize: 2, storageErrors: 1, sent: 0 }
      )
      assert.deepStrictEqual(lines.filter((line) => line.startsWith("ERROR")), [
        "ERROR observability: cannot read the spool: disk I/O error; its events stay there and redelivery will try again"
      ])
      yield* TestClock.adjust(Duration.seconds(1))
      yield* settle
      assert.deepStrictEqual(
        { spoolSize: state.spoolSize, redelivered: state.counters.redelivered, rows: rows.length },
        { spoolSize: 0, redelivered: 2, rows: 0 }
      )
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.effect("drainSpool fails with the SqlError when the spool cannot be read", () =>
    Effect.gen(function*() {
      const { faults, redeliverer, state } = yield* setup(["a"])
      faults.page.push("fail")
      const error = yield* Effect.flip(redeliverer.drain)
      assert.strictEqual(error.message, "cannot read the spool: disk I/O error")
      assert.strictEqual(state.spoolSize, 1)
    }))

  it.effect("a defect while recording a redelivery is not taken for a storage error: drainSpool dies with it", () =>
    Effect.gen(function*() {
      const { faults, redeliverer, state } = yield* setup(["a"])
      faults.commit.push("die")
      const exit = yield* Effect.exit(redeliverer.drain)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "drain dies")
      assert.strictEqual(state.counters.storageErrors, 0)
    }))

  it.effect("a defect stops background redelivery with an error in the log, instead of looping over the same rows", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { faults, redeliverer, sent } = yield* setup(["a"])
      faults.commit.push("die")
      const fiber = yield* Effect.fork(redeliverer.run)
      yield* settle
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
      assert.deepStrictEqual(sent.length, 1)
      assert.isTrue(lines.some((line) => line.startsWith("ERROR observability: spool redelivery stopped on a defect")))
    }).pipe(Effect.provide(layer))
  })
})
