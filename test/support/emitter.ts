/**
 * A library process for the crash tests (and `bench/events.ts`): the observability client from
 * the environment (`Runtime.observabilityWith`, no CLI and no signal handler of its own) over a
 * `ManagedRuntime`, as a Promise-based app uses it.
 *
 * `node --import tsx test/support/emitter.ts <count> [durable-last]`: emits `count` events with
 * ids `crash-1…`, each through `runtime.runPromise` (the way an app calls it), then, with
 * `durable-last`, one more (`crash-last`) with `emitDurable`; then tells its parent over IPC
 * (`{ emitted, millis }`) and waits to be killed.
 */
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Observability from "../../src/Observability.js"
import * as Runtime from "../../src/Runtime.js"

const count = Number(process.argv[2] ?? 1000)
const durableLast = process.argv[3] === "durable-last"
const runtime = ManagedRuntime.make(Runtime.observabilityWith())

const event = (id: string, n: number): Observability.EventInput => ({
  id,
  source_app: "crash-test",
  session_id: "crash",
  hook_event_type: "PreToolUse",
  payload: { n, tool: "Bash", command: `ls /tmp/${n}` }
})

await runtime.runPromise(Observability.stats) // the client is up before the clock starts
const started = performance.now()
for (let n = 1; n <= count; n++) await runtime.runPromise(Observability.emit(event(`crash-${n}`, n)))
if (durableLast) await runtime.runPromise(Observability.emitDurable(event("crash-last", count + 1)))
const millis = performance.now() - started
process.send?.({ emitted: count + (durableLast ? 1 : 0), millis })
setInterval(() => {}, 60_000)
