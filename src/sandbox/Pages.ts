/**
 * Small local web pages the sandbox serves for browser agents: a sign-up form, the page its
 * submission lands on, and a page that never loads.
 *
 * - `GET /pages/form`: a name field, an email field and a Send button, at fixed places of a
 *   1440×900 viewport (see `formTargets`, in the model's normalized 0–999 coordinates);
 * - `GET /pages/submitted?name=…&email=…`: "Thanks, <name>" and the fields;
 * - `GET /pages/never`: never answers (released when the browser goes away or the sandbox stops).
 *
 * @since 0.2.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type { Answer, Upstream } from "./Http.js"

/** Where the form's controls are, normalized (x / 1000 × 1440 and y / 1000 × 900 land in their middle). */
export const formTargets = {
  name: { x: 500, y: 250 },
  email: { x: 500, y: 400 },
  send: { x: 500, y: 550 }
} as const

const place = (top: number, height: number) =>
  `position:absolute;left:520px;width:400px;top:${top}px;height:${height}px;box-sizing:border-box;margin:0;font-size:18px`

const formPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign up</title></head>
<body style="margin:0;font-family:sans-serif">
<h1 style="position:absolute;left:520px;top:80px;margin:0">Sign up for the newsletter</h1>
<form action="/pages/submitted" method="get">
<input name="name" placeholder="Name" aria-label="Name" style="${place(205, 40)}">
<input name="email" placeholder="Email" aria-label="Email" style="${place(340, 40)}">
<button type="submit" style="${place(470, 50)}">Send</button>
</form>
</body></html>`

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

const submittedPage = (query: Readonly<Record<string, string>>): string => {
  const fields = Object.entries(query).map(([key, value]) => `<li>${escape(key)}: ${escape(value)}</li>`).join("")
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Thanks</title></head>
<body style="font-family:sans-serif"><h1>Thanks, ${escape(query["name"] ?? "")}</h1><ul>${fields}</ul></body></html>`
}

const html = (body: string, status = 200) =>
  HttpServerResponse.text(body, { status, contentType: "text/html; charset=utf-8" })

/** `GET /pages/{page}`. */
export const serve: Answer = (incoming) => {
  switch (incoming.params["page"]) {
    case "form":
      return Effect.succeed(html(formPage))
    case "submitted":
      return Effect.succeed(html(submittedPage(incoming.query)))
    case "never":
      return Effect.never
    default:
      return Effect.succeed(html("<!doctype html><title>Not found</title><h1>Not found</h1>", 404))
  }
}

/** Pages carry no fault plan; these answers exist for the sandbox's shared handler. */
export const upstream: Upstream = {
  error: (_incoming, status) => html(`<!doctype html><title>Error ${status}</title>`, status),
  malformed: () => html("<!doctype html><title"),
  notFound: () => html("<!doctype html><title>Not found</title>", 404),
  // Pages take GETs only; any body is an error of the client.
  maxRequestBytes: 64 * 1024,
  tooLarge: () => html("<!doctype html><title>Payload Too Large</title>", 413),
  isStream: () => false
}
