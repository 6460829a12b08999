import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import { endMarker, renderConfigReference, startMarker } from "../src/reliabilityConfig/reference.js"

const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")

describe("README", () => {
  it("the configuration reference matches the defaults (run `npm run docs` to regenerate)", () => {
    const start = readme.indexOf(startMarker)
    const end = readme.indexOf(endMarker)
    assert.isAbove(start, -1)
    assert.isAbove(end, start)
    assert.strictEqual(readme.slice(start + startMarker.length, end).trim(), renderConfigReference().trim())
  })

  it("the quick start is exactly the two commands", () => {
    const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1))
    const commands = Array.from(quickStart.matchAll(/```(?:sh|bash)?\n([^`]*)```/g), (match) => match[1]!.trim())
    assert.deepStrictEqual(commands, ["npm install && npm start", "npm test"])
  })
})
