/**
 * The port between the browser service and what drives a page: Playwright over a real Chromium,
 * or a scripted page for tests. A driver's operations are unbounded primitives; `Page.ts` adds the
 * timeouts and the composite actions on top, so both drivers get the same bounds.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ActionFailed, BrowserError } from "./Errors.js"

/** The page's size in CSS pixels. */
export interface Viewport {
  readonly width: number
  readonly height: number
}

/** A point on the page, in CSS pixels from the top left corner. */
export interface Point {
  readonly x: number
  readonly y: number
}

/** A page as a driver sees it: each operation does one thing and waits for nothing else. */
export interface RawPage {
  /** The browser's process id; `undefined` when no process backs the page (a scripted page). */
  readonly pid: number | undefined
  /** The page's URL now. */
  readonly url: Effect.Effect<string>
  /** False once the browser is gone (crashed, killed, disconnected) or the page crashed or closed. */
  readonly connected: Effect.Effect<boolean>
  /** A PNG of the viewport. */
  readonly screenshot: Effect.Effect<Uint8Array, ActionFailed>
  /** Navigates and waits for the `load` event. */
  readonly goto: (url: string) => Effect.Effect<void, ActionFailed>
  /** History back / forward, waiting for the `load` event (nothing happens without history). */
  readonly back: Effect.Effect<void, ActionFailed>
  readonly forward: Effect.Effect<void, ActionFailed>
  /** Stops a pending navigation (the page keeps what it had). */
  readonly stopLoading: Effect.Effect<void, ActionFailed>
  readonly mouseMove: (point: Point) => Effect.Effect<void, ActionFailed>
  readonly mouseClick: (point: Point) => Effect.Effect<void, ActionFailed>
  readonly mouseDown: Effect.Effect<void, ActionFailed>
  readonly mouseUp: Effect.Effect<void, ActionFailed>
  readonly mouseWheel: (deltaX: number, deltaY: number) => Effect.Effect<void, ActionFailed>
  /** Types text into the focused element, key by key. */
  readonly typeText: (text: string) => Effect.Effect<void, ActionFailed>
  /** Holds every key but the last, presses the last, releases in reverse (Playwright key names). */
  readonly pressKeys: (keys: ReadonlyArray<string>) => Effect.Effect<void, ActionFailed>
  /** Scrolls the document by a number of pixels. */
  readonly scrollBy: (deltaX: number, deltaY: number) => Effect.Effect<void, ActionFailed>
  /**
   * After input: gives a navigation the input may have started time to begin, then waits until
   * it has loaded (at once when there is none).
   */
  readonly settle: Effect.Effect<void, ActionFailed>
}

/** Starts a browser with one page of `viewport`; closing the scope closes the browser. */
export interface Driver {
  readonly launch: (viewport: Viewport) => Effect.Effect<RawPage, BrowserError, Scope.Scope>
  /** Whether the browser can be started here at all (the executable exists). */
  readonly installed: Effect.Effect<boolean>
  /** What the driver starts, for messages ("/usr/bin/chromium"). */
  readonly executable: string
}
