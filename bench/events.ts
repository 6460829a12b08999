/**
 * Event delivery benchmark: how fast the observability client gets events to a server, what it
 * costs the client in CPU, and what 100,000 queued events cost in memory.
 *
 * - Targets: a minimal raw `node:http` sink, and the big3 Sandbox (extended mode: idempotent
 *   `POST /events` and `POST /events/batch`). Each runs in a child process, so the client's CPU
 *   is measured alone and the server does not compete with it for the same core.
 * - Contenders: big3 single mode (one `POST /events` per event, 64 in flight, undici transport)
 *   with the durable default (group commits to a SQLite file), big3 batch mode
 *   (`POST /events/batch`, 500 per batch, 4 in flight), big3 single mode with `durable: false`,
 *   big3 single mode over the `HttpClient` transport (for the record), and the Python version's
 *   way: one `POST` per event, sequential, with `fetch`.
 * - PostgreSQL (`BIG3_DATABASE_URL`): big3 single mode with the spool on PostgreSQL, and the
 *   spool alone (group commits of 500, then claim and delete pages of 1,000) on a SQLite file
 *   and on PostgreSQL (`BIG3_TEST_DATABASE_URL`'s server, else a private one).
 * - Crash window: a library process (test/support/emitter.ts) emits 20,000 events to a counting
 *   sink and is killed with SIGKILL as soon as the last `emit` returned; the events in neither the
 *   sink nor the spool are the window, given as events and as milliseconds of emitting.
 * - events/s: from the first `emit` to the end of `flush`, all events acknowledged. Client CPU per
 *   1,000 events: `process.cpuUsage` over the same interval; server CPU: the child's `/proc/<pid>/stat`
 *   over it (Linux; "n/a" elsewhere). Median of 3 runs after a warm-up; single mode on the raw sink
 *   (durable, `durable: false`, undici alone): median of 5, the contenders' runs interleaved. Client
 *   and server share the machine's cores, so the two CPU figures bound events/s (the line under the
 *   table says how far).
 * - Memory: 100,000 events emitted towards a server that never answers (64 in flight, the rest
 *   queued), with the default configuration (durable, journal in a SQLite file); peak RSS above the
 *   RSS before the first emit. An in-memory SQLite store would count the journal's pages as the
 *   client's memory too (≈ 40 MiB more).
 *
 * Standalone: `node --import tsx bench/events.ts` (add `--expose-gc` for steadier memory figures;
 * `--spool` for the spool alone, `--single` for single mode alone, `--memory-only` for the queued
 * memory alone, 3 fresh processes).
 * `runEventsBench()` returns the markdown for `bench/run.ts`.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, fork } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Pool } from "undici"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Spool from "../src/observability/Spool.js"
import * as Store from "../src/Store.js"
import * as Postgres from "../test/support/postgres.js"
import { tempDir } from "../test/support/tempDir.js"
import { markdownTable, median } from "./util.js"

const thisFile = fileURLToPath(import.meta.url)

// ---------------------------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------------------------

type ServerKind = "raw" | "sandbox"

/** A minimal sink: `POST /events` echoes the event, `POST /events/batch` acknowledges; `/hang` never answers. */
const serveRaw = (): Promise<number> =>
  new Promise((resolve) => {
    const server = http.createServer((request, response) => {
      if (request.url === "/hang/events" || request.url === "/hang/events/batch") {
        request.resume()
        return
      }
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        if (request.url === "/events/batch") {
          const items = JSON.parse(body) as Array<unknown>
          response.writeHead(200, { "content-type": "application/json" })
          response.end(JSON.stringify({ accepted: items.length, duplicates: 0 }))
        } else {
          response.writeHead(200, { "content-type": "application/json" })
          response.end(body)
        }
      })
    })
    server.keepAliveTimeout = 60_000
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resolve(typeof address === "object" && address !== null ? address.port : 0)
    })
  })

/** A sink that remembers the ids it stored; asked "ids" over IPC, it sends them. */
const serveCounting = (): Promise<number> =>
  new Promise((resolve) => {
    const ids = new Set<string>()
    process.on("message", (message) => {
      if (message === "ids") process.send?.([...ids])
    })
    const server = http.createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        ids.add(String((JSON.parse(body) as { id: unknown }).id))
        response.writeHead(200, { "content-type": "application/json" })
        response.end(body)
      })
    })
    server.keepAliveTimeout = 60_000
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resolve(typeof address === "object" && address !== null ? address.port : 0)
    })
  })

const serveSandbox = (): Promise<number> =>
  new Promise((resolve) => {
    Effect.runFork(
      Effect.scoped(
        Effect.gen(function*() {
          const sandbox = yield* Sandbox.make({ recordRequests: false })
          resolve(sandbox.port)
          return yield* Effect.never
        })
      ).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
    )
  })

/**
 * Runs the memory measurement in a fresh process (with `--expose-gc`), so earlier runs do not skew
 * it. The child is killed once it has answered (its client's shutdown is not measured), so its
 * journal's directory is this process's to remove.
 */
const measureQueuedMemoryInChild = (url: string, count: number): Promise<MemoryResult> =>
  new Promise((resolve, reject) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-bench-"))
    const child = fork(thisFile, ["--memory", url, String(count), dir], {
      execArgv: ["--expose-gc", "--import", "tsx"],
      stdio: ["ignore", "ignore", "inherit", "ipc"]
    })
    child.once("error", reject)
    child.once("exit", (code) => {
      fs.rmSync(dir, { recursive: true, force: true })
      reject(new Error(`the memory benchmark exited with code ${code}`))
    })
    child.once("message", (message) => {
      resolve(message as MemoryResult)
      child.kill()
    })
  })

interface Child {
  readonly url: string
  readonly stop: () => void
  /** CPU the server process has used so far, in ms (user + system), where `/proc` tells (Linux). */
  readonly cpuMillis: () => number | undefined
}

/** Clock ticks per second of `/proc/<pid>/stat`'s times (100 on Linux unless set otherwise). */
const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()

/** User + system CPU of process `pid` in ms, from `/proc/<pid>/stat` (fields 14 and 15); `undefined` without `/proc`. */
const processCpuMillis = (pid: number | undefined): number | undefined => {
  try {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? (ticks * 1000) / clockTicks : undefined
  } catch {
    return undefined
  }
}

const startServer = (kind: ServerKind): Promise<Child> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = fork(thisFile, ["--serve", kind], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "ignore", "inherit", "ipc"]
    })
    child.once("error", reject)
    child.once("message", (message) => {
      const port = (message as { port: number }).port
      resolve({ url: `http://127.0.0.1:${port}`, stop: () => child.kill(), cpuMillis: () => processCpuMillis(child.pid) })
    })
  })

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/** A typical hook event, ≈ 330 bytes as JSON. */
const eventFor = (n: number): Observability.EventInput => ({
  source_app: "bench",
  session_id: `session-${n % 16}`,
  hook_event_type: n % 2 === 0 ? "PreToolUse" : "PostToolUse",
  payload: {
    tool_name: "Bash",
    tool_input: { command: `ls -la /tmp/work/${n}`, description: "List the working directory" },
    cwd: "/home/dev/project",
    n
  },
  summary: "Listed the working directory"
})

interface Sample {
  readonly eventsPerSecond: number
  readonly cpuPer1000Millis: number
  /** The server's CPU per 1,000 events, where `/proc` tells. */
  readonly serverCpuPer1000Millis: number | undefined
}

/** Starts measuring a run against `server`; the function it returns ends it, for `count` events. */
const startSample = (server: Child) => {
  const cpu = process.cpuUsage()
  const serverCpu = server.cpuMillis()
  const started = performance.now()
  return (count: number): Sample => {
    const elapsed = performance.now() - started
    const used = process.cpuUsage(cpu)
    const serverNow = server.cpuMillis()
    return {
      eventsPerSecond: count / (elapsed / 1000),
      cpuPer1000Millis: (used.user + used.system) / 1000 / (count / 1000),
      serverCpuPer1000Millis: serverCpu === undefined || serverNow === undefined ? undefined : (serverNow - serverCpu) / (count / 1000)
    }
  }
}

const client = (
  url: string,
  options: Observability.Options,
  overrides: ReliabilityConfig.Overrides = {},
  store: Layer.Layer<SqlClient.SqlClient, SqlError> = Store.layerMemory
) =>
  Observability.layerWith({ url: `${url}/events`, queueCapacity: 200_000, ...options }).pipe(
    Layer.provide(
      Layer.mergeAll(CircuitBreaker.layer, NodeHttpClient.layerUndici, store).pipe(
        Layer.provideMerge(ReliabilityConfig.layerWith(overrides))
      )
    ),
    Layer.orDie
  )

/** A store in a fresh temporary directory, removed when the layer is released. */
const tempStore: Layer.Layer<SqlClient.SqlClient, SqlError> = Layer.unwrapScoped(
  Effect.map(
    tempDir("big3-bench-"),
    (dir) => Store.layer({ filename: path.join(dir, "big3.db") })
  )
)

/** A contender for interleaved runs: a warmed-up client that sends `count` events and waits for all of them. */
interface Contender {
  readonly burst: (count: number) => Promise<void>
  readonly note: () => Promise<string>
  readonly close: () => Promise<void>
}

/** Runs an effect with errors only in the log (the clients log every spooled event otherwise). */
const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect.pipe(Logger.withMinimumLogLevel(LogLevel.Error)))

/** A big3 client, built and warmed up, as a contender (closed with `close`). */
const openBig3 = async (
  server: Child,
  options: Observability.Options,
  store: "memory" | "file" | Layer.Layer<SqlClient.SqlClient, SqlError>,
  warmUp: number
): Promise<Contender> => {
  const scope = await run(Scope.make())
  const context = await run(Layer.buildWithScope(
    client(server.url, options, {}, store === "file" ? tempStore : store === "memory" ? Store.layerMemory : store),
    scope
  ))
  const observability = Context.get(context, Observability.Observability)
  const burst = (events: number) =>
    run(Effect.gen(function*() {
      for (let n = 0; n < events; n++) yield* observability.emit(eventFor(n))
      yield* observability.flush
    }))
  await burst(warmUp)
  return {
    burst,
    note: () =>
      run(Effect.map(observability.stats, (stats) => {
        const lost = stats.spooled + stats.deadLettered + stats.dropped
        return lost === 0 ? "" : `${lost} not delivered on first try`
      })),
    close: () => run(Scope.close(scope, Exit.void))
  }
}

/** Runs of `count` events, one contender after the other in each round, so that every contender meets the same moments of the machine. */
const interleaved = async (server: Child, contenders: ReadonlyArray<Contender>, count: number, runs: number) => {
  const samples = contenders.map((): Array<Sample> => [])
  for (let run = 0; run < runs; run++) {
    for (const [i, contender] of contenders.entries()) {
      const finish = startSample(server)
      await contender.burst(count)
      samples[i]!.push(finish(count))
    }
  }
  return Promise.all(contenders.map(async (contender, i) => ({ samples: samples[i]!, note: await contender.note() })))
}

/** Builds a client, warms it up, then measures `runs` runs of `count` events. */
const measureBig3 = async (
  server: Child,
  options: Observability.Options,
  count: number,
  runs: number,
  store: "memory" | "file" | Layer.Layer<SqlClient.SqlClient, SqlError> = "memory"
) => {
  const contender = await openBig3(server, options, store, Math.min(count, 5_000))
  try {
    const [result] = await interleaved(server, [contender], count, runs)
    return result!
  } finally {
    await contender.close()
  }
}

/** A fresh database on PostgreSQL (`BIG3_TEST_DATABASE_URL`'s server, else a private one), for the scope. */
const postgresStore = Effect.map(
  Effect.flatMap(Postgres.server, Postgres.database),
  (url): Layer.Layer<SqlClient.SqlClient, SqlError> => Store.layerPostgres(Redacted.make(url))
)

interface SpoolSample {
  readonly writePerSecond: number
  readonly drainPerSecond: number
}

/**
 * The spool alone, no client and no server: `count` events written as backlog rows in group
 * commits of 500 (one transaction each, as the spool writer does), then drained as the
 * redeliverer does (claim a page of 1,000, delete it in one commit) until empty.
 */
const measureSpool = (store: Layer.Layer<SqlClient.SqlClient, SqlError>, count: number, runs: number) =>
  Effect.gen(function*() {
    const spool = yield* Spool.make({ leaseMillis: 30_000 })
    yield* spool.open(Date.now())
    const item = (n: number): Spool.Item => {
      const body = JSON.stringify({ ...eventFor(n), id: `spool-${n}`, timestamp: Date.now() })
      return { id: `spool-${n}`, body, reason: "server down", epoch: 1, ordinal: n }
    }
    const once = Effect.gen(function*() {
      const written = performance.now()
      for (let from = 0; from < count; from += 500) {
        const spooled = Array.from({ length: Math.min(500, count - from) }, (_, i) => item(from + i))
        yield* spool.commit({ ...Spool.emptyOps(), spool: spooled }, Date.now())
      }
      const drained = performance.now()
      let left = count
      while (left > 0) {
        const page = yield* spool.claim(1_000, Date.now())
        if (page.length === 0) return yield* Effect.dieMessage(`the spool stopped with ${left} rows left`)
        yield* spool.commit({ ...Spool.emptyOps(), remove: page.map((row) => row.seq) }, Date.now())
        left -= page.length
      }
      const done = performance.now()
      return { writePerSecond: count / ((drained - written) / 1000), drainPerSecond: count / ((done - drained) / 1000) }
    })
    yield* once // warm-up
    const samples: Array<SpoolSample> = []
    for (let run = 0; run < runs; run++) samples.push(yield* once)
    return samples
  }).pipe(Effect.provide(store), Effect.orDie)

/**
 * The machine's ceiling for single mode: undici's `Pool` alone, 64 requests in flight, no queue, no
 * spool, no pipeline; the same events with an id and a timestamp, each answer read whole.
 */
const openRawUndici = async (server: Child, warmUp: number): Promise<Contender> => {
  const pool = new Pool(server.url, { connections: 64, pipelining: 1 })
  const send = async (n: number) => {
    const response = await pool.request({
      path: "/events",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: `raw-${n}`, ...eventFor(n), timestamp: Date.now() })
    })
    await response.body.text()
  }
  const burst = async (events: number) => {
    let next = 0
    const worker = async () => {
      while (next < events) await send(next++)
    }
    await Promise.all(Array.from({ length: 64 }, worker))
  }
  await burst(warmUp)
  return { burst, note: async () => "", close: () => pool.close() }
}

const durableLabel = "big3 single, durable default (group commit to a SQLite file)"
const nonDurableLabel = "big3 single, durable: false (spool only what fails)"
const undiciLabel = "undici Pool alone, 64 in flight (no big3: the machine's ceiling)"

/**
 * Single mode against the raw sink: the durable default, `durable: false` and undici alone, their
 * runs interleaved (the machine's speed drifts; one contender's runs in a row would meet another
 * moment of it than the next one's). The rows, and the undici samples for the bound.
 */
const measureSingle = async (server: Child, runs: number) => {
  const opened: Array<Contender> = []
  try {
    opened.push(await openBig3(server, { mode: "single", durable: true }, "file", 5_000))
    opened.push(await openBig3(server, { mode: "single", durable: false }, "file", 5_000))
    opened.push(await openRawUndici(server, 5_000))
    const [durable, nonDurable, undici] = await interleaved(server, opened, 20_000, runs)
    return { durable: durable!, nonDurable: nonDurable!, undici: undici! }
  } finally {
    for (const contender of opened) await contender.close()
  }
}

/** The Python version's way: one POST per event, sequential, with fetch (and a 2 s timeout). */
const measurePython = async (server: Child, count: number, runs: number) => {
  const send = async (n: number) => {
    const response = await fetch(`${server.url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...eventFor(n), timestamp: Date.now() }),
      signal: AbortSignal.timeout(2_000)
    })
    await response.text()
  }
  for (let n = 0; n < 200; n++) await send(n)
  const samples: Array<Sample> = []
  for (let run = 0; run < runs; run++) {
    const finish = startSample(server)
    for (let n = 0; n < count; n++) await send(n)
    samples.push(finish(count))
  }
  return { samples, note: "" }
}

interface MemoryResult {
  readonly peakAboveBaselineMiB: number
  readonly heapAboveBaselineMiB: number
  readonly queued: number
}

/** Peak RSS while 100,000 events wait in the queue (the server never answers). */
const measureQueuedMemory = (url: string, count: number, dir: string): Effect.Effect<MemoryResult> =>
  Effect.gen(function*() {
    const gc = (globalThis as { gc?: () => void }).gc
    const scope = yield* Scope.make()
    const journal = Store.layer({ filename: path.join(dir, "big3.db") })
    // Requests hang for the whole measurement; nothing may time out into the spool meanwhile.
    const context = yield* Layer.buildWithScope(
      client(`${url}/hang`, {}, { timeouts: { observability_event: "10 minutes", graceful_shutdown: "0.1 seconds" } }, journal),
      scope
    )
    const observability = Context.get(context, Observability.Observability)
    // Warm the code paths (a few events) so that the baseline includes compiled code.
    for (let n = 0; n < 100; n++) yield* observability.emit(eventFor(n))
    yield* Effect.sleep("50 millis")
    gc?.()
    const baseline = process.memoryUsage().rss
    const heapBaseline = process.memoryUsage().heapUsed
    let peak = baseline
    for (let n = 0; n < count; n++) {
      yield* observability.emit(eventFor(n))
      if (n % 5_000 === 0) peak = Math.max(peak, process.memoryUsage().rss)
    }
    yield* Effect.sleep("50 millis")
    peak = Math.max(peak, process.memoryUsage().rss)
    gc?.()
    const heap = process.memoryUsage().heapUsed
    const stats = yield* observability.stats
    return {
      peakAboveBaselineMiB: (peak - baseline) / 2 ** 20,
      heapAboveBaselineMiB: (heap - heapBaseline) / 2 ** 20,
      queued: stats.queued + stats.inFlight
    }
  })

// ---------------------------------------------------------------------------------------------
// Crash window
// ---------------------------------------------------------------------------------------------

interface CrashResult {
  readonly emitted: number
  readonly emitRate: number
  readonly lost: number
  readonly windowMillis: number
  readonly duplicates: number
  readonly runs: number
  readonly commitInterval: string
  readonly commitEvents: number
}

/** Ids a sink stored (a child process of its own, so the emitter's death does not touch it). */
const countingSink = (): Promise<{ url: string; ids: () => Promise<ReadonlySet<string>>; stop: () => void }> =>
  new Promise((resolve, reject) => {
    const child = fork(thisFile, ["--serve", "counting"], { execArgv: ["--import", "tsx"], stdio: ["ignore", "ignore", "inherit", "ipc"] })
    child.once("error", reject)
    child.once("message", (message) => {
      const port = (message as { port: number }).port
      resolve({
        url: `http://127.0.0.1:${port}`,
        ids: () =>
          new Promise((resolveIds) => {
            child.once("message", (ids) => resolveIds(new Set(ids as Array<string>)))
            child.send("ids")
          }),
        stop: () => child.kill()
      })
    })
  })

/**
 * SIGKILL right after `count` emits returned, `runs` times: how many events were neither at the
 * sink nor in the spool, as events and as milliseconds of emitting.
 */
const measureCrashWindow = async (_url: string, count: number, runs = 3): Promise<CrashResult> => {
  const samples: Array<{ lost: number; windowMillis: number; duplicates: number; rate: number }> = []
  for (let run = 0; run < runs; run++) {
    const sinkChild = await countingSink()
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-bench-crash-"))
    try {
      const emitter = fork(path.join(path.dirname(thisFile), "..", "test", "support", "emitter.ts"), [String(count)], {
        execArgv: ["--import", "tsx"],
        stdio: ["ignore", "ignore", "inherit", "ipc"],
        env: { ...process.env, BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: `${sinkChild.url}/events` }
      })
      const report = await new Promise<{ emitted: number; millis: number }>((resolve, reject) => {
        emitter.once("message", (message) => resolve(message as { emitted: number; millis: number }))
        emitter.once("exit", (code) => reject(new Error(`the emitter exited (${code}) before it reported`)))
      })
      const ended = new Promise((resolve) => emitter.once("exit", resolve))
      emitter.kill("SIGKILL")
      await ended
      const delivered = await sinkChild.ids()
      const kept = await Effect.runPromise(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`SELECT id FROM observability_spool`).pipe(
          Effect.map((rows) => new Set(rows.map((row) => row.id))),
          Effect.provide(Store.layer({ filename: path.join(stateDir, "big3.db") })),
          Effect.scoped,
          Effect.orDie
        )
      )
      let lost = 0
      let duplicates = 0
      for (let n = 1; n <= count; n++) {
        const id = `crash-${n}`
        if (!delivered.has(id) && !kept.has(id)) lost++
        if (delivered.has(id) && kept.has(id)) duplicates++
      }
      const perEvent = report.millis / count
      samples.push({ lost, windowMillis: lost * perEvent, duplicates, rate: count / (report.millis / 1000) })
    } finally {
      sinkChild.stop()
      fs.rmSync(stateDir, { recursive: true, force: true })
    }
  }
  return {
    emitted: count,
    emitRate: median(samples.map((sample) => sample.rate)),
    lost: median(samples.map((sample) => sample.lost)),
    windowMillis: median(samples.map((sample) => sample.windowMillis)),
    duplicates: median(samples.map((sample) => sample.duplicates)),
    runs,
    commitInterval: Duration.format(Observability.defaults.commitInterval),
    commitEvents: Observability.defaults.commitEvents
  }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

const formatRate = (value: number) => Math.round(value).toLocaleString("en")
const formatCpu = (value: number) => `${value.toFixed(1)} ms`

/** The columns every client row has: events/s, and the CPU of the client and of the server per 1,000 events. */
const figures = (samples: ReadonlyArray<Sample>): Record<string, string> => {
  const server = samples.flatMap((sample) => sample.serverCpuPer1000Millis === undefined ? [] : [sample.serverCpuPer1000Millis])
  return {
    "events/s (median)": formatRate(median(samples.map((s) => s.eventsPerSecond))),
    "client CPU / 1,000 events": formatCpu(median(samples.map((s) => s.cpuPer1000Millis))),
    "server CPU / 1,000 events": server.length === samples.length ? formatCpu(median(server)) : "n/a"
  }
}

/**
 * What the cores allow single mode against this sink, whatever the client: cores ÷ (client +
 * server CPU per event), the undici row's costs; `undefined` without the server's CPU.
 */
const singleModeBound = (undiciRun: ReadonlyArray<Sample>): string | undefined => {
  const server = undiciRun.flatMap((sample) => sample.serverCpuPer1000Millis === undefined ? [] : [sample.serverCpuPer1000Millis])
  if (server.length !== undiciRun.length) return undefined
  const cores = os.availableParallelism()
  const client = median(undiciRun.map((s) => s.cpuPer1000Millis))
  const sink = median(server)
  return `The sink used ${formatCpu(sink)} of CPU per 1,000 events (µs per event). With ${cores} cores shared by client and sink, ` +
    `single mode cannot pass ${cores} × 1,000,000 ÷ (client + sink µs per event) events/s: ` +
    `${formatRate((cores * 1_000_000) / (client + sink))} with undici's own cost as the client; the sink, one thread, ` +
    `cannot pass ${formatRate(1_000_000 / sink)} whatever the client.`
}

/** The spool alone on a SQLite file and on PostgreSQL, as markdown (`--spool` runs only this). */
export const runSpoolBench = async (runs: number): Promise<string> => {
  const spoolRows: Array<Record<string, string>> = []
  for (const [where, store] of [["SQLite file (the embedded default)", Effect.succeed(tempStore)], ["PostgreSQL", postgresStore]] as const) {
    const samples = await run(Effect.scoped(Effect.flatMap(store, (layer) => measureSpool(layer, 20_000, runs))))
    spoolRows.push({
      spool: where,
      "written events/s (commits of 500)": formatRate(median(samples.map((s) => s.writePerSecond))),
      "drained events/s (claim 1,000 + delete)": formatRate(median(samples.map((s) => s.drainPerSecond)))
    })
  }
  return [
    `The spool alone (no client, no server; 20,000 events, median of ${runs} runs after a warm-up; PostgreSQL: ` +
      "`BIG3_TEST_DATABASE_URL`'s server, else a private cluster on this machine, fsync off):",
    "",
    markdownTable(spoolRows)
  ].join("\n")
}

/** Single mode on the raw sink only (`--single`): the quick loop for the per-event cost. */
export const runSingleBench = async (runs: number): Promise<string> => {
  const server = await startServer("raw")
  try {
    const single = await measureSingle(server, runs)
    const row = (client: string, result: { samples: ReadonlyArray<Sample>; note: string }) => ({ client, ...figures(result.samples), note: result.note })
    const rows = [row(durableLabel, single.durable), row(nonDurableLabel, single.nonDurable), row(undiciLabel, single.undici)]
    return [markdownTable(rows), "", singleModeBound(single.undici.samples) ?? ""].join("\n")
  } finally {
    server.stop()
  }
}

/** The queued-memory figure alone (`--memory-only`), `runs` fresh processes: each run and the medians. */
export const runQueuedMemoryBench = async (runs: number): Promise<string> => {
  const server = await startServer("raw")
  try {
    const results: Array<MemoryResult> = []
    for (let run = 0; run < runs; run++) results.push(await measureQueuedMemoryInChild(server.url, 100_000))
    const mib = (values: ReadonlyArray<number>) => values.map((value) => value.toFixed(1)).join(", ")
    const peaks = results.map((result) => result.peakAboveBaselineMiB)
    const heaps = results.map((result) => result.heapAboveBaselineMiB)
    return `Memory, ${results[0]?.queued.toLocaleString("en")} events waiting (durable default, journal in a SQLite file), ` +
      `median of ${runs} fresh processes: peak RSS ${median(peaks).toFixed(1)} MiB above the baseline (${mib(peaks)}), ` +
      `live heap after a GC +${median(heaps).toFixed(1)} MiB (${mib(heaps)}).`
  } finally {
    server.stop()
  }
}

/** Runs the whole benchmark and returns it as markdown (a table and the memory figure). */
export const runEventsBench = async (options: { readonly runs?: number } = {}): Promise<string> => {
  const runs = options.runs ?? 3
  // The single-mode rows on the raw sink: more runs, interleaved, for the ratio to the ceiling.
  const singleRuns = Math.max(runs, 5)
  const rows: Array<Record<string, string>> = []
  const add = (target: string, contender: string, result: { samples: ReadonlyArray<Sample>; note: string }) =>
    rows.push({ server: target, client: contender, ...figures(result.samples), note: result.note })

  let memory: MemoryResult | undefined
  let crash: CrashResult | undefined
  let bound: string | undefined
  for (const kind of ["raw", "sandbox"] as const) {
    const server = await startServer(kind)
    const label = kind === "raw" ? "raw node:http sink" : "big3 Sandbox (extended)"
    try {
      const single = kind === "raw" ? await measureSingle(server, singleRuns) : undefined
      add(label, durableLabel, single?.durable ?? await measureBig3(server, { mode: "single" }, 20_000, runs, "file"))
      add(label, "big3 batch (500 × 4 in flight), durable default", await measureBig3(server, { mode: "batch" }, 100_000, runs, "file"))
      if (single !== undefined) {
        add(label, nonDurableLabel, single.nonDurable)
        add(
          label,
          "big3 single, durable default, spool on PostgreSQL (BIG3_DATABASE_URL)",
          await run(Effect.scoped(Effect.flatMap(postgresStore, (store) =>
            Effect.promise(() => measureBig3(server, { mode: "single" }, 20_000, runs, store)))))
        )
        add(
          label,
          "big3 single over HttpClient transport",
          await measureBig3(server, { mode: "single", transport: "http-client" }, 10_000, runs)
        )
        add(label, undiciLabel, single.undici)
        bound = singleModeBound(single.undici.samples)
        memory = await measureQueuedMemoryInChild(server.url, 100_000)
        crash = await measureCrashWindow(server.url, 20_000)
      }
      add(label, "Python way: sequential fetch per event", await measurePython(server, 2_000, runs))
    } finally {
      server.stop()
    }
  }
  const lines = [
    markdownTable(rows),
    "",
    await runSpoolBench(runs),
    "",
    `Targets: single mode, durable default ≥ 20,000 events/s; batch mode ≥ 100,000 events/s; 100,000 queued events ≤ 64 MB. ` +
      `The undici row is the ceiling of single mode on this machine: the same POSTs with nothing of big3 around them.`,
    ""
  ]
  if (bound !== undefined) lines.push(bound, "")
  if (memory !== undefined) {
    lines.push(
      `Memory: ${memory.queued.toLocaleString("en")} events waiting (queued + in flight) on a server that never ` +
        `answers (durable default, journal in a SQLite file): peak RSS ${memory.peakAboveBaselineMiB.toFixed(1)} MiB above the baseline ` +
        `(live heap after a GC: +${memory.heapAboveBaselineMiB.toFixed(1)} MiB), measured in a fresh process.`
    )
  }
  if (crash !== undefined) {
    lines.push(
      "",
      `Crash window (durable default, commit every ${crash.commitInterval} or ${crash.commitEvents} events): a library process ` +
        `emitting ${crash.emitted.toLocaleString("en")} events (${Math.round(crash.emitRate).toLocaleString("en")} emits/s) ` +
        `was killed with SIGKILL as soon as the last emit returned; ${crash.lost} were in neither the sink nor the spool ` +
        `(≈ ${crash.windowMillis.toFixed(1)} ms of emits); ${crash.duplicates} reached the sink and stayed in the spool ` +
        `(redelivered at the next start: the at-least-once duplicates). Median of ${crash.runs} runs.`
    )
  }
  return lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain) {
  const serveIndex = process.argv.indexOf("--serve")
  const memoryIndex = process.argv.indexOf("--memory")
  if (memoryIndex !== -1) {
    // The process exits with the send: the client's shutdown (spooling 100,000 events) is not measured.
    const url = process.argv[memoryIndex + 1] ?? ""
    const count = Number(process.argv[memoryIndex + 2] ?? 100_000)
    const dir = process.argv[memoryIndex + 3] ?? ""
    const result = await run(measureQueuedMemory(url, count, dir))
    process.send?.(result, () => process.exit(0))
  } else if (serveIndex !== -1) {
    const kind = process.argv[serveIndex + 1]
    const port = await (kind === "sandbox" ? serveSandbox() : kind === "counting" ? serveCounting() : serveRaw())
    process.send?.({ port })
    process.on("disconnect", () => process.exit(0))
  } else if (process.argv.includes("--spool")) {
    console.log(await runSpoolBench(3))
  } else if (process.argv.includes("--memory-only")) {
    console.log(await runQueuedMemoryBench(3))
  } else if (process.argv.includes("--single")) {
    console.log(await runSingleBench(5))
  } else {
    console.log(await runEventsBench())
  }
}
