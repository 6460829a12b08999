/**
 * `big3 demo`: the whole runtime against an in-process sandbox, playing the four scenarios of the
 * Python version's reliability report, measured rather than narrated, plus one end-to-end flow.
 *
 * Every figure in the closing table comes from what happened: attempts are requests the sandbox
 * recorded, waits are the gaps between them, events are counted by id on the sandbox's side.
 * `fast` scales the demo's own waits (policy delays, outage length, deadlines) down for tests.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Agents from "../Agents.js"
import * as BrowserScenario from "./BrowserScenario.js"
import * as Gemini from "../Gemini.js"
import * as Observability from "../Observability.js"
import * as Realtime from "../Realtime.js"
import * as ReliabilityConfig from "../ReliabilityConfig.js"
import * as Runtime from "../Runtime.js"
import * as Telemetry from "../Telemetry.js"
import * as Sandbox from "../Sandbox.js"
import * as Store from "../Store.js"
import * as VoiceScenario from "./VoiceScenario.js"

/** One row of the closing table. */
export interface ScenarioResult {
  readonly scenario: string
  /** Requests the upstream saw for this scenario's call(s). */
  readonly attempts: number
  /** Waits between attempts, in ms, as the sandbox saw them. */
  readonly waits: ReadonlyArray<number>
  readonly outcome: string
  /** Did the scenario behave as the runtime promises? */
  readonly ok: boolean
  readonly eventsEmitted?: number | undefined
  readonly eventsDelivered?: number | undefined
  readonly eventsLost?: number | undefined
  readonly wallMs: number
  /** Scenario-specific figures (the hint honoured, the deadline that cut a command). */
  readonly details: Readonly<Record<string, number | string>>
}

export interface DemoReport {
  readonly seed: number
  readonly fast: boolean
  readonly sandboxUrl: string
  readonly scenarios: ReadonlyArray<ScenarioResult>
  readonly events: { readonly emitted: number; readonly delivered: number; readonly lost: number }
  readonly wallMs: number
  /** The `/metrics` URL the demo's metrics were served at while it ran (`BIG3_METRICS_PORT`). */
  readonly metricsUrl?: string | undefined
}

export interface DemoOptions {
  readonly seed: number
  readonly fast: boolean
  /** Prints one live line. */
  readonly say: (line: string) => Effect.Effect<void>
}

/** The demo's settings: production values where they make the point, shorter where they would bore. */
const settings = (fast: boolean) => {
  const scale = fast ? 0.05 : 1
  const ms = (millis: number) => Duration.millis(Math.max(1, Math.round(millis * scale)))
  return {
    geminiInitialDelay: ms(2000),
    rateLimitHint: fast ? Duration.seconds(1) : Duration.seconds(3),
    outage: ms(2500),
    eventsDuringOutage: fast ? 200 : 1000,
    observabilityOpen: ms(1000),
    redeliveryInterval: ms(200),
    agentExecution: ms(4000),
    progressEvery: ms(400),
    reconnectDelay: ms(1000),
    browserPageLoad: fast ? Duration.millis(1500) : Duration.seconds(3),
    // The retry budget's window, scaled like the waits, so one scenario's retries do not use up the next one's.
    budgetWindow: ms(10_000)
  }
}

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

const seconds = (millis: number) => `${(millis / 1000).toFixed(2)}s`

/** The agent backend of the demo: a scripted Claude that answers quickly, or works forever. */
const demoBackend = (progressEvery: Duration.Duration) =>
  Agents.scriptedBackend({
    run: (input) =>
      input.prompt.includes("refactor the whole codebase")
        ? Stream.fromSchedule(Schedule.spaced(progressEvery)).pipe(
          Stream.map((n) => Agents.ProgressMessage.make({ message: `still refactoring (step ${n + 1})` }))
        )
        : Stream.make(
          Agents.ProgressMessage.make({ message: `reading ${input.cwd}` }),
          Agents.TextMessage.make({ text: `Plan for: ${input.prompt}` }),
          Agents.ResultMessage.make({ text: `Done: ${input.prompt}`, isError: false, costUsd: 0 })
        )
  })

/** Runs the demo; the sandbox and every service live in this scope. */
export const runDemo = (options: DemoOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const { say, seed } = options
    const s = settings(options.fast)
    const sandbox = yield* Sandbox.make({ geminiApiKey: "sandbox-key" })
    const stateDir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-demo-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    yield* say(`sandbox listening on ${sandbox.url} (Gemini, observability events, Anthropic Messages); seed ${seed}`)

    const services = Runtime.layerWith({
      config: ReliabilityConfig.layerWith({
        timeouts: { agent_execution: s.agentExecution, browser_page_load: s.browserPageLoad },
        policies: { gemini: { initialDelay: s.geminiInitialDelay }, network: { initialDelay: s.reconnectDelay } },
        breakers: { observability: { openDuration: s.observabilityOpen } },
        budget: { window: s.budgetWindow }
      }),
      store: Store.layer({ filename: Store.databasePath(stateDir) }),
      gemini: Gemini.layerWith({ baseUrl: sandbox.url, apiKey: Redacted.make("sandbox-key") }),
      observability: Observability.layerWith({ url: `${sandbox.url}/events`, redeliveryInterval: s.redeliveryInterval }),
      agents: Agents.layerWith({ agentsDir: path.join(stateDir, "agents") }),
      realtime: Realtime.layerWith({ url: sandbox.realtime.url, apiKey: Redacted.make("sandbox-key") }),
      agentBackend: demoBackend(s.progressEvery)
    })
    const context = yield* Layer.build(services)
    const metricsUrl = Context.get(context, Telemetry.Telemetry).metricsUrl
    if (metricsUrl !== undefined) yield* say(`metrics at ${metricsUrl} while the demo runs`)
    const report = yield* scenarios(options, s, sandbox).pipe(Effect.provide(context))
    return metricsUrl === undefined ? report : { ...report, metricsUrl }
  })).pipe(Effect.withRandom(Random.make(options.seed)))

const scenarios = (options: DemoOptions, s: ReturnType<typeof settings>, sandbox: Sandbox.Service) =>
  Effect.gen(function*() {
    const { say, seed } = options
    const startedAt = yield* Clock.currentTimeMillis
    const results: Array<ScenarioResult> = []
    const geminiTimes = Effect.map(sandbox.requestsFor("gemini"), (requests) => requests.map((r) => r.time))
    const ask = (prompt: string) =>
      Effect.flatMap(Gemini.Gemini, (gemini) => gemini.generateContent({ contents: [Gemini.userTurn(prompt)] }))
    const emit = (type: string, payload: Record<string, unknown>, session = `demo-${seed}`) =>
      Observability.emit({ source_app: "big3-demo", session_id: session, hook_event_type: type, payload })

    const scenario = <E, R>(name: string, body: Effect.Effect<Omit<ScenarioResult, "scenario" | "wallMs">, E, R>) =>
      Effect.gen(function*() {
        yield* say("")
        yield* say(`▶ ${name}`)
        const begin = yield* Clock.currentTimeMillis
        const result = yield* body
        const wallMs = (yield* Clock.currentTimeMillis) - begin
        results.push({ scenario: name, wallMs, ...result })
        yield* say(`  ${result.ok ? "✔" : "✘"} ${result.outcome} (${seconds(wallMs)})`)
      })

    // 1. Intermittent network: two transient failures, then Gemini answers.
    yield* scenario(
      "intermittent network",
      Effect.gen(function*() {
        yield* sandbox.setPlan("gemini", [{ reset: true }, 503])
        const before = (yield* geminiTimes).length
        yield* say("  the sandbox drops the first connection and answers 503 to the second")
        const answer = yield* Effect.either(ask("summarise the build status"))
        const times = (yield* geminiTimes).slice(before)
        const waits = gaps(times)
        yield* Effect.forEach(waits, (wait, i) => say(`  attempt ${i + 1} failed; waited ${seconds(wait)} before attempt ${i + 2}`), { discard: true })
        const ok = answer._tag === "Right" && times.length === 3
        return {
          attempts: times.length,
          waits,
          ok,
          outcome: answer._tag === "Right"
            ? `recovered on attempt ${times.length}: "${Gemini.text(answer.right)}"`
            : `failed: ${answer.left.message}`,
          details: {}
        }
      })
    )

    // 2. API rate limit: a 429 with a server hint; the backoff waits at least the hint.
    yield* scenario(
      "API rate limit",
      Effect.gen(function*() {
        yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: s.rateLimitHint }])
        const hintMs = Duration.toMillis(s.rateLimitHint)
        yield* say(`  the sandbox answers 429 with a RetryInfo of ${seconds(hintMs)} in the body (no Retry-After header, as Gemini)`)
        const before = (yield* geminiTimes).length
        const answer = yield* Effect.either(ask("list the open pull requests"))
        const times = (yield* geminiTimes).slice(before)
        const waits = gaps(times)
        yield* Effect.forEach(waits, (wait) => say(`  waited ${seconds(wait)} (policy alone: ${seconds(Duration.toMillis(s.geminiInitialDelay))}, hint: ${seconds(hintMs)})`), { discard: true })
        const ok = answer._tag === "Right" && waits.length === 1 && waits[0]! >= hintMs
        return {
          attempts: times.length,
          waits,
          ok,
          outcome: answer._tag === "Right" ? `answered after waiting ≥ the ${seconds(hintMs)} hint` : `failed: ${answer.left.message}`,
          details: { hintMs }
        }
      })
    )

    // 3. Observability server restart: events keep flowing, none lost.
    yield* scenario(
      "observability server restart",
      Effect.gen(function*() {
        const before = (yield* sandbox.eventStats).distinctIds
        const total = s.eventsDuringOutage * 3
        const third = s.eventsDuringOutage
        const pause = Duration.toMillis(s.outage) / third
        const burst = (from: number) =>
          Effect.forEach(Array.from({ length: third }, (_, i) => from + i), (i) =>
            Effect.zipRight(emit("DemoTick", { i }), i % 10 === 0 ? Effect.sleep(Duration.millis(pause * 10)) : Effect.void), { discard: true })
        yield* say(`  emitting ${total} events; the server goes away for ${seconds(Duration.toMillis(s.outage))} in the middle`)
        yield* burst(0)
        yield* sandbox.stop
        yield* say("  observability server stopped")
        yield* burst(third)
        const during = yield* Observability.stats
        yield* say(`  while it was down: ${during.spooled} spooled, ${during.queued} queued, nothing dropped`)
        yield* sandbox.start
        yield* say("  observability server restarted")
        yield* burst(2 * third)
        yield* Observability.flush
        // The spool drains once the breaker's half-open probe succeeds.
        yield* waitUntil(Effect.map(sandbox.eventStats, (stats) => stats.distinctIds - before >= total))
        const stats = yield* sandbox.eventStats
        const delivered = stats.distinctIds - before
        const lost = total - delivered
        return {
          attempts: 0,
          waits: [],
          ok: lost === 0,
          eventsEmitted: total,
          eventsDelivered: delivered,
          eventsLost: lost,
          outcome: `${delivered}/${total} events delivered, ${lost} lost, ${during.spooled} went through the spool`,
          details: { spooled: during.spooled }
        }
      })
    )

    // 4. Long-running operation: an agent command cut at its deadline.
    yield* scenario(
      "long-running operation",
      Effect.gen(function*() {
        const deadlineMs = Duration.toMillis(s.agentExecution)
        const agent = yield* Agents.create({ name: "refactorer", type: "claude-code" })
        yield* say(`  agent ${agent.name} created; its command runs longer than agent_execution (${seconds(deadlineMs)})`)
        const begin = yield* Clock.currentTimeMillis
        const { operatorFile } = yield* Agents.command(agent.name, "refactor the whole codebase")
        const final = yield* waitForStatus(agent.name, operatorFile)
        const elapsed = (yield* Clock.currentTimeMillis) - begin
        const timedOut = final.status === "timed out"
        yield* say(`  operator file ${path.basename(operatorFile)}: status "${final.status}"`)
        if (final.result !== undefined) yield* say(`  result: ${final.result}`)
        return {
          attempts: 1,
          waits: [],
          ok: timedOut && elapsed >= deadlineMs,
          outcome: timedOut ? `command cut at its ${seconds(deadlineMs)} deadline` : `status ${final.status}`,
          details: { deadlineMs, endedAfterMs: elapsed }
        }
      })
    )

    // 5. End to end: create an agent, command it, ask Gemini; every step is an event.
    yield* scenario(
      "end-to-end flow",
      Effect.gen(function*() {
        yield* sandbox.clearPlans
        const session = `e2e-${seed}`
        // Server ids only grow, and the store drops its oldest events past its bound: count by id.
        const lastIdBefore = (yield* sandbox.events).at(-1)?.id ?? 0
        const beforeGemini = (yield* geminiTimes).length
        const agent = yield* Agents.create({ name: "builder", type: "claude-code" })
        yield* emit("AgentCreated", { agent: agent.name, greeting: agent.greeting }, session)
        yield* say(`  agent ${agent.name}: "${agent.greeting}"`)
        const { operatorFile } = yield* Agents.command(agent.name, "add a health check to the API")
        yield* emit("CommandSent", { agent: agent.name, operatorFile: path.basename(operatorFile) }, session)
        const final = yield* waitForStatus(agent.name, operatorFile)
        yield* emit("CommandFinished", { agent: agent.name, status: final.status }, session)
        yield* say(`  command ${final.status}: ${final.result ?? ""}`)
        const answer = yield* ask(`Review the change of agent ${agent.name}`)
        yield* emit("GeminiAnswered", { text: Gemini.text(answer) }, session)
        yield* say(`  gemini: "${Gemini.text(answer)}"`)
        yield* Observability.flush
        const events = (yield* sandbox.events).filter((event) => event.id > lastIdBefore)
        const types = events.map((event) => event.hook_event_type)
        yield* say(`  events seen by the server: ${Array.from(new Set(types)).join(", ")}`)
        const mine = events.filter((event) => event.session_id === session).length
        return {
          attempts: (yield* geminiTimes).length - beforeGemini,
          waits: [],
          ok: final.status === "completed" && mine === 4,
          outcome: `agent completed, Gemini answered, ${events.length} events delivered`,
          eventsEmitted: 4,
          eventsDelivered: mine,
          eventsLost: 4 - mine,
          details: { lifecycleEvents: events.length - mine }
        }
      })
    )

    // 6. The voice loop: an orchestrated session that survives a dropped socket and an expiry.
    yield* scenario("voice loop", VoiceScenario.run({ sandbox, say }))
    // 7. The browser agent on a real Chromium (src/demo/BrowserScenario.ts).
    yield* BrowserScenario.play({ sandbox, say, scenario, rateLimitHint: s.rateLimitHint, pageLoad: s.browserPageLoad })

    yield* Observability.flush
    yield* waitUntil(Effect.map(Observability.stats, (stats) => stats.spoolSize === 0 && stats.queued === 0))
    const final = yield* Observability.stats
    const wallMs = (yield* Clock.currentTimeMillis) - startedAt
    const delivered = (yield* sandbox.eventStats).distinctIds
    const report: DemoReport = {
      seed,
      fast: options.fast,
      sandboxUrl: sandbox.url,
      scenarios: results,
      events: { emitted: final.emitted, delivered, lost: Math.max(0, final.emitted - delivered) },
      wallMs
    }
    return report
  })

/** Runs `self` every 50 ms until `done` holds for its value, for at most 60 s. */
const poll = <A, E, R>(self: Effect.Effect<A, E, R>, done: (value: A) => boolean) =>
  Effect.gen(function*() {
    while (true) {
      const value = yield* self
      if (done(value)) return value
      yield* Effect.sleep(Duration.millis(50))
    }
  }).pipe(Effect.timeout(Duration.seconds(60)))

/** Waits (at most 60 s) until `condition` holds; gives up silently, the figures then say so. */
const waitUntil = <R>(condition: Effect.Effect<boolean, never, R>) =>
  Effect.ignore(poll(condition, (done) => done))

const statusLine = /^- Status: (.+)$/m

/** Polls an operator file until its command is no longer running; returns its status and result. */
const waitForStatus = (agent: string, operatorFile: string) =>
  Effect.gen(function*() {
    const read = Effect.map(Agents.result(agent, operatorFile), ({ content }) => {
      const status = statusLine.exec(content)?.[1]?.trim() ?? "unknown"
      const resultAt = content.indexOf("## Result")
      // The result's first line is the agent's answer; a cost line may follow.
      const result = resultAt === -1
        ? undefined
        : content.slice(resultAt + "## Result".length).trim().split("\n")[0]?.trim() || undefined
      return { status, result }
    })
    return yield* poll(read, (state) => state.status !== "running")
  })

/** The closing table. */
export const renderReport = (report: DemoReport, table: (rows: ReadonlyArray<ReadonlyArray<string>>) => string): string => {
  const rows = report.scenarios.map((result) => [
    result.ok ? "✔" : "✘",
    result.scenario,
    String(result.attempts),
    result.waits.length === 0 ? "-" : result.waits.map(seconds).join(" + "),
    result.eventsEmitted === undefined ? "-" : `${result.eventsEmitted}/${result.eventsDelivered ?? 0}/${result.eventsLost ?? 0}`,
    seconds(result.wallMs),
    result.outcome
  ])
  return [
    "",
    table([["", "SCENARIO", "ATTEMPTS", "WAITS", "EVENTS E/D/L", "WALL", "OUTCOME"], ...rows]),
    "",
    `events in all: ${report.events.emitted} emitted, ${report.events.delivered} delivered, ${report.events.lost} lost` +
      ` · wall time ${seconds(report.wallMs)} · seed ${report.seed}${report.fast ? " · fast" : ""}`,
    ...(report.metricsUrl === undefined ? [] : [`metrics: ${report.metricsUrl} (Prometheus text, served while big3 runs)`])
  ].join("\n")
}

/** What `--live` found. */
export type LiveOutcome = { readonly _tag: "Done" } | { readonly _tag: "Missing"; readonly message: string }

/**
 * The end-to-end flow against the real services named by the environment: a Claude agent through
 * the Claude Agent SDK, Gemini, and the observability server at OBSERVABILITY_SERVER_URL.
 */
export const runLive = (options: { readonly say: (line: string) => Effect.Effect<void> }) =>
  Effect.gen(function*() {
    const keys = ["GEMINI_API_KEY", "ANTHROPIC_API_KEY"] as const
    const present = yield* Effect.forEach(keys, (name) =>
      Config.string(name).pipe(Config.withDefault(""), Effect.map((value) => value.trim() !== ""), Effect.orElseSucceed(() => false)))
    const missing = keys.filter((_, i) => !present[i])
    if (missing.length > 0) {
      return { _tag: "Missing", message: `set ${missing.join(" and ")} to run against the real APIs` } satisfies LiveOutcome
    }
    const { say } = options
    return yield* Effect.gen(function*() {
      const session = `live-${Date.now()}`
      const agent = yield* Agents.create({ type: "claude-code" })
      yield* say(`agent ${agent.name}: "${agent.greeting}"`)
      yield* Observability.emit({ source_app: "big3-demo", session_id: session, hook_event_type: "AgentCreated", payload: { agent: agent.name } })
      const { operatorFile } = yield* Agents.command(agent.name, "List the files in your working directory and say what they are.")
      const final = yield* waitForStatus(agent.name, operatorFile)
      yield* say(`command ${final.status}: ${final.result ?? ""}`)
      const answer = yield* Effect.flatMap(Gemini.Gemini, (gemini) =>
        gemini.generateContent({ contents: [Gemini.userTurn(`In one sentence: what does this agent report? ${final.result ?? ""}`)] }))
      yield* say(`gemini: ${Gemini.text(answer)}`)
      yield* Observability.flush
      yield* say(`events: ${JSON.stringify(yield* Observability.stats)}`)
      yield* Agents.delete(agent.name)
      return { _tag: "Done" } satisfies LiveOutcome
    }).pipe(Effect.provide(Runtime.layer))
  })
