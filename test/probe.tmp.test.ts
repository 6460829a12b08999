import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Signal } from "../src/observability/State.js"
it.effect("probe", () => Effect.gen(function*() {
  const s = new Signal()
  const linger = Effect.raceFirst(Effect.sleep("5 millis"), s.wait)
  const f = yield* Effect.fork(Effect.zipRight(linger, Effect.sync(() => console.log("woke"))))
  yield* Effect.repeatN(Effect.yieldNow(), 20)
  s.fire()
  yield* Effect.repeatN(Effect.yieldNow(), 20)
  console.log(f.unsafePoll())
}), { timeout: 3000 })
