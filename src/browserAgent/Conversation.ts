/**
 * The computer-use conversation as Gemini's REST shapes: the first user turn (task and
 * screenshot), one `functionResponse` per call (the URL, an error when the action failed, and the
 * screenshot in `parts`), and keeping only the last few screenshots so requests stay small.
 *
 * @internal
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Gemini from "../Gemini.js"

/** Turns that keep their screenshots (Google's reference client keeps 3). */
export const screenshotTurns = 3

/** Base64 of a PNG, as `inlineData` wants it. */
export const encodePng = (png: Uint8Array): string => Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString("base64")

const pngBlob = (png: string): Gemini.Blob => ({ mimeType: "image/png", data: png })

/** The first user turn: the task, what happened opening the start page, and the screen. */
export const firstTurn = (task: string, note: string | undefined, screenshot: string | undefined): Gemini.Content => ({
  role: "user",
  parts: [
    { text: note === undefined ? task : `${task}\n\n(${note})` },
    ...(screenshot === undefined ? [] : [{ inlineData: pngBlob(screenshot) }])
  ]
})

/** What an action's answer says besides the screenshot. */
export interface ActionState {
  readonly url: string
  readonly error?: string | undefined
  /** The call carried a `safety_decision` that was confirmed. */
  readonly acknowledged: boolean
}

/** The answer to one call: `response` holds the URL (and the error), `parts` the screenshot. */
export const functionResponse = (
  call: Gemini.FunctionCall,
  state: ActionState,
  screenshot: string | undefined
): Gemini.Part => ({
  functionResponse: {
    name: call.name,
    ...(call.id === undefined ? {} : { id: call.id }),
    response: {
      url: state.url,
      ...(state.error === undefined ? {} : { error: state.error }),
      ...(state.acknowledged ? { safety_acknowledgement: "true" } : {})
    },
    ...(screenshot === undefined ? {} : { parts: [{ inlineData: pngBlob(screenshot) }] })
  }
})

const hasScreenshot = (content: Gemini.Content): boolean =>
  content.role === "user" && content.parts.some((part) =>
    part.inlineData !== undefined || (part.functionResponse?.parts?.length ?? 0) > 0
  )

/**
 * Base64 screenshot bytes a request may carry. Gemini refuses a request over 20 MB, and one
 * screenshot of a busy page is about 5 MB as base64: a turn of several calls, each answered with
 * its screenshot, could pass the limit on its own and fail the task.
 */
export const maxScreenshotBytes = 15 * 1024 * 1024

const screenshotBytes = (part: Gemini.Part): number =>
  (part.inlineData?.data.length ?? 0) +
  (part.functionResponse?.parts ?? []).reduce((sum, inner) => sum + (inner.inlineData?.data.length ?? 0), 0)

const withoutScreenshot = (part: Gemini.Part): ReadonlyArray<Gemini.Part> => {
  if (part.inlineData !== undefined) return []
  if (part.functionResponse?.parts === undefined) return [part]
  const { parts: _screenshots, ...answer } = part.functionResponse
  return [{ ...part, functionResponse: answer }]
}

const withoutScreenshots = (content: Gemini.Content): Gemini.Content => ({
  ...content,
  parts: content.parts.flatMap(withoutScreenshot)
})

/**
 * Keeps the screenshots under `maxBytes` of base64: drops them one part at a time, oldest first,
 * never the newest one (the model must see the page as it is now).
 */
const fitScreenshots = (contents: ReadonlyArray<Gemini.Content>, maxBytes: number): ReadonlyArray<Gemini.Content> => {
  const sizes = contents.map((content) => content.parts.map(screenshotBytes))
  let total = sizes.flat().reduce((sum, size) => sum + size, 0)
  if (total <= maxBytes) return contents
  const places = sizes.flatMap((parts, i) => parts.flatMap((size, j) => size > 0 ? [{ i, j, size }] : []))
  const drop = new Set<string>()
  for (const { i, j, size } of places.slice(0, -1)) {
    if (total <= maxBytes) break
    drop.add(`${i}/${j}`)
    total -= size
  }
  return contents.map((content, i) =>
    content.parts.some((_, j) => drop.has(`${i}/${j}`))
      ? { ...content, parts: content.parts.flatMap((part, j) => drop.has(`${i}/${j}`) ? withoutScreenshot(part) : [part]) }
      : content
  )
}

/**
 * Drops the screenshots of every user turn but the last `keep` that carry one, then, oldest first,
 * any more that would take the request past `maxBytes` of screenshots (the newest always stays).
 * Only the turns that change are copied.
 */
export const pruneScreenshots = (
  contents: ReadonlyArray<Gemini.Content>,
  keep: number = screenshotTurns,
  maxBytes: number = maxScreenshotBytes
): ReadonlyArray<Gemini.Content> => {
  let seen = 0
  let changed = false
  const pruned = [...contents]
  for (let i = pruned.length - 1; i >= 0; i--) {
    const content = pruned[i]!
    if (!hasScreenshot(content)) continue
    seen++
    if (seen > keep) {
      pruned[i] = withoutScreenshots(content)
      changed = true
    }
  }
  return fitScreenshots(changed ? pruned : contents, maxBytes)
}

const decodeSafetyDecision = Schema.decodeUnknownOption(Gemini.SafetyDecision)

/** The call's `safety_decision`, when it has one. */
export const safetyDecision = (call: Gemini.FunctionCall): Gemini.SafetyDecision | undefined =>
  Option.getOrUndefined(decodeSafetyDecision(call.args?.["safety_decision"]))
