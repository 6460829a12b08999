/**
 * The pieces of the observability client on their own: delivery against a fake transport, the
 * redeliverer and the spool writer against an in-memory spool whose reads and writes fail, die
 * or hang on demand. Time is the TestClock's.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { Breaker } from "../src/CircuitBreaker.js"
import type { Result } from "../src/observability/Answer.js"
import * as Delivery from "../src/observability/Delivery.js"
import * as Options from "../src/observability/Options.js"
import * as Redeliverer from "../src/observability/Redeliverer.js"
import * as Shutdown from "../src/observability/Shutdown.js"
import * as Spool from "../src/observability/Spool.js"
import * as SpoolWriter from "../src/observability/SpoolWriter.js"
import type { Entry } from "../src/observability/State.js"
import { State, tally } from "../src/observability/State.js"
import type * as Transport from "../src/observability/Transport.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"
import { captureLogs } from "./support/capture.js"
import { makeFakeSpool } from "./support/spool.js"

/** Delivers everything it is given, and remembers what. */
const deliveringAll = () => {
  const sent: Array<string> = []
  const delivery: Delivery.Delivery = {
    deliver: (bodies) => Effect.sync(() => bodies.map((body) => void sent.push(body))),
    sendOne: (body) => Effect.sync(() => void sent.push(body)),
    singleConcurrency: 4,
    splitConcurrency: 4
  }
  return { delivery, sent }
}

/** A writer and a redeliverer on a fake spool holding `ids`, delivering with `delivering` (default: everything). */
const setup = (
  ids: ReadonlyArray<string>,
  options: Options.Options = {},
  { delivery, sent }: { readonly delivery: Delivery.Delivery; readonly sent: Array<string> } = deliveringAll()
) =>
  Effect.gen(function*() {
    const fake = makeFakeSpool(ids)
    const opened = yield* fake.spool.open(0)
    const state = new State("single", opened, 0)
    const settings = yield* Options.resolve({ redeliveryInterval: "1 second", ...options })
    const clock = yield* Effect.clock
    const writer = SpoolWriter.make({ spool: fake.spool, state, settings, clock })
    const redeliverer = yield* Redeliverer.make({
      spool: fake.spool,
      state,
      settings,
      clock,
      delivery,
      writer,
      breaker: new Breaker("observability", ReliabilityConfig.defaultBreakers.observability)
    })
    return { ...fake, state, writer, redeliverer, sent }
  })

/** Lets forked fibers run until they wait on something. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

const unavailable: Result = { dead: false, reason: "ServiceUnavailable: 503", status: 503 }

/** The events a `LOST n event(s)` line stands for. */
const lostIn = (line: string) => Number(/^ERROR observability: LOST (\d+) event\(s\)/.exec(line)?.[1] ?? 0)

/**
 * Three failed deliveries on a disk that refuses writes, with queueCapacity 1: e1 waits in memory,
 * e2 and e3 do not fit, 300 ms apart (one line for both would come a second later).
 */
const failThreeWithinASecond = (writer: SpoolWriter.SpoolWriter, state: State) =>
  Effect.gen(function*() {
    writer.settle(state.accept(`{"id":"e1"}`, 1), unavailable)
    yield* settle
    yield* TestClock.adjust("100 millis")
    yield* settle
    for (const n of [2, 3]) {
      writer.settle(state.accept(`{"id":"e${n}"}`, n), unavailable)
      yield* TestClock.adjust("200 millis")
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
    }
  })

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

  it.effect("a spool that stays unreadable is logged once a second at most, however short the redelivery interval", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { faults, redeliverer, state } = yield* setup(["a", "b"], { redeliveryInterval: "100 millis" })
      for (let i = 0; i < 100; i++) faults.page.push("fail")
      const fiber = yield* Effect.fork(redeliverer.run)
      for (let tenth = 0; tenth < 30; tenth++) {
        yield* settle
        yield* TestClock.adjust("100 millis")
      }
      yield* settle
      const errors = lines.filter((line) => line.startsWith("ERROR"))
      // 31 reads in 3 s: every one counted, one line a second.
      assert.strictEqual(state.counters.storageErrors, 31)
      assert.strictEqual(errors.length, 4, errors.join("\n"))
      assert.strictEqual(
        errors[1],
        "ERROR observability: cannot read the spool: disk I/O error; its events stay there and redelivery will try again (10 failed reads in the last second)"
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

/** A transport that answers 200 with the event, and dies (a bug of ours) for a body containing "bug". */
const buggyTransport: Transport.Transport = {
  description: "fake",
  post: (_route, body) =>
    body.includes("bug")
      ? Effect.die(new TypeError("cannot read properties of undefined"))
      : Effect.succeed({ status: 200, contentType: "application/json", headers: {}, body, truncated: false })
}

const makeDelivery = Effect.gen(function*() {
  const settings = yield* Options.resolve({ concurrency: 1 })
  const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, 0)
  const protection = { policy: "observability", breaker: "observability", quiet: true } as const
  const delivery = Delivery.make({
    settings,
    state,
    transport: buggyTransport,
    clock: yield* Effect.clock,
    singleConcurrency: 1,
    protectSingle: yield* Resilience.makeProtect({ operation: "observability_event", ...protection }),
    protectBatch: yield* Resilience.makeProtect({ operation: "observability_batch", ...protection })
  })
  return { settings, state, delivery }
}).pipe(Effect.provide(Layer.provideMerge(CircuitBreaker.layer, ReliabilityConfig.layerDefault)))

describe("Observability delivery", () => {
  it.effect("a defect in delivery is not an answer of the server: deliver dies with it", () =>
    Effect.gen(function*() {
      const { delivery } = yield* makeDelivery
      assert.deepStrictEqual(yield* delivery.deliver([`{"id":"fine"}`], 1), [undefined])
      const exit = yield* Effect.exit(delivery.deliver([`{"id":"bug"}`], 1))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "deliver dies")
    }))

  it.effect("a worker that meets a defect logs it, spools the event it held and goes on with the queue", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { delivery, settings, state } = yield* makeDelivery
      const queue = yield* Queue.unbounded<Entry>()
      const settled: Array<readonly [string, Result]> = []
      const slot: Delivery.Slot = { current: undefined }
      const fiber = yield* Effect.fork(Delivery.worker({
        settings,
        state,
        queue,
        delivery,
        settle: (entry, result) => void settled.push([entry.body, result])
      }, slot))
      yield* Queue.offerAll(queue, [state.accept(`{"id":"bug"}`, 1), state.accept(`{"id":"next"}`, 2)])
      yield* settle
      assert.deepStrictEqual(settled, [
        [`{"id":"bug"}`, { dead: false, reason: "not delivered: a defect in delivery (see the log)", status: undefined }],
        [`{"id":"next"}`, undefined]
      ])
      assert.deepStrictEqual(lines.filter((line) => line.startsWith("ERROR")), [
        "ERROR observability: a delivery worker met a defect; 1 event(s) it held went to the spool"
      ])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })
})

describe("Observability shutdown", () => {
  it.effect("ends within graceful_shutdown while the disk hangs; what it could not write is counted and logged as lost", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { faults, spool } = makeFakeSpool()
      // The first write fails, the retry and every write after it hang (a stalled disk).
      faults.commit.push("fail", "hang", "hang")
      const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, 0)
      const settings = yield* Options.resolve({})
      const writer = SpoolWriter.make({ spool, state, settings, clock: yield* Effect.clock })
      const scope = yield* Scope.make()
      const workerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const writerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      yield* Effect.forkIn(writer.run, writerScope)
      writer.settle(state.accept(`{"id":"e1"}`, 1), unavailable)
      yield* settle
      yield* TestClock.adjust("100 millis") // the retry pause: the writer now waits on the disk
      yield* settle
      const shutdown = yield* Effect.fork(Shutdown.make({
        state,
        queue: yield* Queue.unbounded<Entry>(),
        slots: [],
        workerScope,
        writerScope,
        writer,
        gracefulShutdown: Duration.seconds(1)
      }))
      yield* settle
      yield* TestClock.adjust("800 millis") // the flush gives up, keeping 200 ms for the last write
      yield* settle
      yield* TestClock.adjust("200 millis")
      yield* settle
      assert.isTrue(Option.isSome(yield* Fiber.poll(shutdown)), "shutdown ended within graceful_shutdown")
      assert.strictEqual(state.counters.dropped, 1)
      assert.include(lines, "ERROR observability: LOST 1 event(s): shutdown ran out of time to write the spool; ids e1")
    }).pipe(Effect.provide(layer))
  })
})

describe("Observability spool writer on a failing disk", () => {
  it.effect("keeps what it cannot write in memory up to queueCapacity, counts the rest as lost, logs once a second, and writes it all when the disk has room", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { commits, faults, rows, spool } = makeFakeSpool()
      // A full disk: every write fails (each round is tried twice) until room is made.
      for (let i = 0; i < 40; i++) faults.commit.push("fail")
      const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, 0)
      const settings = yield* Options.resolve({ queueCapacity: 3, redeliveryInterval: "1 second" })
      const writer = SpoolWriter.make({ spool, state, settings, clock: yield* Effect.clock })
      const fiber = yield* Effect.fork(writer.run)
      for (let n = 1; n <= 5; n++) {
        writer.settle(state.accept(`{"id":"e${n}"}`, n), unavailable)
        yield* settle
        yield* TestClock.adjust("100 millis") // the retry pause of a round
        yield* settle
        yield* TestClock.adjust("1 second") // the pause before the next try
        yield* settle
      }
      assert.deepStrictEqual(
        { dropped: state.counters.dropped, spooled: state.counters.spooled, rows: rows.length },
        { dropped: 2, spooled: 0, rows: 0 }
      )
      const errors = lines.filter((line) => line.startsWith("ERROR"))
      assert.strictEqual(
        errors[0],
        "ERROR observability: the spool cannot be written (cannot write the spool: disk I/O error); 1 failed write(s) in the last second. " +
          "1 event(s) wait in memory for the disk, 0 lost so far"
      )
      assert.include(errors, "ERROR observability: LOST 1 event(s): the spool cannot be written (cannot write the spool: disk I/O error) and memory holds 3 at most; 1 lost so far")
      // Ten more seconds of a full disk, a write tried every 1.1 s: one line a second at most.
      const before = lines.length
      for (let tenth = 0; tenth < 100; tenth++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      assert.isAtMost(lines.length - before, 10)
      assert.strictEqual(state.counters.dropped, 2)
      // Room again: the events kept in memory are written.
      faults.commit.length = 0
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(rows.map((row) => row.id).sort(), ["e1", "e2", "e3"])
      assert.strictEqual(state.counters.spooled, 3)
      assert.strictEqual(state.counters.dropped, 2)
      assert.isAbove(commits.length, 0)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.effect("losses within one second are logged when the disk takes writes again: the LOST lines add up to what was lost", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const { faults, rows, spool } = makeFakeSpool()
      for (let i = 0; i < 6; i++) faults.commit.push("fail")
      const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, 0)
      const settings = yield* Options.resolve({ queueCapacity: 1, redeliveryInterval: "200 millis" })
      const writer = SpoolWriter.make({ spool, state, settings, clock: yield* Effect.clock })
      const fiber = yield* Effect.fork(writer.run)
      yield* failThreeWithinASecond(writer, state)
      assert.strictEqual(state.counters.dropped, 2)
      assert.deepStrictEqual(lines.filter((line) => lostIn(line) > 0), [
        "ERROR observability: LOST 1 event(s): the spool cannot be written (cannot write the spool: disk I/O error) and memory holds 1 at most; 1 lost so far"
      ])
      // Room again, 300 ms after the first LOST line: the second is written with the kept event.
      yield* TestClock.adjust("200 millis")
      yield* settle
      assert.deepStrictEqual(rows.map((row) => row.id), ["e1"])
      assert.deepStrictEqual(lines.filter((line) => lostIn(line) > 0), [
        "ERROR observability: LOST 1 event(s): the spool cannot be written (cannot write the spool: disk I/O error) and memory holds 1 at most; 1 lost so far",
        "ERROR observability: LOST 1 event(s): the spool cannot be written (cannot write the spool: disk I/O error) and memory holds 1 at most; 2 lost so far"
      ])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })
})

describe("Observability spool writer: deletes of delivered rows", () => {
  it.effect("wait for the next journal round, or ten commit intervals at most, rather than committing alone every interval", () =>
    Effect.gen(function*() {
      const { commits, rows, spool } = makeFakeSpool()
      const state = new State("single", { backlog: 0, deadLetters: 0, rows: 0, bytes: 0 }, 0)
      const settings = yield* Options.resolve({ commitInterval: "5 millis", commitEvents: 500 })
      const writer = SpoolWriter.make({ spool, state, settings, clock: yield* Effect.clock })
      const fiber = yield* Effect.fork(writer.run)
      const journaled = [1, 2, 3].map((n) => state.accept(`{"id":"e${n}"}`, n))
      for (const entry of journaled) writer.journal(entry)
      yield* settle
      yield* TestClock.adjust("5 millis")
      yield* settle
      assert.strictEqual(commits.length, 1)
      assert.deepStrictEqual(rows.map((row) => row.id), ["e1", "e2", "e3"])

      // Delivered: three deletes, which start no commit of their own within the interval…
      for (const entry of journaled) writer.settle(entry, undefined)
      yield* settle
      yield* TestClock.adjust("5 millis")
      yield* settle
      yield* TestClock.adjust("30 millis")
      yield* settle
      assert.strictEqual(commits.length, 1)
      assert.strictEqual(rows.length, 3)
      // …but ride along with the next journal round, within its interval.
      const next = state.accept(`{"id":"e4"}`, 4)
      writer.journal(next)
      yield* settle
      yield* TestClock.adjust("5 millis")
      yield* settle
      assert.strictEqual(commits.length, 2)
      assert.deepStrictEqual({ journal: commits[1]!.journal.map((item) => Spool.idOf(item.body)), removed: commits[1]!.remove.length }, {
        journal: ["e4"],
        removed: 3
      })
      assert.deepStrictEqual(rows.map((row) => row.id), ["e4"])

      // Deletes alone go after ten commit intervals (50 ms), counted from the first of them.
      writer.settle(next, undefined)
      yield* settle
      yield* TestClock.adjust("49 millis")
      yield* settle
      assert.strictEqual(commits.length, 2)
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.strictEqual(commits.length, 3)
      assert.deepStrictEqual({ journal: commits[2]!.journal.length, removed: commits[2]!.remove.length }, { journal: 0, removed: 1 })
      assert.deepStrictEqual(rows, [])
      yield* Fiber.interrupt(fiber)
    }))
})

describe("Observability with the server back before the disk", () => {
  it.effect("failed deliveries held in memory for a disk that refuses writes are delivered from there, once, without waiting for the disk", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      let up = false
      const sent: Array<string> = []
      const answer = (body: string): Result => {
        if (!up) return unavailable
        sent.push(body)
        return undefined
      }
      const delivery: Delivery.Delivery = {
        deliver: (bodies) => Effect.sync(() => bodies.map(answer)),
        sendOne: (body) => Effect.sync(() => answer(body)),
        singleConcurrency: 4,
        splitConcurrency: 4
      }
      const { faults, redeliverer, rows, state, writer } = yield* setup([], { queueCapacity: 100 }, { delivery, sent })
      // The disk refuses every write for the whole test.
      for (let i = 0; i < 1000; i++) faults.commit.push("fail")
      const fibers = [yield* Effect.fork(writer.run), yield* Effect.fork(redeliverer.run)]
      for (let n = 1; n <= 3; n++) {
        writer.settle(state.accept(`{"id":"e${n}"}`, n), unavailable)
      }
      // Server down, disk full: tried from memory now and then, never lost.
      for (let i = 0; i < 3; i++) {
        yield* settle
        yield* TestClock.adjust("1 second")
      }
      yield* settle
      assert.deepStrictEqual(sent, [])
      assert.strictEqual(state.counters.dropped, 0)

      up = true
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      assert.deepStrictEqual([...sent].sort(), [`{"id":"e1"}`, `{"id":"e2"}`, `{"id":"e3"}`])
      assert.deepStrictEqual(
        { redelivered: state.counters.redelivered, dropped: state.counters.dropped, kept: writer.keptEvents(), rows: rows.length },
        { redelivered: 3, dropped: 0, kept: 0, rows: 0 }
      )
      assert.include(lines, "INFO observability: delivered 3 event(s) held in memory while the spool cannot be written; 0 left there")
      for (const fiber of fibers) yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a loss the once-a-second log held back is written once its second is over, though the client has nothing left to do", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      let up = false
      const delivery: Delivery.Delivery = {
        deliver: (bodies) => Effect.sync(() => bodies.map(() => up ? undefined : unavailable)),
        sendOne: () => Effect.sync(() => up ? undefined : unavailable),
        singleConcurrency: 4,
        splitConcurrency: 4
      }
      const { faults, redeliverer, state, writer } = yield* setup([], { queueCapacity: 1, redeliveryInterval: "200 millis" }, { delivery, sent: [] })
      for (let i = 0; i < 1000; i++) faults.commit.push("fail")
      const fibers = [yield* Effect.fork(writer.run), yield* Effect.fork(redeliverer.run)]
      // e2's line is written at once, e3's held back.
      yield* failThreeWithinASecond(writer, state)
      assert.strictEqual(state.counters.dropped, 2)
      assert.strictEqual(lines.map(lostIn).reduce((a, b) => a + b, 0), 1)
      // The server takes e1 from memory: nothing is left to write, and the disk stays full.
      up = true
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual({ redelivered: state.counters.redelivered, kept: writer.keptEvents() }, { redelivered: 1, kept: 0 })
      // Seconds later, with nothing else happening, every loss counted has been logged.
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.strictEqual(lines.map(lostIn).reduce((a, b) => a + b, 0), 2, lines.join("\n"))
      for (const fiber of fibers) yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })
})

describe("Observability log tallies", () => {
  it.effect("one line a second: what a second held back is written by `due` once it is over, or by `flush` at once", () =>
    Effect.gen(function*() {
      let now = 0
      const lines: Array<string> = []
      const log = tally(() => now, (n, reason) => Effect.sync(() => void lines.push(`${n} (${reason})`)))
      yield* log.add(1, "first")
      yield* log.add(2, "second")
      yield* log.due
      assert.deepStrictEqual(lines, ["1 (first)"])
      now = 999
      yield* log.due
      assert.deepStrictEqual(lines, ["1 (first)"])
      now = 1_000
      yield* log.due
      yield* log.due
      assert.deepStrictEqual(lines, ["1 (first)", "2 (second)"])
      yield* log.add(4, "third")
      yield* log.flush
      yield* log.flush
      assert.deepStrictEqual(lines, ["1 (first)", "2 (second)", "4 (third)"])
    }))
})
