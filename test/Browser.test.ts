/**
 * The browser service on a real Chromium (Debian's, at BIG3_CHROMIUM_PATH or /usr/bin/chromium)
 * against local pages over 127.0.0.1. Every test checks by process id that Chromium and its
 * children are gone when the scope that opened the browser has closed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { WebSocketServer } from "ws"
import * as Browser from "../src/Browser.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { listen } from "./support/loopback.js"
import { servePages } from "./support/pages.js"
import { commandLine, isRunning, runningChildren, runningInGroup } from "./support/processes.js"
import { tempDir } from "./support/tempDir.js"
import { waitFor } from "./support/waitFor.js"

const chromium = process.env["BIG3_CHROMIUM_PATH"] ?? Browser.defaultExecutablePath

/**
 * Inputs are bounded by browser_page_load: 15 s gives typing room on a loaded machine (1.5 s timed
 * out under the full suite); the tests of pages that never load or never yield set a short bound.
 */
const browserLayer = (timeouts: ReliabilityConfig.Overrides["timeouts"] = {}) =>
  Browser.layerWith({ executablePath: chromium }).pipe(
    Layer.provide(Layer.orDie(ReliabilityConfig.layerWith({ timeouts: { browser_page_load: "15 seconds", ...timeouts } })))
  )
const shortPageLoad = { browser_page_load: "1500 millis" } as const

/** Width and height of a PNG, from its IHDR chunk. */
const pngSize = (png: Uint8Array) => {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  return { width: view.getUint32(16), height: view.getUint32(20) }
}

/** The profile directory Chromium was started with (Playwright makes a fresh one per launch). */
const profileOf = (pid: number) =>
  commandLine(pid).find((arg) => arg.startsWith("--user-data-dir="))?.slice("--user-data-dir=".length)

/** The directory in the temp directory that holds Chromium's singleton socket, linked from the profile. */
const singletonDirectoryOf = (profile: string) => {
  try {
    return path.dirname(fs.readlinkSync(path.join(profile, "SingletonSocket")))
  } catch {
    return undefined
  }
}

/** Opens a page in its own scope, runs `body`, closes the scope, and checks Chromium is gone. */
const withPage = <A, E>(body: (page: Browser.Page) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const page = yield* Browser.open.pipe(Scope.extend(scope))
    const pid = page.pid
    assert.isDefined(pid)
    if (pid === undefined) return yield* Effect.dieMessage("no pid")
    assert.isTrue(isRunning(pid), "Chromium runs while the scope is open")
    const profile = profileOf(pid)
    const exit = yield* Effect.exit(body(page))
    const singleton = profile === undefined ? undefined : singletonDirectoryOf(profile)
    yield* Scope.close(scope, Exit.void)
    assert.isFalse(isRunning(pid), `Chromium (pid ${pid}) is gone once the scope closed`)
    assert.deepStrictEqual(runningInGroup(pid), [], "and so are its children")
    assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [])
    if (profile !== undefined) assert.isFalse(fs.existsSync(profile), "its temporary profile is removed")
    assert.isDefined(singleton, "Chromium linked its singleton socket from the profile")
    if (singleton !== undefined) assert.isFalse(fs.existsSync(singleton), `and its singleton directory ${singleton} is removed`)
    return yield* exit
  })

/**
 * A stand-in Chromium, so its exit lands exactly mid-attach: it runs `prelude`, prints a DevTools
 * address served here by a WebSocket that accepts and never answers, and exits (code 7) once
 * Playwright is attached.
 */
const exitingMidAttach = (prelude: string) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("big3-fake-chromium-")
    const attached = path.join(dir, "attached")
    const server = http.createServer()
    const sockets = new WebSocketServer({ server })
    sockets.on("connection", () => fs.writeFileSync(attached, ""))
    const { port } = yield* listen(server)
    // Before the server closes (finalizers run in reverse): an upgraded socket would hold it open.
    yield* Effect.addFinalizer(() => Effect.sync(() => sockets.clients.forEach((socket) => socket.terminate())))
    const executable = path.join(dir, "chromium")
    const address = `ws://127.0.0.1:${port}/devtools/browser/stand-in`
    fs.writeFileSync(
      executable,
      `#!/bin/sh\n${prelude}echo "DevTools listening on ${address}" >&2\n` +
        `while [ ! -e "${attached}" ]; do sleep 0.05; done\necho "gone mid-attach" >&2\nexit 7\n`,
      { mode: 0o755 }
    )
    const layer = Browser.layerWith({ executablePath: executable }).pipe(
      Layer.provide(Layer.orDie(ReliabilityConfig.layerWith({ timeouts: { browser_startup: 20 } })))
    )
    return { dir, address, executable, layer }
  })

describe("Browser (real Chromium)", () => {
  it.live("opens one 1440×900 headless page, fills and submits a form, and closes Chromium with its scope", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const result = yield* withPage((page) =>
        Effect.gen(function*() {
          assert.isTrue(commandLine(page.pid ?? 0).some((arg) => arg.startsWith("--headless")), "started headless")
          yield* page.navigate(`${pages.url}/form`)
          const shot = yield* page.screenshot
          assert.deepStrictEqual(pngSize(shot), { width: 1440, height: 900 })
          yield* page.typeTextAt({ point: { x: 720, y: 225 }, text: "Ada", pressEnter: false, clearBeforeTyping: true })
          yield* page.typeTextAt({ point: { x: 720, y: 360 }, text: "ada@example.com", pressEnter: false, clearBeforeTyping: true })
          yield* page.clickAt({ x: 720, y: 495 })
          return yield* page.url
        })
      )
      assert.strictEqual(result, `${pages.url}/done?name=Ada&email=ada%40example.com`)
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  it.live("a link or script that opens a new tab opens its address in the one page instead", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const urls = yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/tabs`)
          yield* page.clickAt({ x: 720, y: 225 })
          const byLink = yield* page.url
          yield* page.navigate(`${pages.url}/tabs`)
          yield* page.clickAt({ x: 720, y: 360 })
          const byScript = yield* page.url
          // The page is still the one in front: its screenshot does not stall.
          assert.deepStrictEqual(pngSize(yield* page.screenshot), { width: 1440, height: 900 })
          return [byLink, byScript]
        })
      )
      assert.deepStrictEqual(urls, [`${pages.url}/done?via=link`, `${pages.url}/done?via=script`])
    }).pipe(Effect.scoped, Effect.provide(browserLayer({ browser_screenshot: 5 }))), 60_000)

  // Before, the address of the new tab was opened in the page whatever its scheme: a page's script
  // got the page to a data: URL, a navigation Chromium refuses page script.
  it.live("a script that opens a new tab at a data: URL leaves the page where it was", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const url = yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/tabs`)
          yield* page.clickAt({ x: 720, y: 495 })
          // The page moves on by itself a second later, unless the data: URL replaced it.
          return yield* waitFor(page.url, (url) => url.startsWith("data:") || url.endsWith("/done?via=after-data"))
        })
      )
      assert.strictEqual(url, `${pages.url}/done?via=after-data`)
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  // Before, Chromium saved downloads for the task's whole life: a page streaming one wrote about
  // 500 MB to /tmp in 4 s, for a file the model never sees.
  it.live("a download is refused: the browser drops it and the click returns", () =>
    Effect.gen(function*() {
      let dropped = false
      const server = http.createServer((request, response) => {
        if (request.url !== "/download") {
          response.setHeader("content-type", "text/html")
          return void response.end(
            `<!doctype html><a href="/download" style="position:absolute;left:0;top:0;width:1440px;height:900px;display:block">get it</a>`
          )
        }
        response.setHeader("content-type", "application/octet-stream")
        response.setHeader("content-disposition", "attachment; filename=endless.bin")
        const chunk = Buffer.alloc(64 * 1024)
        const writer = setInterval(() => response.write(chunk), 10)
        response.on("close", () => {
          clearInterval(writer)
          dropped = true
        })
      })
      const { url } = yield* listen(server)
      yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${url}/`)
          yield* page.clickAt({ x: 720, y: 450 })
          // A download the browser kept would stream until the browser closed.
          yield* waitFor(Effect.sync(() => dropped), (closed) => closed)
          assert.strictEqual(yield* page.url, `${url}/`)
        })
      )
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  it.live("a key combination that fails on an unknown key leaves no key held for the next input", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const result = yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/form`)
          const failed = yield* Effect.flip(page.keyCombination(["Control", "Shift", "NoSuchKey"]))
          assert.strictEqual(failed._tag, "ActionFailed")
          // Typed with Control still held, "Ada" would be Control+A, Control+D, Control+A.
          yield* page.typeTextAt({ point: { x: 720, y: 225 }, text: "Ada", pressEnter: true, clearBeforeTyping: false })
          return yield* page.url
        })
      )
      assert.strictEqual(result, `${pages.url}/done?name=Ada&email=`)
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  it.live("a navigation that never loads fails with browser_page_load and is stopped before the next screenshot", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/form`)
          const error = yield* Effect.flip(page.navigate(`${pages.url}/never`))
          assert.strictEqual(error._tag, "OperationTimeout")
          if (error._tag === "OperationTimeout") {
            assert.strictEqual(error.operation, "browser_page_load")
            assert.strictEqual(Duration.toMillis(error.timeout), 1500)
          }
          assert.strictEqual(yield* page.url, `${pages.url}/form`, "the page kept what it had")
          assert.deepStrictEqual(pngSize(yield* page.screenshot), { width: 1440, height: 900 })
          // A click that starts the never-loading navigation is bounded the same way.
          const clicked = yield* Effect.flip(page.clickAt({ x: 720, y: 630 }))
          assert.strictEqual(clicked._tag === "OperationTimeout" ? clicked.operation : clicked._tag, "browser_page_load")
          assert.strictEqual(yield* page.url, `${pages.url}/form`)
          yield* page.screenshot
        })
      )
      assert.deepStrictEqual(pages.seen.filter((line) => line.startsWith("GET /never")).length, 2)
    }).pipe(Effect.scoped, Effect.provide(browserLayer(shortPageLoad))), 60_000)

  // Before, Chromium's back-forward cache restored the page without a `load` event: every go back
  // or forward waited out browser_page_load and the model was told it failed.
  it.live("go back and go forward return once the page is shown, with no browser_page_load", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const urls = yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/form`)
          yield* page.navigate(`${pages.url}/done?step=2`)
          yield* page.goBack
          const back = yield* page.url
          yield* page.goForward
          return [back, yield* page.url]
        })
      )
      assert.deepStrictEqual(urls, [`${pages.url}/form`, `${pages.url}/done?step=2`])
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  // Before, a crashed renderer left `connected` true: the agent went on acting on a dead page,
  // blind, until its turns ran out.
  it.live("a page whose renderer crashed is no longer connected", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      yield* withPage((page) =>
        Effect.gen(function*() {
          yield* page.navigate(`${pages.url}/form`)
          assert.isTrue(yield* page.connected)
          // Chromium rewrites a renderer's command line into one string, flags included.
          const renderers = runningInGroup(page.pid ?? 0).filter((pid) =>
            commandLine(pid).some((arg) => arg.includes("--type=renderer"))
          )
          assert.isNotEmpty(renderers)
          for (const pid of renderers) process.kill(pid, "SIGKILL")
          const failed = yield* Effect.flip(page.screenshot)
          assert.strictEqual(failed._tag, "ActionFailed")
          assert.isFalse(yield* page.connected)
        })
      )
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  // Before, the input waited for the renderer for good: only browser_automation (120 s) ended the
  // task, and the model was never told.
  it.live("input to a page whose script never yields fails with browser_page_load: a click, typing, a scroll", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      yield* withPage((page) =>
        Effect.gen(function*() {
          yield* Effect.either(page.navigate(`${pages.url}/busy`))
          // The page starts spinning just after its load: whether this first click lands before
          // that is a race, but once it has returned (its settle waits a while) the page spins.
          yield* Effect.either(page.clickAt({ x: 720, y: 225 }))
          const operation = (error: Browser.ActionError) => error._tag === "OperationTimeout" ? error.operation : error._tag
          const failures = [
            yield* Effect.flip(page.clickAt({ x: 720, y: 225 })),
            yield* Effect.flip(page.typeTextAt({ point: { x: 720, y: 225 }, text: "hello", clearBeforeTyping: true, pressEnter: true })),
            yield* Effect.flip(page.scrollAt({ point: { x: 720, y: 225 }, direction: "down", pixels: 300 }))
          ]
          assert.deepStrictEqual(failures.map(operation), ["browser_page_load", "browser_page_load", "browser_page_load"])
        })
      )
    }).pipe(Effect.scoped, Effect.provide(browserLayer(shortPageLoad))), 60_000)

  it.live("interrupting the fiber that holds the browser closes Chromium", () =>
    Effect.gen(function*() {
      const opened = yield* Effect.makeLatch(false)
      let pid: number | undefined
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const page = yield* Browser.open
        pid = page.pid
        yield* opened.open
        return yield* Effect.never
      })))
      yield* opened.await
      assert.isDefined(pid)
      assert.isTrue(isRunning(pid ?? 0))
      yield* Fiber.interrupt(fiber)
      assert.isFalse(isRunning(pid ?? 0), "Chromium is gone when the interruption returns")
      assert.deepStrictEqual(runningInGroup(pid ?? 0), [])
    }).pipe(Effect.provide(browserLayer())), 60_000)

  it.live("a launch cut by browser_startup fails with OperationTimeout and leaves no Chromium behind", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Browser.open))
      assert.strictEqual(error._tag === "OperationTimeout" ? error.operation : error._tag, "browser_startup")
      assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [], "the abandoned launch was killed")
    }).pipe(Effect.provide(browserLayer({ browser_startup: "100 millis" }))), 60_000)

  it.live("a Chromium that exits while Playwright attaches to it fails the launch with BrowserError, not at browser_startup", () =>
    Effect.gen(function*() {
      const { address, executable, layer } = yield* exitingMidAttach("")
      const error = yield* Effect.flip(Effect.scoped(Browser.open).pipe(Effect.provide(layer)))
      assert.deepStrictEqual([error._tag, error.message], [
        "BrowserError",
        `Chromium (${executable}) exited while starting (code 7): DevTools listening on ${address} | gone mid-attach`
      ])
    }).pipe(Effect.scoped), 60_000)

  it.live("a Chromium that exits by itself leaves no child behind: its process group is killed all the same", () =>
    Effect.gen(function*() {
      const { dir, layer } = yield* exitingMidAttach(`echo $$ > "$(dirname "$0")/main"\nsleep 300 >/dev/null 2>&1 &\necho $! > "$(dirname "$0")/child"\n`)
      yield* Effect.flip(Effect.scoped(Browser.open).pipe(Effect.provide(layer)))
      const main = Number(fs.readFileSync(path.join(dir, "main"), "utf8"))
      const child = Number(fs.readFileSync(path.join(dir, "child"), "utf8"))
      assert.isTrue(child > 0 && main > 0)
      assert.isFalse(isRunning(child), `the child (pid ${child}) it left running is gone`)
      assert.deepStrictEqual(runningInGroup(main), [])
    }).pipe(Effect.scoped), 60_000)

  it.live("a launch removes the profiles that SIGKILLed big3 processes left, and no one else's", () =>
    Effect.gen(function*() {
      const exited = (child: ReturnType<typeof spawn>) => Effect.async<void>((resume) => void child.once("exit", () => resume(Effect.void)))
      const gone = spawn("true")
      yield* exited(gone)
      const living = yield* Effect.acquireRelease(Effect.sync(() => spawn("sleep", ["60"])), (child) =>
        Effect.gen(function*() {
          child.kill("SIGKILL")
          yield* exited(child)
          assert.isFalse(isRunning(child.pid ?? 0), "the stand-in owner is gone")
        }))
      const profile = (pid: number | undefined) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), `big3-chromium-${pid}-`))
            fs.writeFileSync(path.join(dir, "Local State"), "{}")
            return dir
          }),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
      const left = yield* profile(gone.pid)
      const inUse = yield* profile(living.pid)
      yield* withPage(() => Effect.void)
      assert.deepStrictEqual([fs.existsSync(left), fs.existsSync(inUse)], [false, true])
    }).pipe(Effect.scoped, Effect.provide(browserLayer())), 60_000)

  it.live("a missing executable fails with a BrowserError that says how to install Chromium", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Browser.open)).pipe(
        Effect.provide(Browser.layerWith({ executablePath: "/nonexistent/chromium" }).pipe(Layer.provide(Layer.orDie(ReliabilityConfig.layerWith({})))))
      )
      assert.strictEqual(error._tag, "BrowserError")
      assert.strictEqual(error.message, Browser.notInstalledMessage("/nonexistent/chromium"))
      assert.isFalse(error.retryable)
    }))
})
