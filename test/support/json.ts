/** Reading parsed JSON in tests without casting it. */
import * as Predicate from "effect/Predicate"

/** The value at `path` in `value` (object keys and array indexes), or `undefined`. */
export const at = (value: unknown, ...path: ReadonlyArray<string | number>): unknown =>
  path.reduce<unknown>((current, key) => {
    if (typeof key === "number") return Array.isArray(current) ? current[key] : undefined
    return Predicate.isRecord(current) ? current[key] : undefined
  }, value)

/** `at(value, ...path)` for each element of the array `value` (an empty list otherwise). */
export const each = (value: unknown, ...path: ReadonlyArray<string | number>): ReadonlyArray<unknown> =>
  Array.isArray(value) ? value.map((item: unknown) => at(item, ...path)) : []
