/**
 * Happy-path overhead per call: an immediately-resolving operation wrapped by each contender.
 * Each figure is the median of `runs` runs of `calls` calls, in ns/call, with the ratio to a bare
 * call of the same kind (Effect or Promise).
 */
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleAll, retry, timeout, TimeoutStrategy, wrap } from "cockatiel"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schedule from "effect/Schedule"
import pRetry from "p-retry"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as BigPromise from "../src/Promise.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"
import { median, type Row } from "./util.js"

interface Contender {
  readonly name: string
  readonly kind: "effect" | "promise"
  /** Runs `calls` calls and resolves when done. */
  readonly run: (calls: number) => Promise<void>
}

export const runOverheadBench = async (options: { readonly calls: number; readonly runs: number }): Promise<ReadonlyArray<Row>> => {
  const services = Layer.provideMerge(CircuitBreaker.layer, ReliabilityConfig.layerDefault)
  const runtime = ManagedRuntime.make(services)
  const protect = await runtime.runPromise(
    Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
  )
  const op = Effect.succeed(1)
  const effectLoop = <E>(wrapped: () => Effect.Effect<number, E, ReliabilityConfig.ReliabilityConfig | CircuitBreaker.CircuitBreaker>) =>
    (calls: number) =>
      runtime.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* wrapped()
      }))

  const policy = ReliabilityConfig.defaultPolicies.gemini
  const plainSchedule = Schedule.exponential(policy.initialDelay, policy.factor).pipe(
    Schedule.modifyDelay((delay) => Duration.min(delay, policy.maxDelay)),
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(policy.maxAttempts - 1))
  )

  const cockatiel = wrap(
    retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 2000, maxDelay: 60_000 }) }),
    circuitBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
    timeout(45_000, TimeoutStrategy.Aggressive)
  )
  const big3 = BigPromise.make({ config: await runtime.runPromise(ReliabilityConfig.ReliabilityConfig) })
  const resolved = () => Promise.resolve(1)
  const listening = (signal: AbortSignal) => Promise.resolve(signal.aborted ? 0 : 1)
  const promiseLoop = (call: () => Promise<unknown>) => async (calls: number) => {
    for (let i = 0; i < calls; i++) await call()
  }

  const contenders: ReadonlyArray<Contender> = [
    { name: "bare Effect (Effect.succeed)", kind: "effect", run: effectLoop(() => op) },
    { name: "big3 protect (timeout + retry + breaker), built once", kind: "effect", run: effectLoop(() => protect(op)) },
    {
      name: "big3 Resilience.protect(options)(effect)",
      kind: "effect",
      run: effectLoop(() => Resilience.protect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })(op))
    },
    {
      name: "plain Effect.timeout + Effect.retry(Schedule)",
      kind: "effect",
      run: effectLoop(() => op.pipe(Effect.timeout("45 seconds"), Effect.retry(plainSchedule)))
    },
    { name: "bare await (Promise.resolve)", kind: "promise", run: promiseLoop(resolved) },
    { name: "cockatiel wrap(retry, breaker, timeout)", kind: "promise", run: promiseLoop(() => cockatiel.execute(resolved)) },
    { name: "p-retry (retries only)", kind: "promise", run: promiseLoop(() => pRetry(resolved, { retries: 2 })) },
    {
      name: "big3 Promise API protect()",
      kind: "promise",
      run: promiseLoop(() => big3.protect(resolved, { operation: "gemini_api", policy: "gemini", breaker: "gemini-promise" }))
    },
    {
      // A function that declares the signal parameter gets an AbortController of its own per attempt.
      name: "big3 Promise API protect(), fn takes the signal",
      kind: "promise",
      run: promiseLoop(() => big3.protect(listening, { operation: "gemini_api", policy: "gemini", breaker: "gemini-promise" }))
    }
  ]

  const perCall = new Map<string, number>()
  for (const contender of contenders) {
    // Slow contenders get fewer calls so the whole run stays in minutes; ns/call is what counts.
    await contender.run(Math.min(20_000, options.calls))
    const probe = performance.now()
    await contender.run(10_000)
    const estimateNs = ((performance.now() - probe) * 1e6) / 10_000
    const calls = estimateNs > 20_000 ? Math.min(options.calls, 100_000) : options.calls
    const samples: Array<number> = []
    for (let run = 0; run < options.runs; run++) {
      const start = process.hrtime.bigint()
      await contender.run(calls)
      samples.push(Number(process.hrtime.bigint() - start) / calls)
    }
    perCall.set(contender.name, median(samples))
    process.stderr.write(`  overhead: ${contender.name}: ${median(samples).toFixed(0)} ns/call (${calls} calls × ${options.runs})\n`)
  }
  await runtime.dispose()

  const bareEffect = perCall.get(contenders[0]!.name) ?? 1
  const bareAwait = perCall.get(contenders[4]!.name) ?? 1
  return contenders.map((contender) => {
    const ns = perCall.get(contender.name) ?? NaN
    const bare = contender.kind === "effect" ? bareEffect : bareAwait
    return {
      contender: contender.name,
      "ns/call": ns.toFixed(0),
      "µs/call": (ns / 1000).toFixed(2),
      "× bare": (ns / bare).toFixed(1)
    }
  })
}

/**
 * The async call: each contender wraps a function that returns an immediately-resolving promise
 * (a real upstream call is async). Each figure is a median of `runs` runs of `calls` calls; every
 * run of a contender is paired with a run of cockatiel's full wrap right before it, and "×
 * cockatiel" is the median of those paired ratios, so a busy machine slows both sides alike.
 */
export const runAsyncBench = async (options: { readonly calls: number; readonly runs: number }): Promise<ReadonlyArray<Row>> => {
  const services = Layer.provideMerge(CircuitBreaker.layer, ReliabilityConfig.layerDefault)
  const runtime = ManagedRuntime.make(services)
  const protect = await runtime.runPromise(
    Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
  )
  const resolved = () => Promise.resolve(1)
  const listening = (signal: AbortSignal) => Promise.resolve(signal.aborted ? 0 : 1)
  const asyncEffect = Effect.promise(resolved)
  const effectLoop = <E>(wrapped: () => Effect.Effect<number, E, ReliabilityConfig.ReliabilityConfig | CircuitBreaker.CircuitBreaker>) =>
    (calls: number) =>
      runtime.runPromise(Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* wrapped()
      }))
  const promiseLoop = (call: () => Promise<unknown>) => async (calls: number) => {
    for (let i = 0; i < calls; i++) await call()
  }
  const cockatiel = wrap(
    retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 2000, maxDelay: 60_000 }) }),
    circuitBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
    timeout(45_000, TimeoutStrategy.Aggressive)
  )
  const big3 = BigPromise.make({ config: await runtime.runPromise(ReliabilityConfig.ReliabilityConfig) })
  const promiseOptions = { operation: "gemini_api", policy: "gemini", breaker: "gemini-promise-async" } as const
  const protector = big3.protector(promiseOptions)

  const reference: Contender = { name: "cockatiel wrap(retry, breaker, timeout)", kind: "promise", run: promiseLoop(() => cockatiel.execute(resolved)) }
  const contenders: ReadonlyArray<Contender> = [
    { name: "bare await (async fn)", kind: "promise", run: promiseLoop(resolved) },
    { name: "bare Effect.promise", kind: "effect", run: effectLoop(() => asyncEffect) },
    { name: "big3 protect over an async effect, built once", kind: "effect", run: effectLoop(() => protect(asyncEffect)) },
    { name: "big3 Promise API protect(fn, options)", kind: "promise", run: promiseLoop(() => big3.protect(resolved, promiseOptions)) },
    { name: "big3 Promise API protector(options)(fn)", kind: "promise", run: promiseLoop(() => protector(resolved)) },
    {
      name: "big3 Promise API protector(options)(fn), fn takes the signal",
      kind: "promise",
      run: promiseLoop(() => protector(listening))
    },
    reference
  ]

  const time = async (contender: Contender, calls: number) => {
    const start = process.hrtime.bigint()
    await contender.run(calls)
    return Number(process.hrtime.bigint() - start) / calls
  }
  const rows: Array<Row> = []
  for (const contender of contenders) {
    await contender.run(Math.min(20_000, options.calls))
    await reference.run(Math.min(20_000, options.calls))
    const samples: Array<number> = []
    const ratios: Array<number> = []
    for (let run = 0; run < options.runs; run++) {
      const against = await time(reference, options.calls)
      const ns = await time(contender, options.calls)
      samples.push(ns)
      ratios.push(ns / against)
    }
    const ns = median(samples)
    process.stderr.write(`  async: ${contender.name}: ${ns.toFixed(0)} ns/call, × cockatiel ${median(ratios).toFixed(2)}\n`)
    rows.push({
      contender: contender.name,
      "µs/call": (ns / 1000).toFixed(2),
      "× cockatiel": median(ratios).toFixed(2)
    })
  }
  await runtime.dispose()
  return rows
}
