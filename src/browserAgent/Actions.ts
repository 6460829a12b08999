/**
 * The 13 predefined computer-use actions: decoding a model's function call into one (or saying,
 * in words the model can act on, why it is not one), and running it on a page.
 *
 * Coordinates arrive normalized to 0–999 on each axis and become CSS pixels as
 * `floor(x / 1000 × width)`; a coordinate outside 0–999 is an error answered to the model, never
 * clamped (a clamped click lands somewhere the model did not mean).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Browser from "../Browser.js"

/** The predefined actions of the `computerUse` tool, as the model names them. */
export const actionNames = [
  "open_web_browser",
  "wait_5_seconds",
  "go_back",
  "go_forward",
  "search",
  "navigate",
  "click_at",
  "hover_at",
  "type_text_at",
  "key_combination",
  "scroll_document",
  "scroll_at",
  "drag_and_drop"
] as const

export type ActionName = typeof actionNames[number]

const actionNameSet: ReadonlySet<string> = new Set(actionNames)

/** Whether `name` is one of the predefined actions (their answers carry screenshots). */
export const isActionName = (name: string): name is ActionName => actionNameSet.has(name)

/** A decoded action; coordinates still normalized. */
export type ComputerAction =
  | { readonly _tag: "open_web_browser" }
  | { readonly _tag: "wait_5_seconds" }
  | { readonly _tag: "go_back" }
  | { readonly _tag: "go_forward" }
  | { readonly _tag: "search" }
  | { readonly _tag: "navigate"; readonly url: string }
  | { readonly _tag: "click_at"; readonly x: number; readonly y: number }
  | { readonly _tag: "hover_at"; readonly x: number; readonly y: number }
  | {
    readonly _tag: "type_text_at"
    readonly x: number
    readonly y: number
    readonly text: string
    readonly pressEnter: boolean
    readonly clearBeforeTyping: boolean
  }
  | { readonly _tag: "key_combination"; readonly keys: ReadonlyArray<string> }
  | { readonly _tag: "scroll_document"; readonly direction: Browser.Direction }
  | {
    readonly _tag: "scroll_at"
    readonly x: number
    readonly y: number
    readonly direction: Browser.Direction
    readonly magnitude: number
  }
  | {
    readonly _tag: "drag_and_drop"
    readonly x: number
    readonly y: number
    readonly destinationX: number
    readonly destinationY: number
  }

type Args = Readonly<Record<string, unknown>>
type Decoded<A> = Either.Either<A, string>

const coordinate = (args: Args, key: string): Decoded<number> => {
  const value = args[key]
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return Either.left(`${key} must be a number from 0 to 999 (normalized coordinates), got ${JSON.stringify(value) ?? "nothing"}`)
  }
  return value >= 0 && value <= 999
    ? Either.right(value)
    : Either.left(`${key}=${value} is outside the screen: coordinates are normalized to 0–999`)
}

const text = (args: Args, key: string): Decoded<string> => {
  const value = args[key]
  return typeof value === "string" ? Either.right(value) : Either.left(`${key} must be a string, got ${JSON.stringify(value) ?? "nothing"}`)
}

const flag = (args: Args, key: string, fallback: boolean): Decoded<boolean> => {
  const value = args[key]
  if (value === undefined) return Either.right(fallback)
  return typeof value === "boolean" ? Either.right(value) : Either.left(`${key} must be true or false, got ${JSON.stringify(value)}`)
}

const directions: ReadonlyArray<Browser.Direction> = ["up", "down", "left", "right"]

const direction = (args: Args): Decoded<Browser.Direction> => {
  const value = args["direction"]
  const found = directions.find((d) => d === value)
  return found === undefined
    ? Either.left(`direction must be one of up, down, left, right, got ${JSON.stringify(value) ?? "nothing"}`)
    : Either.right(found)
}

/** `magnitude` of `scroll_at`: normalized like a coordinate, default 800 (Google's reference client). */
const magnitude = (args: Args): Decoded<number> => {
  const value = args["magnitude"]
  if (value === undefined) return Either.right(800)
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 999
    ? Either.right(value)
    : Either.left(`magnitude must be a number from 0 to 999 (normalized), got ${JSON.stringify(value)}`)
}

/** "Control+Shift+T" → ["Control", "Shift", "T"]; a "+" key survives ("Control++"). */
const splitKeys = (combination: string): ReadonlyArray<string> => {
  const keys: Array<string> = []
  for (const piece of combination.split("+")) {
    if (piece === "") {
      if (keys[keys.length - 1] !== "+") keys.push("+")
    } else keys.push(piece.trim())
  }
  return keys.filter((key) => key !== "")
}

const keys = (args: Args): Decoded<ReadonlyArray<string>> =>
  Either.flatMap(text(args, "keys"), (combination) => {
    const split = splitKeys(combination)
    return split.length === 0 ? Either.left(`keys must name at least one key, e.g. "Control+A"`) : Either.right(split)
  })

/**
 * An address the browser may open (`navigate`'s `url`, the task's start page): an http(s) one.
 * One without a scheme gets `https://`, as Google's reference client does; any other scheme is
 * refused, or a page's text could steer the model to `file:///…` and put local files in the
 * screenshots it is sent.
 */
export const webAddress = (given: string): Decoded<string> => {
  const url = given.trim()
  if (/^https?:\/\//i.test(url)) return Either.right(url)
  // A scheme is letters then ":"; "localhost:8080" is a host and port, not a scheme.
  const scheme = /^([a-z][a-z0-9+.-]*):(?!\d)/i.exec(url)?.[1]
  if (scheme !== undefined) return Either.left(`url must be an http or https address, got a ${scheme.toLowerCase()}: URL`)
  return url === "" ? Either.left(`url must be an http or https address, got ""`) : Either.right(`https://${url}`)
}

const webUrl = (args: Args): Decoded<string> => Either.flatMap(text(args, "url"), webAddress)

const all = Either.all

/**
 * Decodes a function call of the computer-use tool. `Left` is the error the model is told:
 * an unknown action, a missing or ill-typed argument, or a coordinate outside 0–999.
 */
export const decode = (name: string, args: Args): Decoded<ComputerAction> => {
  const point = all({ x: coordinate(args, "x"), y: coordinate(args, "y") })
  const decoded: Decoded<ComputerAction> = (() => {
    switch (name) {
      case "open_web_browser":
      case "wait_5_seconds":
      case "go_back":
      case "go_forward":
      case "search":
        return Either.right({ _tag: name })
      case "navigate":
        return Either.map(webUrl(args), (url) => ({ _tag: "navigate", url }))
      case "click_at":
      case "hover_at":
        return Either.map(point, ({ x, y }) => ({ _tag: name, x, y }))
      case "type_text_at":
        return Either.map(
          all({
            point,
            text: text(args, "text"),
            pressEnter: flag(args, "press_enter", false),
            clearBeforeTyping: flag(args, "clear_before_typing", true)
          }),
          ({ clearBeforeTyping, point: { x, y }, pressEnter, text }) => ({
            _tag: "type_text_at",
            x,
            y,
            text,
            pressEnter,
            clearBeforeTyping
          })
        )
      case "key_combination":
        return Either.map(keys(args), (keys) => ({ _tag: "key_combination", keys }))
      case "scroll_document":
        return Either.map(direction(args), (direction) => ({ _tag: "scroll_document", direction }))
      case "scroll_at":
        return Either.map(
          all({ point, direction: direction(args), magnitude: magnitude(args) }),
          ({ direction, magnitude, point: { x, y } }) => ({ _tag: "scroll_at", x, y, direction, magnitude })
        )
      case "drag_and_drop":
        return Either.map(
          all({ point, destinationX: coordinate(args, "destination_x"), destinationY: coordinate(args, "destination_y") }),
          ({ destinationX, destinationY, point: { x, y } }) => ({ _tag: "drag_and_drop", x, y, destinationX, destinationY })
        )
      default:
        return Either.left(`unknown action "${name}": the browser supports ${actionNames.join(", ")}`)
    }
  })()
  return Either.mapLeft(decoded, (problem) => name === "" || !isActionName(name) ? problem : `${name}: ${problem}`)
}

/** Key names as the model writes them → Playwright's (others pass through: "a", "F5", "Shift"). */
const keyNames: Readonly<Record<string, string>> = {
  backspace: "Backspace",
  tab: "Tab",
  return: "Enter",
  enter: "Enter",
  shift: "Shift",
  control: "Control",
  ctrl: "Control",
  alt: "Alt",
  escape: "Escape",
  esc: "Escape",
  space: "Space",
  pageup: "PageUp",
  pagedown: "PageDown",
  end: "End",
  home: "Home",
  left: "ArrowLeft",
  up: "ArrowUp",
  right: "ArrowRight",
  down: "ArrowDown",
  insert: "Insert",
  delete: "Delete",
  semicolon: ";",
  equals: "=",
  command: "Meta",
  meta: "Meta",
  cmd: "Meta"
}

/** A model's key name as Playwright knows it. */
export const playwrightKey = (key: string): string => keyNames[key.toLowerCase()] ?? key

/** `value` normalized to 0–999 as a pixel of an axis `size` pixels long. */
export const denormalize = (value: number, size: number): number => Math.floor((value / 1000) * size)

/** Where the browser agent's actions go, and what `search` opens. */
export interface Context {
  readonly page: Browser.Page
  readonly searchUrl: string
}

/** Runs a decoded action on the page. */
export const run = (context: Context, action: ComputerAction): Effect.Effect<void, Browser.ActionError> => {
  const { page, searchUrl } = context
  const { height, width } = page.viewport
  const pixel = (x: number, y: number): Browser.Point => ({ x: denormalize(x, width), y: denormalize(y, height) })
  switch (action._tag) {
    case "open_web_browser":
      return Effect.void
    case "wait_5_seconds":
      return Effect.sleep(Duration.seconds(5))
    case "go_back":
      return page.goBack
    case "go_forward":
      return page.goForward
    case "search":
      return page.navigate(searchUrl)
    case "navigate":
      return page.navigate(action.url)
    case "click_at":
      return page.clickAt(pixel(action.x, action.y))
    case "hover_at":
      return page.hoverAt(pixel(action.x, action.y))
    case "type_text_at":
      return page.typeTextAt({
        point: pixel(action.x, action.y),
        text: action.text,
        pressEnter: action.pressEnter,
        clearBeforeTyping: action.clearBeforeTyping
      })
    case "key_combination":
      return page.keyCombination(action.keys.map(playwrightKey))
    case "scroll_document":
      return page.scrollDocument(action.direction)
    case "scroll_at": {
      const vertical = action.direction === "up" || action.direction === "down"
      return page.scrollAt({
        point: pixel(action.x, action.y),
        direction: action.direction,
        pixels: denormalize(action.magnitude, vertical ? height : width)
      })
    }
    case "drag_and_drop":
      return page.dragAndDrop(pixel(action.x, action.y), pixel(action.destinationX, action.destinationY))
  }
}
