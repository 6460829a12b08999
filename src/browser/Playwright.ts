/**
 * The production driver: Chromium through `playwright-core`, never a downloaded browser.
 *
 * We start Chromium ourselves rather than through Playwright's launcher, because owning the
 * process is what makes "no Chromium outlives its task" hold: the process exists (with its id)
 * the moment the scope has it, so an interruption at any point, even mid-launch, kills it and
 * waits for it to exit; Playwright's launcher reports a launch timeout before its kill has
 * finished. Chromium gets a fresh profile directory (removed after it exits), its own process
 * group (killed whole: renderers, GPU process, zygotes), and a DevTools pipe on fds 3/4 that we
 * hold and never use: if this process dies without cleaning up, the pipe closes and Chromium
 * exits. Playwright drives the page over `connectOverCDP` to the port Chromium prints.
 * `playwright-core` (≈ 0.9 s to import) is loaded on the first launch only.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type * as Playwright from "playwright-core"
import type { Driver, Point, RawPage, Viewport } from "./Driver.js"
import { formatDuration } from "../Errors.js"
import { ActionFailed, BrowserError } from "./Errors.js"
import { messageOf } from "../internal/messageOf.js"
import { liveGroupMembers, processIsGone } from "../internal/processAlive.js"

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
  /** Bounds connecting Playwright to the started Chromium. */
  readonly startupTimeout: Duration.Duration
  /** Bounds closing the browser; the process group has been killed by then. */
  readonly closeTimeout: Duration.Duration
  /** How long an input gives a navigation it may have started to begin. */
  readonly settle: Duration.Duration
}

const firstLine = (cause: unknown): string => {
  const text = messageOf(cause)
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

/** A started Chromium: the process, its profile, and what it printed last (for error messages). */
interface Launched {
  readonly child: ChildProcess.ChildProcess
  readonly pid: number
  readonly profile: string
  readonly output: Array<string>
}

const exited = (child: ChildProcess.ChildProcess) => child.exitCode !== null || child.signalCode !== null

/**
 * Chromium keeps its singleton socket in a directory of its own in the temp directory
 * (`org.chromium.Chromium.XXXXXX`), linked from the profile as `SingletonSocket`. It removes it when
 * it exits by itself; a killed one leaves it behind, one per launch. Removes it, when the link
 * points to a directory directly in the temp directory, before the profile goes.
 */
const removeSingletonDirectory = (profile: string): void => {
  let target: string
  try {
    target = fs.readlinkSync(path.join(profile, "SingletonSocket"))
  } catch {
    return // no link: Chromium did not get that far, or it cleaned up itself
  }
  const directory = path.dirname(target)
  if (path.basename(target) === "SingletonSocket" && path.dirname(directory) === os.tmpdir()) {
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** Removes a profile and the singleton directory it links to. */
const removeProfile = (profile: string): void => {
  removeSingletonDirectory(profile)
  fs.rmSync(profile, { recursive: true, force: true })
}

/**
 * SIGKILL to Chromium's whole process group (renderers, GPU process, zygotes), even when Chromium
 * itself has exited already: its children may outlive it.
 */
const killGroup = ({ child, pid }: Launched): void => {
  try {
    process.kill(-pid, "SIGKILL")
  } catch {
    if (!exited(child)) child.kill("SIGKILL")
  }
}

const exitOf = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (exited(child)) return resume(Effect.void)
    const onExit = () => resume(Effect.void)
    child.once("exit", onExit)
    return Effect.sync(() => void child.off("exit", onExit))
  })

/**
 * The signal reaches every member at once, but each takes its own time to die (a renderer unmapping
 * its memory on a loaded machine outlasts Chromium's own exit), so this waits until none is alive.
 */
const groupGone = (group: number) =>
  Effect.repeat(Effect.sync(() => liveGroupMembers(group).length === 0), {
    until: (gone) => gone,
    schedule: Schedule.spaced("10 millis")
  })

/** Kills Chromium's process group, waits for all of it to exit, and removes its profile. */
const stopProcess = (launched: Launched, options: Options) =>
  Effect.sync(() => killGroup(launched)).pipe(
    Effect.zipRight(exitOf(launched.child)),
    Effect.zipRight(groupGone(launched.pid)),
    // A finalizer is uninterruptible: the wait must be made interruptible for the bound to hold.
    Effect.interruptible,
    Effect.timeout(options.closeTimeout),
    Effect.catchAll(() => Effect.logWarning(`Chromium (pid ${launched.pid}) did not exit within ${formatDuration(options.closeTimeout)}`)),
    Effect.zipRight(Effect.try(() => removeProfile(launched.profile))),
    Effect.catchAll((cause) => Effect.logWarning(`Chromium's profile ${launched.profile} could not be removed: ${firstLine(cause)}`))
  )

/** A profile is `big3-chromium-<pid of the big3 process>-XXXXXX` in the temp directory. */
const profilePrefix = "big3-chromium-"

/**
 * Removes the profiles of big3 processes that are gone. A SIGKILLed big3 cannot remove its own:
 * its Chromium exits (its DevTools pipe closes) but leaves the profile, megabytes each.
 */
const sweepProfiles = Effect.try(() => {
  const stale = fs.readdirSync(os.tmpdir()).filter((name) => {
    const owner = new RegExp(`^${profilePrefix}(\\d+)-`).exec(name)?.[1]
    return owner !== undefined && processIsGone(Number(owner))
  })
  for (const name of stale) removeProfile(path.join(os.tmpdir(), name))
}).pipe(
  Effect.catchAll((cause) => Effect.logDebug(`stale Chromium profiles could not be removed: ${firstLine(cause)}`))
)

/** Spawns Chromium; synchronous, so the scope owns the process from its first instant. */
const spawnProcess = (options: Options) =>
  Effect.try({
    try: (): Launched => {
      const profile = fs.mkdtempSync(path.join(os.tmpdir(), `${profilePrefix}${process.pid}-`))
      const child = ChildProcess.spawn(
        options.executablePath,
        [
          ...options.args,
          "--headless",
          `--user-data-dir=${profile}`,
          "--remote-debugging-port=0",
          "--remote-debugging-pipe",
          "--no-default-browser-check",
          "--password-store=basic",
          // A page restored from the back-forward cache fires no `load`, which go back / forward
          // wait for; Playwright's own launcher turns the cache off for the same reason.
          "--disable-back-forward-cache",
          "about:blank"
        ],
        { detached: true, stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] }
      )
      if (child.pid === undefined) {
        fs.rmSync(profile, { recursive: true, force: true })
        throw new Error("spawn returned no process id")
      }
      const output: Array<string> = []
      let partial = ""
      // Chromium's stderr is read for the DevTools address, then drained so it never blocks on it;
      // the last lines are kept for error messages.
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        const lines = (partial + chunk).split("\n")
        partial = lines.pop() ?? ""
        output.push(...lines.filter((line) => line.trim() !== ""))
        if (output.length > 20) output.splice(0, output.length - 20)
      })
      child.on("error", () => {}) // reported through the exit below
      return { child, pid: child.pid, profile, output }
    },
    catch: (cause) => new BrowserError({ service, message: `Chromium (${options.executablePath}) could not be started: ${firstLine(cause)}` })
  })

/** The launch failure of a Chromium that exited before it could be driven. */
const exitedWhileStarting = (launched: Launched, options: Options, code: number | null, signal: string | null) =>
  new BrowserError({
    service,
    message: `Chromium (${options.executablePath}) exited while starting (${signal ?? `code ${code}`}): ${launched.output.slice(-3).join(" | ") || "no output"}`
  })

/** Waits for the DevTools WebSocket address Chromium prints, or fails with what it printed before exiting. */
const devToolsEndpoint = (launched: Launched, options: Options) =>
  Effect.async<string, BrowserError>((resume) => {
    const find = () => {
      for (const line of launched.output) {
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(line)
        if (match?.[1] !== undefined) return match[1]
      }
      return undefined
    }
    const onData = () => {
      const endpoint = find()
      if (endpoint !== undefined) {
        cleanup()
        resume(Effect.succeed(endpoint))
      }
    }
    const onExit = (code: number | null, signal: string | null) => {
      cleanup()
      resume(Effect.fail(exitedWhileStarting(launched, options, code, signal)))
    }
    const cleanup = () => {
      launched.child.stderr?.off("data", onData)
      launched.child.off("exit", onExit)
    }
    launched.child.stderr?.on("data", onData)
    launched.child.once("exit", onExit)
    onData()
    return Effect.sync(cleanup)
  })

/**
 * Fails as soon as Chromium exits. Raced against connecting to it: Playwright's `connectOverCDP`
 * does not always notice a browser that dies while it attaches, and would wait out its timeout.
 */
const exitWhileStarting = (launched: Launched, options: Options) =>
  Effect.async<never, BrowserError>((resume) => {
    const { child } = launched
    const onExit = (code: number | null, signal: string | null) => resume(Effect.fail(exitedWhileStarting(launched, options, code, signal)))
    if (exited(child)) return onExit(child.exitCode, child.signalCode)
    child.once("exit", onExit)
    return Effect.sync(() => void child.off("exit", onExit))
  })

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

/**
 * Keeps the browser to one tab, as Google's reference client does: the model sees only the page,
 * so a link or script that opens a new tab would change nothing it can see, and the page, now in
 * the background, could stall its screenshots. The new tab is closed and its address, when an
 * http(s) one, opened in the page instead. The address comes from DevTools' `Page.windowOpen`,
 * sent as the opener asks for the tab, so the navigation begins within `settle`'s wait; the new
 * tab itself is reported much later, once it has loaded.
 */
const keepOneTab = (context: Playwright.BrowserContext, page: Playwright.Page, cdp: Playwright.CDPSession) => {
  cdp.on("Page.windowOpen", ({ url }) => {
    // http(s) only, as for navigate: a DevTools navigation may go where page script may not
    // (data:, file:), and it would do so on the page's word.
    if (/^https?:/i.test(url)) page.goto(url, { waitUntil: "load", timeout: 0 }).catch(() => {})
  })
  context.on("page", (opened) => {
    if (opened !== page) opened.close().catch(() => {})
  })
  return cdp.send("Page.enable")
}

const rawPage = (
  browser: Playwright.Browser,
  page: Playwright.Page,
  cdp: Playwright.CDPSession,
  pid: number | undefined,
  options: Options
): RawPage => {
  const navigationDone = trackNavigation(page)
  // A crashed page (renderer killed, out of memory) takes no more input: Playwright fails every
  // call on it, so to the agent it is as gone as a browser that exited.
  let crashed = false
  page.once("crash", () => {
    crashed = true
  })
  const point = (action: string, run: (p: Point) => Promise<void>) => (p: Point) => call(action, () => run(p))
  return {
    pid,
    url: Effect.sync(() => page.url()),
    connected: Effect.sync(() => browser.isConnected() && !crashed && !page.isClosed()),
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
        const held: Array<string> = []
        try {
          for (const key of keys.slice(0, -1)) {
            await page.keyboard.down(key)
            held.push(key)
          }
          await page.keyboard.press(last)
        } finally {
          // Released even when a key is unknown: a modifier left down would change every later input.
          for (const key of held.reverse()) await page.keyboard.up(key).catch(() => {})
        }
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
      yield* sweepProfiles
      const launched = yield* Effect.acquireRelease(spawnProcess(options), (launched) => stopProcess(launched, options))
      const endpoint = yield* devToolsEndpoint(launched, options)
      return yield* Effect.raceFirst(
        Effect.gen(function*() {
          // Released before the process: the connection closes, then the process group is killed.
          const browser = yield* Effect.acquireRelease(
            Effect.interruptible(
              step("connect", () => chromium.connectOverCDP(endpoint, { timeout: Duration.toMillis(options.startupTimeout) }))
            ),
            (browser) =>
              Effect.tryPromise(() => browser.close()).pipe(Effect.interruptible, Effect.timeout(options.closeTimeout), Effect.ignore)
          )
          // No downloads: the model never sees a file, and a page could stream one onto our disk.
          const context = yield* step("open a page", () => browser.newContext({ viewport, deviceScaleFactor: 1, acceptDownloads: false }))
          const page = yield* step("open a page", () => context.newPage())
          const cdp = yield* step("open a DevTools session", () => context.newCDPSession(page))
          yield* step("open a DevTools session", () => keepOneTab(context, page, cdp))
          return rawPage(browser, page, cdp, launched.pid, options)
        }),
        exitWhileStarting(launched, options)
      )
    })

  return { launch, installed: isExecutable(options.executablePath), executable: options.executablePath }
}
