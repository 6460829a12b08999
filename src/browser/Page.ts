/**
 * The page the browser service hands out: the computer-use actions in CSS pixels, each bounded
 * by its timeout, over a driver's primitives.
 *
 * Navigations (`navigate`, `goBack`, `goForward`) and inputs, each with whatever navigation it
 * starts, are bounded by `browser_page_load`: a page whose script never yields takes no input,
 * and the input would wait for it for good. When one times out the pending load is stopped before
 * the call returns, so the next screenshot sees a page that is not loading. Screenshots are
 * bounded by `browser_screenshot`.
 *
 * @since 0.2.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Resilience from "../Resilience.js"
import type { Point, RawPage, Viewport } from "./Driver.js"
import type { ActionError } from "./Errors.js"

/** Which way to scroll. */
export type Direction = "up" | "down" | "left" | "right"

/** One Chromium page of the browser service. Coordinates are CSS pixels of `viewport`. */
export interface Page {
  /** Chromium's process id (`undefined` for a scripted page). */
  readonly pid: number | undefined
  readonly viewport: Viewport
  /** The page's URL now. */
  readonly url: Effect.Effect<string>
  /** False once the browser is gone, or its page crashed or closed: no action can run any more. */
  readonly connected: Effect.Effect<boolean>
  /** A PNG of the viewport, bounded by `browser_screenshot`. */
  readonly screenshot: Effect.Effect<Uint8Array, ActionError>
  /** Opens `url` and waits for it to load, bounded by `browser_page_load`. */
  readonly navigate: (url: string) => Effect.Effect<void, ActionError>
  readonly goBack: Effect.Effect<void, ActionError>
  readonly goForward: Effect.Effect<void, ActionError>
  readonly clickAt: (point: Point) => Effect.Effect<void, ActionError>
  readonly hoverAt: (point: Point) => Effect.Effect<void, ActionError>
  /**
   * Clicks at `point`, optionally clears the field (select all, delete), types `text`, and
   * optionally presses Enter.
   */
  readonly typeTextAt: (input: {
    readonly point: Point
    readonly text: string
    readonly pressEnter: boolean
    readonly clearBeforeTyping: boolean
  }) => Effect.Effect<void, ActionError>
  /** Presses a key combination, e.g. `["Control", "A"]` (Playwright key names). */
  readonly keyCombination: (keys: ReadonlyArray<string>) => Effect.Effect<void, ActionError>
  /** Scrolls the whole document: a page up or down, half a viewport left or right. */
  readonly scrollDocument: (direction: Direction) => Effect.Effect<void, ActionError>
  /** Scrolls whatever is under `point` by `pixels`. */
  readonly scrollAt: (input: {
    readonly point: Point
    readonly direction: Direction
    readonly pixels: number
  }) => Effect.Effect<void, ActionError>
  readonly dragAndDrop: (from: Point, to: Point) => Effect.Effect<void, ActionError>
}

/** The timeouts a page applies. */
export interface Timeouts {
  readonly pageLoad: Duration.Duration
  readonly screenshot: Duration.Duration
}

/** Builds the bounded page over a driver's page. */
export const make = (raw: RawPage, viewport: Viewport, timeouts: Timeouts): Page => {
  const pageLoadTimeout = Resilience.timeoutAfter(timeouts.pageLoad, "browser_page_load", "browser")
  // Stopping is itself bounded: a renderer that ignores it must not hold the task.
  const stop = raw.stopLoading.pipe(pageLoadTimeout, Effect.ignore)
  const loading = <A>(self: Effect.Effect<A, ActionError>): Effect.Effect<A, ActionError> =>
    self.pipe(
      pageLoadTimeout,
      Effect.tapErrorTag("OperationTimeout", () => stop)
    )
  /** An input, then whatever navigation it started, together bounded by `browser_page_load`. */
  const input = (self: Effect.Effect<void, ActionError>) => loading(Effect.zipRight(self, raw.settle))

  const keyCombination = (keys: ReadonlyArray<string>) => input(raw.pressKeys(keys))

  return {
    pid: raw.pid,
    viewport,
    url: raw.url,
    connected: raw.connected,
    screenshot: raw.screenshot.pipe(Resilience.timeoutAfter(timeouts.screenshot, "browser_screenshot", "browser")),
    navigate: (url) => loading(raw.goto(url)),
    goBack: loading(raw.back),
    goForward: loading(raw.forward),
    clickAt: (point) => input(raw.mouseClick(point)),
    hoverAt: (point) => input(raw.mouseMove(point)),
    typeTextAt: ({ clearBeforeTyping, point, pressEnter, text }) =>
      input(Effect.gen(function*() {
        yield* raw.mouseClick(point)
        yield* raw.settle
        if (clearBeforeTyping) {
          yield* raw.pressKeys(["Control", "A"])
          yield* raw.pressKeys(["Delete"])
        }
        yield* raw.typeText(text)
        if (pressEnter) yield* raw.pressKeys(["Enter"])
      })),
    keyCombination,
    scrollDocument: (direction) => {
      switch (direction) {
        case "up":
          return keyCombination(["PageUp"])
        case "down":
          return keyCombination(["PageDown"])
        case "left":
          return input(raw.scrollBy(-Math.floor(viewport.width / 2), 0))
        case "right":
          return input(raw.scrollBy(Math.floor(viewport.width / 2), 0))
      }
    },
    scrollAt: ({ direction, pixels, point }) =>
      input(Effect.zipRight(
        raw.mouseMove(point),
        raw.mouseWheel(
          direction === "left" ? -pixels : direction === "right" ? pixels : 0,
          direction === "up" ? -pixels : direction === "down" ? pixels : 0
        )
      )),
    dragAndDrop: (from, to) =>
      input(Effect.all([raw.mouseMove(from), raw.mouseDown, raw.mouseMove(to), raw.mouseUp], { discard: true }))
  }
}
