/**
 * A value as an error message may show it. Configuration comes from people and from files of
 * unknown origin: a 10 MB value must not be echoed whole to stderr, and a value nested 100,000
 * deep must not be walked (`JSON.stringify` of it overflows the stack). So: a scalar as JSON,
 * cut to `max` characters with its full length said; an array or an object by its size alone.
 *
 * @internal
 */

/** The longest part of a value a message shows by default. */
export const PREVIEW_CHARS = 80

/**
 * A whole number with its thousands grouped ("1,048,576"), as `toLocaleString("en-US")` writes it
 * without the ICU start-up that costs a process ≈ 20 ms on its first call.
 */
export const groupDigits = (n: number): string =>
  Number.isSafeInteger(n) ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",") : String(n)

const count = (n: number, one: string): string => `${groupDigits(n)} ${one}${n === 1 ? "" : "s"}`

/** Cuts `text` to `max` characters, saying how long it was. */
export const truncate = (text: string, max: number = PREVIEW_CHARS): string =>
  text.length <= max ? text : `${text.slice(0, max)}… (${count(text.length, "character")})`

/** `value` for a message: bounded in length, never recursive. */
export const preview = (value: unknown, max: number = PREVIEW_CHARS): string => {
  if (typeof value === "string") {
    return value.length <= max
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, max))}… (${count(value.length, "character")})`
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return truncate(String(value), max)
  if (value === null) return "null"
  if (value === undefined) return "undefined"
  if (Array.isArray(value)) return `an array of ${count(value.length, "item")}`
  if (typeof value === "object") {
    let keys = 0
    for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) keys++
    return `an object with ${count(keys, "key")}`
  }
  return typeof value
}
