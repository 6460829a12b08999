/**
 * The observability client's wiring: builds the pieces and starts their fibers in the layer's
 * scope.
 *
 * Life of an event:
 *
 * 1. `Intake` (`emit`) validates and stamps it, hands it to the spool writer's next group commit
 *    (durable mode, the default) and offers it to a bounded queue. A full queue sends it to the
 *    spool writer as a backlog row instead.
 * 2. `Delivery` workers take it from the queue and send it (single or batch mode) through the
 *    one protection pipeline; `Answer` says what each answer means.
 * 3. Outcomes go to the `SpoolWriter`: delivered (its row, if written, is deleted), refused for
 *    good (dead-letter table with the reason), or not deliverable now (spool, for later).
 * 4. The `Redeliverer` claims the oldest rows nobody holds and redelivers them, when the breaker
 *    lets calls through. `Signals` commits what is pending on SIGTERM / SIGINT.
 * 5. `Shutdown` (closing the scope) flushes within `graceful_shutdown`, then aborts what is in
 *    flight and spools it, with whatever is still queued: the next start redelivers it.
 *
 * All of them share one `State` record (counters, sizes, mode, flush bookkeeping).
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import * as Resilience from "../Resilience.js"
import * as Delivery from "./Delivery.js"
import type { Service } from "./Domain.js"
import * as Intake from "./Intake.js"
import type { Settings } from "./Options.js"
import { defaults } from "./Options.js"
import * as Redeliverer from "./Redeliverer.js"
import * as Shutdown from "./Shutdown.js"
import * as Signals from "./Signals.js"
import * as Spool from "./Spool.js"
import * as SpoolWriter from "./SpoolWriter.js"
import type { Entry } from "./State.js"
import { State } from "./State.js"
import * as Transport from "./Transport.js"

export { uuidv7 } from "./State.js"

const service = Transport.service

/**
 * Builds the client in the current scope. Needs the store (`SqlClient`); the `HttpClient` is
 * used when `settings.transport` is `"http-client"`. Fails only when the store cannot be opened.
 */
export const make = (
  settings: Settings
): Effect.Effect<
  Service,
  SqlError,
  ReliabilityConfig | CircuitBreaker.CircuitBreaker | HttpClient.HttpClient | SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const config = yield* ReliabilityConfig
    const registry = yield* CircuitBreaker.CircuitBreaker
    const clock = yield* Effect.clock
    const layerScope = yield* Effect.scope

    // When this client started: the epoch of its spool rows (the spool's order: start, then emit order).
    const epoch = clock.unsafeCurrentTimeMillis()
    const spool = yield* Spool.make({ leaseMillis: Duration.toMillis(settings.lease), epoch })
    const opened = yield* spool.open(epoch)
    const state = new State(settings.mode, opened, epoch)
    const queue = yield* Queue.bounded<Entry>(settings.queueCapacity)

    const singleConcurrency = settings.mode === "single" ? settings.concurrency : defaults.singleConcurrency
    const transportOptions: Transport.TransportOptions = {
      url: settings.url,
      batchUrl: settings.batchUrl,
      apiKey: settings.apiKey,
      connections: Math.max(singleConcurrency, settings.concurrency)
    }
    const transport = settings.transport === "undici"
      ? yield* Transport.undici(transportOptions)
      : yield* Transport.httpClient(transportOptions)

    // The one protection pipeline, quiet: per-event retry lines would flood the log during an
    // outage; the client logs what it spools instead.
    const protection = {
      policy: "observability",
      breaker: service,
      budget: true,
      quiet: true,
      onAttempt: (attempt: number) => {
        if (attempt > 1) state.add("retried", 1)
      }
    } as const
    const delivery = Delivery.make({
      settings,
      state,
      transport,
      clock,
      singleConcurrency,
      protectSingle: yield* Resilience.makeProtect({ operation: "observability_event", ...protection }),
      protectBatch: yield* Resilience.makeProtect({ operation: "observability_batch", ...protection })
    })
    const writer = SpoolWriter.make({ spool, state, settings, clock })
    const redeliverer = yield* Redeliverer.make({ spool, state, settings, clock, delivery, writer, breaker: registry.get(service) })
    const { emit, emitDurable } = Intake.make({ settings, state, clock, queue, writer })

    // Workers and the writer live in child scopes that shutdown closes itself, in order.
    const workerScope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    const writerScope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    yield* Effect.forkIn(writer.run, writerScope)
    const slots: Array<Delivery.Slot> = []
    const workers: Delivery.WorkerOptions = { settings, state, queue, delivery, settle: writer.settle }
    for (let i = 0; i < settings.concurrency; i++) {
      const slot: Delivery.Slot = { current: undefined }
      slots.push(slot)
      yield* Effect.forkIn(Delivery.worker(workers, slot), workerScope)
    }
    yield* Effect.forkIn(redeliverer.run, workerScope)
    yield* Signals.commitOnSignals(writer.commitPending)
    yield* Effect.addFinalizer(() =>
      Shutdown.make({
        state,
        queue,
        slots,
        workerScope,
        writerScope,
        writer,
        gracefulShutdown: config.timeoutOf("graceful_shutdown")
      })
    )

    if (opened.backlog > 0) {
      yield* Effect.logInfo(
        `observability: ${opened.backlog} event(s) in the spool from an earlier run` +
          `${opened.reclaimed > 0 ? ` (${opened.reclaimed} held by a process of this host that is gone)` : ""}; redelivering`
      )
    }
    if (opened.held > 0) {
      yield* Effect.logInfo(
        `observability: ${opened.held} event(s) in the spool are held by another process (in its memory, or being ` +
          `redelivered); they come back to the spool when it stops or its lease ends`
      )
    }
    yield* Effect.logDebug(
      `observability: ${settings.mode} mode, ${settings.concurrency} in flight, via ${transport.description}` +
        `${settings.durable ? `, durable (group commit every ${Duration.format(settings.commitInterval)} or ${settings.commitEvents} events)` : ""}`
    )

    const inFlight = (): number => {
      let n = 0
      for (const slot of slots) n += slot.current?.length ?? 0
      return n
    }

    return {
      emit,
      emitDurable,
      flush: state.flush,
      // Negative queue sizes mean fibers waiting on an empty queue.
      stats: Effect.sync(() => state.stats(Math.max(0, Option.getOrElse(queue.unsafeSize(), () => 0)), inFlight())),
      send: (event) => Effect.zipRight(emit(event), state.flush),
      drainSpool: Effect.zipRight(state.flush, redeliverer.drain),
      deadLetters: (limit = 100) => redeliverer.deadLetters(limit),
      requeueDeadLetters: redeliverer.requeueDeadLetters
    }
  })
