/** `npm run docs`: regenerates the configuration reference in README.md from the defaults. */
import * as fs from "node:fs"
import * as path from "node:path"
import { replaceConfigReference } from "../src/reliabilityConfig/reference.js"

const file = path.resolve(import.meta.dirname, "../README.md")
fs.writeFileSync(file, replaceConfigReference(fs.readFileSync(file, "utf8")))
console.log("README.md configuration reference regenerated")
