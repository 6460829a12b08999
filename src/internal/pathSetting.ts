/**
 * The one reading of a setting that names a path on disk (`BIG3_STATE_DIR`, `BIG3_AGENTS_DIR`,
 * `CLAUDE_CODE_EXECUTABLE`, …), so every reader agrees on what an odd value means:
 *
 * - surrounding blanks are trimmed;
 * - a blank value (`BIG3_STATE_DIR=""`) is the same as an unset one: the default applies.
 *   (Reading it as the empty path put agents at `/agents`, or in the working directory.);
 * - a value containing a NUL character is a `ConfigError` naming the key (no file system accepts
 *   it, and Node would throw far from the setting).
 *
 * Relative values stay relative: callers resolve them against the working directory.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** A path setting: `None` when unset or blank, else the trimmed value. */
export const pathSetting = (name: string): Config.Config<Option.Option<string>> =>
  Config.string(name).pipe(
    Config.option,
    Config.mapOrFail((value) => {
      const trimmed = Option.map(value, (text) => text.trim())
      if (Option.isSome(trimmed) && trimmed.value.includes("\u0000")) {
        return Either.left(ConfigError.InvalidData([name], `${name}: a path cannot contain a NUL character`))
      }
      return Either.right(Option.filter(trimmed, (text) => text !== ""))
    })
  )

/** A path setting with a default for unset and blank values. */
export const pathSettingOr = (name: string, fallback: string): Config.Config<string> =>
  Config.map(pathSetting(name), Option.getOrElse(() => fallback))
