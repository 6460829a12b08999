/**
 * The one reading of a number written in a setting. `Number` (and Effect's `Config.integer`,
 * which uses it) also reads `0x10`, `0b1`, `1e3`, `Infinity` and blanks as numbers; a count
 * written so is a mistake or a trick, not a count. Settings take plain decimal digits only, and
 * every number has both bounds.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import { preview } from "./preview.js"

const decimalText = /^\d+(\.\d+)?$/
const wholeText = /^\d+$/

/** `text` (trimmed) as a number when it is plain decimal digits (whole ones when `integer`), else `undefined`. */
export const parseDecimal = (text: string, integer: boolean): number | undefined => {
  const trimmed = text.trim()
  return (integer ? wholeText : decimalText).test(trimmed) ? Number(trimmed) : undefined
}

/** True when `text` is a number to `Number` but not in plain decimal digits (`0x10`, `1e3`). */
export const isOtherNotation = (text: string): boolean => {
  const trimmed = text.trim()
  return trimmed !== "" && Number.isFinite(Number(trimmed)) && parseDecimal(trimmed, false) === undefined
}

/**
 * An optional whole-number setting in [min, max]: `undefined` when unset; anything else that is
 * not plain decimal digits within the bounds is a `ConfigError` naming the key and the value.
 */
export const wholeNumberSetting = (name: string, min: number, max: number): Config.Config<number | undefined> =>
  Config.string(name).pipe(
    Config.option,
    Config.mapOrFail((option) => {
      if (option._tag === "None") return Either.right(undefined)
      const value = parseDecimal(option.value, true)
      if (value !== undefined && value >= min && value <= max) return Either.right(value)
      const notation = isOtherNotation(option.value) ? ", written in plain decimal digits" : ""
      return Either.left(
        ConfigError.InvalidData(
          [name],
          `${name}=${preview(option.value)} is not valid: expected a whole number from ${min} to ${max}${notation}`
        )
      )
    })
  )
