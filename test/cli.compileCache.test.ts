/** Where `big3 events` keeps V8's code cache (src/cli/compileCache.ts); the cache itself is tested on the bundle (bin.bundle.test.ts). */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cacheDirectory } from "../src/cli/compileCache.js"

/** Runs `body` with HOME set to `home` (os.homedir() reads it). */
const withHome = <A>(home: string, body: () => A): A => {
  const saved = process.env.HOME
  process.env.HOME = home
  try {
    return body()
  } finally {
    if (saved === undefined) delete process.env.HOME
    else process.env.HOME = saved
  }
}

describe("the code cache's directory", () => {
  it("BIG3_COMPILE_CACHE first (made absolute), then XDG_CACHE_HOME/big3, then ~/.cache/big3", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "big3-home-"))
    try {
      withHome(home, () => {
        assert.strictEqual(cacheDirectory({ BIG3_COMPILE_CACHE: "/var/cache/b3", XDG_CACHE_HOME: "/x" }), "/var/cache/b3")
        assert.strictEqual(cacheDirectory({ BIG3_COMPILE_CACHE: "rel" }), path.resolve("rel"))
        assert.strictEqual(cacheDirectory({ XDG_CACHE_HOME: "/x" }), "/x/big3")
        // Blank is unset; a relative XDG_CACHE_HOME is ignored, as the XDG spec says.
        assert.strictEqual(cacheDirectory({ BIG3_COMPILE_CACHE: " ", XDG_CACHE_HOME: "" }), path.join(home, ".cache", "big3"))
        assert.strictEqual(cacheDirectory({ XDG_CACHE_HOME: "relative" }), path.join(home, ".cache", "big3"))
      })
    } finally {
      fs.rmSync(home, { recursive: true, force: true })
    }
  })

  it("is off with BIG3_DISABLE_COMPILE_CACHE, and without a home directory that exists", () => {
    assert.isUndefined(cacheDirectory({ BIG3_DISABLE_COMPILE_CACHE: "1", BIG3_COMPILE_CACHE: "/var/cache/b3" }))
    assert.strictEqual(cacheDirectory({ BIG3_DISABLE_COMPILE_CACHE: "", BIG3_COMPILE_CACHE: "/var/cache/b3" }), "/var/cache/b3")
    const missing = path.join(os.tmpdir(), `big3-no-home-${process.pid}`)
    withHome(missing, () => assert.isUndefined(cacheDirectory({})))
    assert.isFalse(fs.existsSync(missing))
  })
})
