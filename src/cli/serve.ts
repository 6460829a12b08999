/**
 * `big3 serve [--port P] [--runner-port R]`: a runner that hosts the agents and runs their
 * commands as durable workflows until interrupted. `P` is the port of the CLI's API (127.0.0.1),
 * `R` the port of traffic between runners (with `BIG3_DATABASE_URL` only); both default to a free
 * port. It writes `{BIG3_STATE_DIR}/runner.json` (the API's address and a token, mode 0600), which
 * `big3 agents …` with the same state directory finds.
 *
 * The command definition only; the work is in `serve-run.ts`, loaded when the command runs.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { checkPort, loadModule, metricsOption, withMetrics } from "./shared.js"

const port = Options.integer("port").pipe(
  Options.optional,
  Options.withDescription("the API's port on 127.0.0.1, for big3 agents (default: a free port)")
)
const runnerPort = Options.integer("runner-port").pipe(
  Options.optional,
  Options.withDescription("the port of traffic between runners, with BIG3_DATABASE_URL (default: a free port)")
)

const load = loadModule("serve", () => import("./serve-run.js"))

export const serveCommand = Command.make(
  "serve",
  { port, runnerPort, metrics: metricsOption },
  ({ metrics, port, runnerPort }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        const ports = {
          port: Option.isNone(port) ? undefined : yield* checkPort("serve", "--port", port.value),
          runnerPort: Option.isNone(runnerPort) ? undefined : yield* checkPort("serve", "--runner-port", runnerPort.value)
        }
        return yield* Effect.flatMap(load, (run) => run.serve(ports))
      })
    )
).pipe(Command.withDescription("run a runner: host the agents and run their commands durably until interrupted"))
