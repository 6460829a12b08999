/**
 * A bare HTTP server of local pages for browser tests, written here so the browser is not tuned
 * to the sandbox's pages. Positions are fixed in CSS pixels of a 1440×900 viewport; `at` gives
 * each target in the model's normalized 0–999 coordinates.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import { listen } from "./loopback.js"

/** Targets, normalized (x / 1000 × 1440, y / 1000 × 900 lands in their middle). */
export const at = {
  name: { x: 500, y: 250 },
  email: { x: 500, y: 400 },
  submit: { x: 500, y: 550 },
  neverLink: { x: 500, y: 700 }
} as const

const box = (top: number, height: number) =>
  `position:absolute;left:520px;width:400px;top:${top}px;height:${height}px;box-sizing:border-box;margin:0`

const formPage = `<!doctype html><html><head><title>Sign up</title></head><body style="margin:0">
<form action="/done" method="get">
<input name="name" aria-label="name" style="${box(205, 40)}">
<input name="email" aria-label="email" style="${box(340, 40)}">
<button type="submit" style="${box(470, 50)}">Send</button>
</form>
<a href="/never" style="${box(610, 40)};display:block">a page that never loads</a>
</body></html>`

/**
 * A link with `target="_blank"` at the name field's place, a `window.open` button at the email's,
 * and at the submit button's a `window.open` of a `data:` URL (which Chromium refuses a page)
 * after which, a second later, the page goes to `/done?via=after-data` itself.
 */
const newTabPage = `<!doctype html><html><head><title>Tabs</title></head><body style="margin:0">
<a href="/done?via=link" target="_blank" style="${box(205, 40)};display:block">in a new tab</a>
<button onclick="window.open('/done?via=script')" style="${box(340, 40)}">open a window</button>
<button onclick="window.open('data:text/html,<title>Sign in</title>Sign in again'); setTimeout(() => location.assign('/done?via=after-data'), 1000)" style="${box(470, 50)}">open data</button>
</body></html>`

/** A page whose script, once loaded, never yields: the renderer takes no more input. */
const busyPage = `<!doctype html><html><head><title>Busy</title></head>
<body style="margin:0" onload="setTimeout(() => { for (;;) {} }, 0)">
<input aria-label="name" style="${box(205, 40)}">
</body></html>`

const escape = (text: string) => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)

export interface Pages {
  /** "http://127.0.0.1:<port>" */
  readonly url: string
  /** Requests seen, as "METHOD /path?query". */
  readonly seen: ReadonlyArray<string>
}

/**
 * Serves `/form`, `/tabs` (opens new tabs), `/busy` (never yields once loaded), `/done?…` (echoes
 * the fields), `/never` (never answers); closed with the scope.
 */
export const servePages: Effect.Effect<Pages, never, Scope.Scope> = Effect.suspend(() => {
  const seen: Array<string> = []
  const server = http.createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`)
    const url = new URL(request.url ?? "/", "http://pages.invalid")
    if (url.pathname === "/never") return // never answers; released when the socket closes
    response.setHeader("content-type", "text/html; charset=utf-8")
    if (url.pathname === "/form") return void response.end(formPage)
    if (url.pathname === "/tabs") return void response.end(newTabPage)
    if (url.pathname === "/busy") return void response.end(busyPage)
    if (url.pathname === "/done") {
      const fields = Array.from(url.searchParams, ([key, value]) => `<p id="${escape(key)}">${escape(value)}</p>`).join("")
      return void response.end(`<!doctype html><title>Thanks</title><h1>Thanks</h1>${fields}`)
    }
    response.statusCode = 404
    response.end("<!doctype html><title>Not found</title>")
  })
  return Effect.map(listen(server), ({ url }) => ({ url, seen }))
})
