/** Which program `main.ts` starts: the events bundle, or the whole program (src/cli/route.ts). */
import { assert, describe, it } from "@effect/vitest"
import { eventsBundleRuns, eventsSubcommands, wholeProgramSettings } from "../src/cli/route.js"

const argv = (...args: Array<string>) => ["node", "big3", ...args]

describe("the events bundle's route", () => {
  it("takes every events subcommand when none of the left-out settings is given", () => {
    for (const subcommand of eventsSubcommands) assert.isTrue(eventsBundleRuns(argv("events", subcommand), {}), subcommand)
    assert.isTrue(eventsBundleRuns(argv("events", "send", "--type", "X"), { BIG3_STATE_DIR: "/tmp/x", OTEL_SERVICE_NAME: "a" }))
  })

  it("leaves other commands, other words and a bare `events` to the whole program", () => {
    for (const args of [["demo"], ["events"], ["events", "--help"], ["events", "nonsense"], ["gemini", "events"], []]) {
      assert.isFalse(eventsBundleRuns(argv(...args), {}), args.join(" "))
    }
  })

  it("sends a command to the whole program when a setting loads a module the bundle leaves out", () => {
    for (const name of wholeProgramSettings) {
      assert.isFalse(eventsBundleRuns(argv("events", "send", "--type", "X"), { [name]: "x" }), name)
      // Given at all: even blank.
      assert.isFalse(eventsBundleRuns(argv("events", "flush"), { [name]: "" }), `${name}=""`)
    }
    assert.isFalse(eventsBundleRuns(argv("events", "stats", "--metrics"), {}))
    assert.isFalse(eventsBundleRuns(argv("events", "flush", "--metrics=true"), {}))
  })
})
