/**
 * The production driver: Chromium through `playwright-core`, never a downloaded browser.
 *
 * Chromium is started with `chromium.launchServer` (Playwright's own launcher, over a pipe, with
 * a fresh temporary profile it removes on exit): it gives us the process id, kills the whole
 * process group on close, and a Chromium whose parent dies loses its pipe and exits too. The page
 * is driven through `chromium.connect` to that server. `playwright-core` (≈ 0.9 s to import) is
 * loaded on the first launch, so programs that never open a browser do not pay for it.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import type * as Playwright from "playwright-core"
import type { Driver, Point, RawPage, Viewport } from "./Driver.js"
import { ActionFailed, BrowserError } from "./Errors.js"

const service = "browser"

/** Flags that let Chromium run headless as root on a machine without a network or a GPU. */
export const defaultArgs: ReadonlyArray<string> = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export interface Options {
  readonly executablePath: string
  readonly args: ReadonlyArray<string>
  /** Bounds Playwright's own launch, so a launch abandoned by an interruption still ends. */
  readonly startupTimeout: Duration.Duration
  /** Bounds closing the browser; past it the close is given up (the process group was killed). */
  readonly closeTimeout: Duration.Duration
  /** How long an input gives a navigation it may have started to begin. */
  readonly settle: Duration.Duration
}

const firstLine = (cause: unknown): string => {
  const text = cause instanceof Error ? cause.message : String(cause)
  return text.split("\n")[0]?.trim() ?? text
}

const failed = (action: string) => (cause: unknown) =>
  new ActionFailed({ service, action, message: `${action} failed: ${firstLine(cause)}` })

/** A Playwright call as an effect; a rejection is an `ActionFailed` of `action`. */
const call = <A>(action: string, run: () => Promise<A>): Effect.Effect<A, ActionFailed> =>
  Effect.tryPromise({ try: run, catch: failed(action) })

const isExecutable = (path: string): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    fs.access(path, fs.constants.X_OK, (error) => resume(Effect.succeed(error === null)))
  })

/** The message for a machine without Chromium: what to install, or which variable to set. */
export const notInstalledMessage = (path: string): string =>
  `Chromium was not found at ${path}: install it (Debian/Ubuntu: apt-get install chromium) ` +
  `or set BIG3_CHROMIUM_PATH to a Chromium or Chrome executable`

/**
 * Starts a browser server. Interrupted while starting, it waits for the launch to settle and
 * kills what it started, so no Chromium outlives the scope that asked for it.
 */
const launchServer = (chromium: Playwright.BrowserType, options: Options) =>
  Effect.async<Playwright.BrowserServer, BrowserError>((resume) => {
    const pending = chromium.launchServer({
      executablePath: options.executablePath,
      headless: true,
      args: [...options.args],
      timeout: Duration.toMillis(options.startupTimeout),
      // Signals are the program's to handle: closing the scope closes the browser.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false
    })
    pending.then(
      (server) => resume(Effect.succeed(server)),
      (cause) =>
        resume(Effect.fail(new BrowserError({ service, message: `Chromium (${options.executablePath}) did not start: ${firstLine(cause)}` })))
    )
    return Effect.tryPromise(() => pending.then((server) => server.kill())).pipe(Effect.ignore)
  })

/** Kills Chromium's process group and waits for it to exit (Playwright then removes the profile). */
const killServer = (server: Playwright.BrowserServer, options: Options) =>
  Effect.tryPromise(() => server.kill()).pipe(
    Effect.interruptible,
    Effect.timeout(options.closeTimeout),
    Effect.catchAll((error) => Effect.logWarning(`Chromium (pid ${server.process().pid}) did not exit cleanly: ${firstLine(error)}`))
  )

/**
 * Tracks the main frame's navigation: the latest navigation request until its page has loaded,
 * failed, or turned out to be no page at all (204, a download), so `settle` knows what to wait for.
 */
const trackNavigation = (page: Playwright.Page) => {
  let pending: Playwright.Request | undefined
  const waiters = new Set<() => void>()
  const done = () => {
    pending = undefined
    for (const waiter of waiters) waiter()
    waiters.clear()
  }
  page.on("request", (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) pending = request
  })
  page.on("load", done)
  page.on("download", done)
  page.on("close", done)
  page.on("requestfailed", (request) => {
    if (request === pending) done()
  })
  page.on("requestfinished", (request) => {
    if (request !== pending) return
    void request.response().then((response) => {
      const status = response?.status()
      if (request === pending && (status === 204 || status === 205)) done()
    }, done)
  })
  /** Waits until no navigation is pending. */
  return Effect.async<void>((resume) => {
    if (pending === undefined) return resume(Effect.void)
    const waiter = () => resume(Effect.void)
    waiters.add(waiter)
    return Effect.sync(() => void waiters.delete(waiter))
  })
}

const rawPage = (
  browser: Playwright.Browser,
  page: Playwright.Page,
  cdp: Playwright.CDPSession,
  pid: number | undefined,
  options: Options
): RawPage => {
  const navigationDone = trackNavigation(page)
  const point = (action: string, run: (p: Point) => Promise<void>) => (p: Point) => call(action, () => run(p))
  return {
    pid,
    url: Effect.sync(() => page.url()),
    connected: Effect.sync(() => browser.isConnected()),
    screenshot: call("screenshot", () => page.screenshot({ type: "png", timeout: 0 })),
    goto: (url) => call("navigate", () => page.goto(url, { waitUntil: "load", timeout: 0 })),
    back: call("go back", () => page.goBack({ waitUntil: "load", timeout: 0 })),
    forward: call("go forward", () => page.goForward({ waitUntil: "load", timeout: 0 })),
    stopLoading: call("stop loading", () => cdp.send("Page.stopLoading")),
    mouseMove: point("mouse move", ({ x, y }) => page.mouse.move(x, y)),
    mouseClick: point("click", ({ x, y }) => page.mouse.click(x, y)),
    mouseDown: call("mouse down", () => page.mouse.down()),
    mouseUp: call("mouse up", () => page.mouse.up()),
    mouseWheel: (deltaX, deltaY) => call("mouse wheel", () => page.mouse.wheel(deltaX, deltaY)),
    typeText: (text) => call("type", () => page.keyboard.type(text)),
    pressKeys: (keys) =>
      call(`press ${keys.join("+")}`, async () => {
        const last = keys[keys.length - 1]
        if (last === undefined) return
        const held = keys.slice(0, -1)
        for (const key of held) await page.keyboard.down(key)
        await page.keyboard.press(last)
        for (const key of held.reverse()) await page.keyboard.up(key)
      }),
    // Numbers only, so the expression cannot carry anything but the two deltas.
    scrollBy: (deltaX, deltaY) =>
      call("scroll", () => page.evaluate(`window.scrollBy(${Number(deltaX)}, ${Number(deltaY)})`)),
    settle: Effect.zipRight(Effect.sleep(options.settle), navigationDone)
  }
}

/** The Playwright driver over the Chromium at `options.executablePath`. */
export const make = (options: Options): Driver => {
  const launchFailed = (step: string) => (cause: unknown) =>
    new BrowserError({ service, message: `Chromium (${options.executablePath}) could not ${step}: ${firstLine(cause)}` })
  const step = <A>(name: string, run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: launchFailed(name) })

  const launch = (viewport: Viewport) =>
    Effect.gen(function*() {
      if (!(yield* isExecutable(options.executablePath))) {
        return yield* new BrowserError({ service, message: notInstalledMessage(options.executablePath) })
      }
      const { chromium } = yield* step("load playwright-core", () => import("playwright-core"))
      const server = yield* Effect.acquireRelease(
        Effect.interruptible(launchServer(chromium, options)),
        (server) => killServer(server, options)
      )
      // Released before the server: the client's socket closes, then the process group dies.
      const browser = yield* Effect.acquireRelease(
        Effect.interruptible(step("connect", () => chromium.connect(server.wsEndpoint(), { timeout: Duration.toMillis(options.startupTimeout) }))),
        (browser) =>
          Effect.tryPromise(() => browser.close()).pipe(Effect.interruptible, Effect.timeout(options.closeTimeout), Effect.ignore)
      )
      const context = yield* step("open a page", () => browser.newContext({ viewport, deviceScaleFactor: 1 }))
      const page = yield* step("open a page", () => context.newPage())
      const cdp = yield* step("open a DevTools session", () => context.newCDPSession(page))
      return rawPage(browser, page, cdp, server.process().pid, options)
    })

  return { launch, installed: isExecutable(options.executablePath), executable: options.executablePath }
}
