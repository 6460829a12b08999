/**
 * One Chromium page through `playwright-core`: the browser the Gemini browser agent drives.
 *
 * `open` starts Chromium (Debian's `chromium`, never a downloaded browser), headless, with one
 * page of 1440×900, and hands back a `Page` whose actions are bounded by their timeouts: the
 * launch by `browser_startup`, each navigation by `browser_page_load` (a navigation that times
 * out is stopped), each screenshot by `browser_screenshot`. The browser lives in the caller's
 * scope: closing or interrupting it kills Chromium's process group and removes its temporary
 * profile, so no Chromium outlives the task that opened it.
 *
 * Environment (through `Config`): `BIG3_CHROMIUM_PATH`, default `/usr/bin/chromium`.
 *
 * @since 0.2.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { Driver, Viewport } from "./browser/Driver.js"
import type { BrowserError } from "./browser/Errors.js"
import * as Page from "./browser/Page.js"
import * as Playwright from "./browser/Playwright.js"
import * as Scripted from "./browser/Scripted.js"
import type { OperationTimeout } from "./Errors.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"
import * as Resilience from "./Resilience.js"

export type { Driver, Point, RawPage, Viewport } from "./browser/Driver.js"
export { ActionFailed, BrowserError } from "./browser/Errors.js"
export type { ActionError } from "./browser/Errors.js"
export type { Direction, Page } from "./browser/Page.js"
export { defaultArgs, notInstalledMessage } from "./browser/Playwright.js"
export type { Call as ScriptedCall, Scripted, ScriptOptions } from "./browser/Scripted.js"
export { tinyPng } from "./browser/Scripted.js"

export interface Service {
  /** The page size, 1440×900 unless configured otherwise. */
  readonly viewport: Viewport
  /** What is started (`BIG3_CHROMIUM_PATH`), for messages. */
  readonly executable: string
  /** Whether the browser can be started here (the executable exists). */
  readonly installed: Effect.Effect<boolean>
  /**
   * Starts a browser with one page, bounded by `browser_startup`. Closing the scope closes the
   * browser; a launch that fails or times out closes what it had started before failing.
   */
  readonly open: Effect.Effect<Page.Page, BrowserError | OperationTimeout, Scope.Scope>
}

/** The browser service tag. */
export class Browser extends Context.Tag("big3/Browser")<Browser, Service>() {}

export const defaultExecutablePath = "/usr/bin/chromium"
export const defaultViewport: Viewport = { width: 1440, height: 900 }

export interface Options {
  /** Chromium's executable; default `/usr/bin/chromium`. */
  readonly executablePath?: string | undefined
  /** Chromium's flags; default `defaultArgs` (headless-friendly, no network chatter, no sandbox for root). */
  readonly args?: ReadonlyArray<string> | undefined
  /** Default 1440×900. */
  readonly viewport?: Viewport | undefined
  /** How long an input gives a navigation it may start to begin; default 300 ms. */
  readonly settle?: Duration.DurationInput | undefined
  /** Drives something else than Playwright (a scripted page in tests). */
  readonly driver?: Driver | undefined
}

/** `BIG3_CHROMIUM_PATH`, default `/usr/bin/chromium`. */
export const config: Config.Config<Options> = Config.all({
  executablePath: Config.string("BIG3_CHROMIUM_PATH").pipe(
    Config.withDefault(defaultExecutablePath),
    Config.mapOrFail((path) =>
      path.trim() !== "" ? Either.right(path) : Either.left(ConfigError.InvalidData(
        ["BIG3_CHROMIUM_PATH"],
        `BIG3_CHROMIUM_PATH is empty: expected the path of a Chromium executable such as ${defaultExecutablePath}`
      ))
    )
  )
})

/** Builds the service from explicit options; reads the browser timeouts once. */
export const makeWith = (options: Options = {}): Effect.Effect<Service, never, ReliabilityConfig> =>
  Effect.gen(function*() {
    const reliability = yield* ReliabilityConfig
    const viewport = options.viewport ?? defaultViewport
    const timeouts: Page.Timeouts = {
      pageLoad: reliability.timeoutOf("browser_page_load"),
      screenshot: reliability.timeoutOf("browser_screenshot")
    }
    const startup = reliability.timeoutOf("browser_startup")
    const driver = options.driver ?? Playwright.make({
      executablePath: options.executablePath ?? defaultExecutablePath,
      args: options.args ?? Playwright.defaultArgs,
      startupTimeout: startup,
      closeTimeout: reliability.timeoutOf("graceful_shutdown"),
      settle: Duration.decode(options.settle ?? "300 millis")
    })
    const withStartupTimeout = Resilience.timeoutAfter(startup, "browser_startup", "browser")

    const open = Effect.gen(function*() {
      // The launch's resources go to a child scope, closed at once if the launch fails.
      const launchScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      const raw = yield* driver.launch(viewport).pipe(
        Scope.extend(launchScope),
        withStartupTimeout,
        Effect.onError((cause) => Scope.close(launchScope, Exit.failCause(cause)))
      )
      return Page.make(raw, viewport, timeouts)
    })

    return Browser.of({ viewport, executable: driver.executable, installed: driver.installed, open })
  })

/** Builds the service from the environment (`BIG3_CHROMIUM_PATH`). */
export const make: Effect.Effect<Service, ConfigError.ConfigError, ReliabilityConfig> = Effect.flatMap(config, makeWith)

/** The browser configured from the environment; needs `ReliabilityConfig`. Starts nothing until `open`. */
export const layer: Layer.Layer<Browser, ConfigError.ConfigError, ReliabilityConfig> = Layer.effect(Browser, make)

/** The browser with explicit options. */
export const layerWith = (options: Options = {}): Layer.Layer<Browser, never, ReliabilityConfig> =>
  Layer.effect(Browser, makeWith(options))

/**
 * A browser over a scripted page (no Chromium), with the real timeouts: pass a `Scripted` made by
 * `scripted(...)` to inspect its calls afterwards.
 */
export const layerTest = (script: Scripted.Scripted): Layer.Layer<Browser, never, ReliabilityConfig> =>
  layerWith({ driver: script.driver })

/** A scripted driver: every primitive recorded, each one's behaviour decided by `options.onCall`. */
export const scripted = (options: Scripted.ScriptOptions = {}): Scripted.Scripted => Scripted.make(options)

/** Opens a page with the browser in context; see `Service.open`. */
export const open: Effect.Effect<Page.Page, BrowserError | OperationTimeout, Browser | Scope.Scope> = Effect.flatMap(
  Browser,
  (browser) => browser.open
)
