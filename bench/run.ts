/**
 * `npm run bench`: every benchmark in one run, printed as tables and written to
 * bench/RESULTS.md with the date, Node version and machine. Not part of the test run.
 *
 * Environment: BENCH_CALLS (overhead calls per run, default 1,000,000), BENCH_RUNS (default 3),
 * BENCH_CHAOS_CALLS (default 10,000), BENCH_ASYNC_CALLS (async calls per run, default 200,000),
 * BENCH_ADAPTIVE_CALLS (calls per side of the adaptive timeout scenario, default 1,000).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runAdaptiveBench } from "./adaptive.js"
import { runBrowserBench } from "./browser.js"
import { runChaosBench } from "./chaos.js"
import { runColdStartBench } from "./coldstart.js"
import { runEventsBench } from "./events.js"
import { runAsyncBench, runOverheadBench } from "./overhead.js"
import { runRunnersBench } from "./runners.js"
import { runTracingBench } from "./tracing.js"
import { markdownTable } from "./util.js"
import { runVoiceBench } from "./voice.js"

const numberFrom = (name: string, fallback: number): number => {
  const value = Number(process.env[name])
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const calls = numberFrom("BENCH_CALLS", 1_000_000)
const runs = numberFrom("BENCH_RUNS", 3)
const chaosCalls = numberFrom("BENCH_CHAOS_CALLS", 10_000)

/** The machine's load when a section was measured, as its note says it. */
const loadAverage = () =>
  `Load average while measuring: ${os.loadavg().map((load) => load.toFixed(1)).join(", ")} on ${os.cpus().length} cores.`

const sections: Array<string> = []
const section = (title: string, body: string) => {
  const text = `## ${title}\n\n${body}\n`
  console.log(text)
  sections.push(text)
}

const header = [
  "# big3 benchmark results",
  "",
  `- date: ${new Date().toISOString()}`,
  `- node: ${process.version} (${process.platform} ${process.arch})`,
  `- machine: ${os.cpus()[0]?.model ?? "unknown cpu"} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
  `- each figure is a median of ${runs} runs unless noted`,
  ""
].join("\n")
console.log(header)

section(
  `Happy-path overhead per call (${calls.toLocaleString("en")} calls per run; slow contenders 100,000)`,
  markdownTable(await runOverheadBench({ calls, runs })) +
    "\n\nTarget: big3 protect ≤ 10 µs per successful call."
)

const asyncCalls = numberFrom("BENCH_ASYNC_CALLS", 200_000)
section(
  `The async call: an immediately-resolving promise, ${asyncCalls.toLocaleString("en")} calls per run, each run paired with cockatiel's`,
  markdownTable(await runAsyncBench({ calls: asyncCalls, runs })) +
    "\n\nGoals: big3 protect over an async effect ≤ 0.25 × cockatiel's full wrap; the Promise API ≤ 5 µs."
)

section(
  "Tracing: what it adds to a protected call (an immediately-succeeding effect), runs alternating",
  markdownTable(await runTracingBench({ calls: Math.min(calls, 300_000), exportedCalls: 20_000, runs })) +
    "\n\nGoal: tracing on adds ≤ 2 µs per call when no exporter is configured (then the pipeline makes no spans; " +
    "it checks once per call whether a recording tracer is installed)."
)

section("Event delivery (servers in child processes)", await runEventsBench())

section(
  `Chaos: ${chaosCalls.toLocaleString("en")} Gemini calls against the sandbox (seeded), 32 in flight`,
  markdownTable(await runChaosBench({ calls: chaosCalls, concurrency: 32 })) +
    "\n\nRetry waits are scaled down (initial 1 ms, cap 20 ms) so the run takes seconds; attempt counts and " +
    "decisions are those of the production delays. Theory for 3 attempts at a 30% independent fault rate: 1 − 0.3³ = 97.3% success, " +
    "1 + 0.3 + 0.09 = 1.39 requests per call. The budget trades success under heavy faults for load: " +
    "retries ≤ 20% of calls."
)

section(
  "Voice loop: Realtime turns against the sandbox over loopback (1,000 turns each), and downtime after a drop (median of 5)",
  markdownTable(await runVoiceBench({ turns: 1000, runs: 5 })) +
    "\n\ndowntime = noticing the drop, reconnecting (backoff 1 ms), session.update and the replay; p99 column: the worst of the 5."
)

section(
  `Cold start of the bundled bin, paired with node -e 0 (median of 15 runs)`,
  markdownTable(await runColdStartBench({ runs: 15 }))
)

section(
  "Browser agent: overhead per turn beyond the model call and the browser action",
  markdownTable(await runBrowserBench({ runs: 10, turns: 30, screenshotSizes: [1_000, 25_000, 250_000] })) +
    "\n\nTarget: ≤ 5 ms per turn. The model answers at once and the page is scripted, so what remains is big3's own work: " +
    "the loop, the page's timeouts, events, and encoding the request, whose size grows with the screenshots it carries " +
    "(the last three are kept). A simple page's 1440×900 PNG is ≈ 10–50 KB, a busy one 200–400 KB. " +
    loadAverage()
)

section(
  "Runners: agent commands per second through big3 serve (scripted backend, no delay)",
  markdownTable(await runRunnersBench({ agents: 20, commands: 400 })) +
    "\n\naccepted/s: commands the runners' APIs returned (durable from then on); completed/s: outcomes recorded, " +
    "first command to last outcome. Each command is an operator file, a command record, a workflow, its activity, " +
    "a Run message to the agent's owner and the outcome. " +
    "Events into a PostgreSQL spool: see the event delivery section. " +
    loadAverage()
)
const adaptiveCalls = numberFrom("BENCH_ADAPTIVE_CALLS", 1000)
const adaptive = await runAdaptiveBench({ calls: adaptiveCalls, perSecond: 20 })
section(
  `Adaptive timeouts: ${adaptiveCalls.toLocaleString("en")} Gemini calls per side at 20 per second, side by side against the sandbox`,
  markdownTable(adaptive.timeouts) +
    "\n\nThe sandbox answers after a seeded log-normal latency (median 20 ms, p99 ≈ 80 ms); 2% of attempts hang. " +
    "Production retry policy `gemini` (3 attempts, waits 2 s and 4 s). False timeouts: attempts cut that would have answered. " +
    "Goal: adaptive p99 ≤ 0.1 × fixed, ≤ 1% false timeouts, no loss of success. " +
    loadAverage()
)
section(
  "Adaptive pacing: a 429 storm (64 callers for 20 s; the server admits all for 2 s, then 50 requests/s)",
  markdownTable(adaptive.storm) +
    "\n\nBreaker and retry budget off on both sides, to see the token bucket alone (`BIG3_ADAPTIVE_RATE_GEMINI=on`)."
)

const file = path.resolve(import.meta.dirname, "RESULTS.md")
fs.writeFileSync(file, `${header}\n${sections.join("\n")}`)
console.log(`written to ${path.relative(process.cwd(), file)}`)
