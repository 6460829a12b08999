/**
 * Cold start of the built `big3` bin, paired with Node's own start: each run starts `node -e 0`,
 * `big3 --version` and `big3 events send` to a local server (a node:http sink in this process)
 * one after the other, and each figure is a median over the runs, with the median of the paired
 * ratios to `node -e 0` (so a busy machine slows both sides of a ratio alike). CPU is the
 * process's own user + system time, read at exit by a preloaded reporter (`cpu-report.cjs`).
 *
 * `big3 events` keeps V8's code cache (src/cli/compileCache.ts) in a directory of the bench's
 * own, made by one unmeasured run first: a hook sends every event but its first with a warm
 * cache. The row with the cache turned off is the first run after an install or upgrade.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { median, type Row } from "./util.js"

const bin = path.resolve(import.meta.dirname, "../dist/bin/big3.cjs")
const reporter = path.resolve(import.meta.dirname, "cpu-report.cjs")

interface Sample {
  readonly wallMs: number
  readonly cpuMs: number
}

const measure = (args: ReadonlyArray<string>, env: Record<string, string>): Promise<Sample> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, ["--require", reporter, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe", "pipe"]
    })
    let cpu = ""
    let stderr = ""
    child.stdio[3]?.on("data", (chunk: Buffer) => (cpu += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) => {
      const wallMs = performance.now() - started
      if (code !== 0) return reject(new Error(`${args.join(" ")} exited ${code}: ${stderr.trim()}`))
      resolve({ wallMs, cpuMs: Number(cpu.trim()) / 1000 })
    })
  })

export const runColdStartBench = async (options: { readonly runs: number }): Promise<ReadonlyArray<Row>> => {
  const server = http.createServer((request, response) => {
    let body = ""
    request.on("data", (chunk: Buffer) => (body += chunk.toString()))
    request.on("end", () => {
      response.writeHead(200, { "content-type": "application/json" })
      response.end(body === "" ? "{}" : body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-coldstart-"))
  const env = {
    BIG3_STATE_DIR: stateDir,
    BIG3_COMPILE_CACHE: path.join(stateDir, "compile-cache"),
    OBSERVABILITY_SERVER_URL: `http://127.0.0.1:${port}/events`
  }
  const send = [bin, "events", "send", "--type", "ColdStart"]
  const commands = [
    { name: "node -e 0 (the floor)", args: ["-e", "0"], env: {} },
    { name: "big3 --version", args: [bin, "--version"], env: {} },
    { name: "big3 events send (to a local server)", args: send, env: {} },
    { name: "big3 events send, no code cache (a first run)", args: send, env: { BIG3_DISABLE_COMPILE_CACHE: "1" } }
  ] as const
  const samples = commands.map((): Array<Sample> => [])
  try {
    await measure(send, env)
    for (let run = 0; run < options.runs; run++) {
      for (let i = 0; i < commands.length; i++) samples[i]!.push(await measure(commands[i]!.args, { ...env, ...commands[i]!.env }))
    }
  } finally {
    server.close()
    fs.rmSync(stateDir, { recursive: true, force: true })
  }
  const floor = samples[0]!
  return commands.map((command, i) => {
    const own = samples[i]!
    const ratio = (pick: (sample: Sample) => number) =>
      median(own.map((sample, run) => pick(sample) / pick(floor[run]!))).toFixed(1)
    return {
      command: command.name,
      "wall ms": median(own.map((sample) => sample.wallMs)).toFixed(0),
      "CPU ms": median(own.map((sample) => sample.cpuMs)).toFixed(0),
      "× floor (wall)": ratio((sample) => sample.wallMs),
      "× floor (CPU)": ratio((sample) => sample.cpuMs),
      goal: i === 1 ? "≤ 2×" : i === 2 ? "≤ 4×" : ""
    }
  })
}
