/**
 * `big3 sandbox --port N`: serve the loopback emulator of the upstream APIs for development.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import { loadModule, metricsOption, withMetrics } from "./shared.js"

const port = Options.integer("port").pipe(Options.withDefault(8787), Options.withDescription("port on 127.0.0.1 (0 picks one)"))
const eventsMode = Options.choice("events-mode", ["extended", "public"]).pipe(
  Options.withDefault("extended"),
  Options.withDescription("extended: idempotent /events and /events/batch; public: exactly the public observability server")
)

export const sandboxCommand = Command.make(
  "sandbox",
  { port, eventsMode, metrics: metricsOption },
  ({ eventsMode, metrics, port }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        const Sandbox = yield* loadModule("sandbox", () => import("../Sandbox.js"))
        return yield* Sandbox.run({ port, eventsMode })
      })
    )
).pipe(Command.withDescription("serve the loopback Gemini / observability / Anthropic emulator until interrupted"))
