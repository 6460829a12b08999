/** Cold start of the compiled `big3` bin: wall time of whole processes, median of `runs`. */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { median, type Row } from "./util.js"

const bin = path.resolve(import.meta.dirname, "../dist/cli/main.js")

export const runColdStartBench = (options: { readonly runs: number }): ReadonlyArray<Row> => {
  const commands: ReadonlyArray<ReadonlyArray<string>> = [["--version"], ["config"]]
  const baseline = (() => {
    const samples: Array<number> = []
    for (let i = 0; i < options.runs; i++) {
      const start = performance.now()
      spawnSync(process.execPath, ["-e", "0"])
      samples.push(performance.now() - start)
    }
    return median(samples)
  })()
  const rows: Array<Row> = [{ command: "node -e 0 (the floor)", "median ms": baseline.toFixed(0), "target ms": "" }]
  for (const args of commands) {
    const samples: Array<number> = []
    for (let i = 0; i < options.runs; i++) {
      const start = performance.now()
      const result = spawnSync(process.execPath, [bin, ...args], { stdio: "ignore" })
      samples.push(performance.now() - start)
      if (result.status !== 0) throw new Error(`big3 ${args.join(" ")} exited ${result.status}`)
    }
    rows.push({ command: `big3 ${args.join(" ")}`, "median ms": median(samples).toFixed(0), "target ms": "≤ 700" })
  }
  return rows
}
