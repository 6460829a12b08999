/**
 * A scripted driver for tests: no browser, every primitive recorded, and what each one does
 * decided by the test (succeed by default, or fail, or never end).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import type { Driver, RawPage } from "./Driver.js"
import { ActionFailed } from "./Errors.js"

/** One primitive the page was asked for. */
export type Call =
  | { readonly _tag: "goto"; readonly url: string }
  | { readonly _tag: "back" }
  | { readonly _tag: "forward" }
  | { readonly _tag: "stopLoading" }
  | { readonly _tag: "mouseMove"; readonly x: number; readonly y: number }
  | { readonly _tag: "mouseClick"; readonly x: number; readonly y: number }
  | { readonly _tag: "mouseDown" }
  | { readonly _tag: "mouseUp" }
  | { readonly _tag: "mouseWheel"; readonly deltaX: number; readonly deltaY: number }
  | { readonly _tag: "typeText"; readonly text: string }
  | { readonly _tag: "pressKeys"; readonly keys: ReadonlyArray<string> }
  | { readonly _tag: "scrollBy"; readonly deltaX: number; readonly deltaY: number }
  | { readonly _tag: "screenshot" }

export interface ScriptOptions {
  /**
   * What a call does before its default effect (a `goto` moves the URL, `back` / `forward` walk
   * the history): return an effect to run instead (fail it, delay it, never end it), or
   * `undefined` for the default.
   */
  readonly onCall?: ((call: Call) => Effect.Effect<void, ActionFailed> | undefined) | undefined
  /** The bytes every screenshot returns; default a 1×1 PNG. */
  readonly screenshot?: Uint8Array | undefined
  /** The URL a fresh page shows; default `about:blank`. */
  readonly initialUrl?: string | undefined
}

/** A scripted driver and what it saw. */
export interface Scripted {
  readonly driver: Driver
  /** Every call, in order, across launches. */
  readonly calls: Effect.Effect<ReadonlyArray<Call>>
  /** Browsers started, and browsers closed (their scope closed). */
  readonly launches: Effect.Effect<number>
  readonly closes: Effect.Effect<number>
  /**
   * The browser dies as a killed Chromium does: `connected` turns false and every later call
   * fails (after being recorded).
   */
  readonly crash: Effect.Effect<void>
}

/** A valid 1×1 transparent PNG. */
export const tinyPng: Uint8Array = Uint8Array.from(
  Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
    "base64"
  )
)

/** Makes a scripted driver; each launch starts a fresh page with its own history. */
export const make = (options: ScriptOptions = {}): Scripted => {
  const calls: Array<Call> = []
  const counts = { launches: 0, closes: 0 }
  const state = { crashed: false }
  const png = options.screenshot ?? tinyPng

  const page = (): RawPage => {
    const history: Array<string> = [options.initialUrl ?? "about:blank"]
    let index = 0
    const run = (call: Call, fallback: Effect.Effect<void> = Effect.void): Effect.Effect<void, ActionFailed> =>
      Effect.suspend(() => {
        calls.push(call)
        if (state.crashed) {
          return new ActionFailed({ service: "browser", action: call._tag, message: `${call._tag} failed: the browser has been closed` })
        }
        return options.onCall?.(call) ?? fallback
      })
    const go = (to: number) =>
      Effect.sync(() => {
        if (to >= 0 && to < history.length) index = to
      })
    return {
      pid: undefined,
      url: Effect.sync(() => history[index] ?? "about:blank"),
      connected: Effect.sync(() => !state.crashed),
      screenshot: Effect.as(run({ _tag: "screenshot" }), png),
      goto: (url) =>
        run(
          { _tag: "goto", url },
          Effect.sync(() => {
            history.splice(index + 1, history.length, url)
            index = history.length - 1
          })
        ),
      back: Effect.suspend(() => run({ _tag: "back" }, go(index - 1))),
      forward: Effect.suspend(() => run({ _tag: "forward" }, go(index + 1))),
      stopLoading: run({ _tag: "stopLoading" }),
      mouseMove: ({ x, y }) => run({ _tag: "mouseMove", x, y }),
      mouseClick: ({ x, y }) => run({ _tag: "mouseClick", x, y }),
      mouseDown: run({ _tag: "mouseDown" }),
      mouseUp: run({ _tag: "mouseUp" }),
      mouseWheel: (deltaX, deltaY) => run({ _tag: "mouseWheel", deltaX, deltaY }),
      typeText: (text) => run({ _tag: "typeText", text }),
      pressKeys: (keys) => run({ _tag: "pressKeys", keys }),
      scrollBy: (deltaX, deltaY) => run({ _tag: "scrollBy", deltaX, deltaY }),
      settle: Effect.void
    }
  }

  return {
    driver: {
      executable: "scripted",
      installed: Effect.succeed(true),
      launch: () =>
        Effect.acquireRelease(
          Effect.sync(() => {
            counts.launches++
            return page()
          }),
          () => Effect.sync(() => void counts.closes++)
        )
    },
    calls: Effect.sync(() => calls.slice()),
    launches: Effect.sync(() => counts.launches),
    closes: Effect.sync(() => counts.closes),
    crash: Effect.sync(() => void (state.crashed = true))
  }
}
