import { afterEach, assert, beforeEach, describe, it, vi } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Zlib from "node:zlib"
import { decodeBody } from "../src/internal/contentEncoding.js"
import { groupDigits, preview, truncate } from "../src/internal/preview.js"
import { nestsDeeperThan } from "../src/internal/jsonDepth.js"
import { isJsonText } from "../src/internal/jsonText.js"
import { redactLoosely, redactUrl } from "../src/internal/redactUrl.js"
import { scrubSecret, secretScrubber } from "../src/internal/scrubSecret.js"
import * as Sse from "../src/internal/sse.js"
import { MAX_TIMER_MILLIS, setLongTimeout } from "../src/internal/timer.js"
import { checkUrl, httpUrl } from "../src/internal/urlSetting.js"

describe("internal/timer", () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("a wait longer than one Node timer can hold fires at its time, not after 1 ms", () => {
    const fired: Array<number> = []
    const start = Date.now()
    setLongTimeout(() => fired.push(Date.now() - start), 3 * MAX_TIMER_MILLIS + 5)
    vi.advanceTimersByTime(3 * MAX_TIMER_MILLIS + 4)
    assert.deepStrictEqual(fired, [])
    vi.advanceTimersByTime(1)
    assert.deepStrictEqual(fired, [3 * MAX_TIMER_MILLIS + 5])
  })

  it("cancelling a chained wait stops it, whichever link is running", () => {
    let fired = false
    const cancel = setLongTimeout(() => (fired = true), MAX_TIMER_MILLIS + 10)
    vi.advanceTimersByTime(MAX_TIMER_MILLIS + 5)
    cancel()
    vi.advanceTimersByTime(100)
    assert.isFalse(fired)
    assert.strictEqual(vi.getTimerCount(), 0)
  })

  it("an infinite wait arms no timer", () => {
    setLongTimeout(() => {}, Infinity)
    assert.strictEqual(vi.getTimerCount(), 0)
  })
})

describe("internal/redactUrl", () => {
  it("replaces a URL's user-info, user name included, and keeps the rest", () => {
    assert.strictEqual(redactUrl("http://user:s3cret@127.0.0.1:4000/events"), "http://<redacted>@127.0.0.1:4000/events")
    assert.strictEqual(redactUrl(new URL("https://token@example.test/v1?x=1")), "https://<redacted>@example.test/v1?x=1")
    assert.strictEqual(redactUrl("postgres://big3:pa%40ss@db:5432/big3"), "postgres://<redacted>@db:5432/big3")
  })

  it("scrubs every URL inside a message, up to the authority's last @", () => {
    assert.strictEqual(
      redactUrl("POST https://a:b@c@host/x failed; retried wss://k@h/v1 twice"),
      "POST https://<redacted>@host/x failed; retried wss://<redacted>@h/v1 twice"
    )
  })

  it("leaves an @ in a path, a query or plain text alone", () => {
    for (const text of ["http://host/a@b", "http://host:1/?q=a@b", "mail a@b", "http://host/events"]) {
      assert.strictEqual(redactUrl(text), text)
    }
  })

  it("redactLoosely hides everything before the last @ of text that is not a URL", () => {
    assert.strictEqual(redactLoosely("http://user:pa/ss@host"), "http://<redacted>@host")
    assert.strictEqual(redactLoosely("user:pw@host:4000"), "<redacted>@host:4000")
    assert.strictEqual(redactLoosely("http://host/events"), "http://host/events")
  })

  it("checkUrl refuses credentials and shows the value redacted", () => {
    const rules = httpUrl("http://localhost:4000/events")
    assert.deepStrictEqual(
      checkUrl("OBSERVABILITY_SERVER_URL", " http://user:s3cret@127.0.0.1:9/events ", rules),
      Either.left(
        `OBSERVABILITY_SERVER_URL="http://<redacted>@127.0.0.1:9/events" carries credentials (user:password@), which ` +
          `big3 does not send and would show in errors and logs: remove them and give the upstream's key in its own setting`
      )
    )
    assert.deepStrictEqual(
      checkUrl("OBSERVABILITY_SERVER_URL", "ftp://user:s3cret@host/x", rules),
      Either.left(
        `OBSERVABILITY_SERVER_URL="ftp://<redacted>@host/x" is not valid: expected an http(s) URL such as http://localhost:4000/events`
      )
    )
    const ok = checkUrl("OBSERVABILITY_SERVER_URL", "http://127.0.0.1:9/events", rules)
    assert.strictEqual(Either.isRight(ok) ? ok.right.href : undefined, "http://127.0.0.1:9/events")
  })
})

describe("internal/scrubSecret", () => {
  it("takes a secret out as it is, percent-encoded and JSON-escaped, everywhere it occurs", () => {
    const secret = `k3y"with\\odd/+= chars`
    const echoed = [
      `raw ${secret} raw ${secret}`,
      `query ?key=${encodeURIComponent(secret)}`,
      `json ${JSON.stringify({ key: secret })}`
    ].join("; ")
    const scrubbed = scrubSecret(echoed, secret)
    assert.strictEqual(
      scrubbed,
      `raw <redacted> raw <redacted>; query ?key=<redacted>; json {"key":"<redacted>"}`
    )
    assert.strictEqual(secretScrubber(secret)(echoed), scrubbed)
    // A plain key has one form; no key scrubs nothing.
    assert.strictEqual(scrubSecret("a AIza123 b", "AIza123"), "a <redacted> b")
    assert.strictEqual(scrubSecret("a AIza123 b", undefined), "a AIza123 b")
    assert.strictEqual(scrubSecret("a AIza123 b", ""), "a AIza123 b")
  })
})

describe("internal/preview", () => {
  it("shows a long string as its start and its length, and a nested value by its size, without walking it", () => {
    assert.strictEqual(preview("x".repeat(100), 5), `"xxxxx"… (100 characters)`)
    assert.strictEqual(preview("short"), `"short"`)
    let deep: Array<unknown> = []
    for (let i = 0; i < 200_000; i++) deep = [deep]
    assert.strictEqual(preview(deep), "an array of 1 item")
    assert.strictEqual(preview({ a: 1, b: 2 }), "an object with 2 keys")
    assert.strictEqual(truncate("abcdef", 3), "abc… (6 characters)")
    assert.strictEqual(preview("y".repeat(12_345), 1), `"y"… (12,345 characters)`)
  })

  it("groups digits as toLocaleString(\"en-US\") does, for whole numbers", () => {
    for (const n of [0, 7, 999, 1_000, 12_345, 1_048_576, -1_234_567, Number.MAX_SAFE_INTEGER]) {
      assert.strictEqual(groupDigits(n), n.toLocaleString("en-US"), String(n))
    }
    assert.strictEqual(groupDigits(1.5), "1.5")
  })
})

describe("internal/jsonDepth", () => {
  const arrays = (levels: number): unknown => JSON.parse(`${"[".repeat(levels)}${"]".repeat(levels)}`)

  it("counts objects and arrays as levels, scalars as none", () => {
    assert.isFalse(nestsDeeperThan(42, 0))
    assert.isTrue(nestsDeeperThan({}, 0))
    assert.isFalse(nestsDeeperThan({ a: [1, { b: "x" }] }, 3))
    assert.isTrue(nestsDeeperThan({ a: [1, { b: {} }] }, 3))
  })

  it("walks a million levels without overflowing the stack", () => {
    assert.isFalse(nestsDeeperThan(arrays(1_000_000), 1_000_000))
    assert.isTrue(nestsDeeperThan(arrays(1_000_000), 1_000))
  })
})

describe("internal/jsonText", () => {
  const parses = (text: string): boolean => {
    try {
      JSON.parse(text)
      return true
    } catch {
      return false
    }
  }
  const agrees = (text: string) => assert.strictEqual(isJsonText(text), parses(text), JSON.stringify(text))

  // A seeded generator (mulberry32): the same corpus every run.
  const random = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const next = random(11)
  const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(next() * items.length)]!
  const strings = ["", "a", "é", "\u0000", "line\nbreak", "\"quoted\"", "tab\t", "😀", "\ud800", "back\\slash", "/"]
  const numbers = [0, -0, 1, -1, 0.5, -12.25, 1e21, 1.5e-7, 123456789, Number.MAX_SAFE_INTEGER]
  const value = (depth: number): unknown => {
    const kind = depth > 3 ? Math.floor(next() * 4) : Math.floor(next() * 6)
    if (kind === 0) return pick(numbers)
    if (kind === 1) return pick(strings) + pick(strings)
    if (kind === 2) return pick([true, false, null])
    if (kind === 3) return pick(strings)
    const size = Math.floor(next() * 4)
    if (kind === 4) return Array.from({ length: size }, () => value(depth + 1))
    return Object.fromEntries(Array.from({ length: size }, (_, i) => [`${pick(strings)}${i}`, value(depth + 1)]))
  }
  const corpus = Array.from({ length: 300 }, (_, i) => JSON.stringify(value(0), null, i % 3 === 0 ? 2 : undefined))

  it("accepts every whole JSON text and refuses every cut one, as JSON.parse does", () => {
    for (const text of corpus) {
      assert.isTrue(isJsonText(text), text)
      assert.isTrue(isJsonText(` \t\r\n${text}\n `), text)
      for (let end = 0; end < text.length; end++) agrees(text.slice(0, end))
    }
  })

  it("agrees with JSON.parse on texts with one character changed, added or taken out", () => {
    const alphabet = [..."{}[]:,\"\\/-+.eE0123456789abfnrtuxAF \t\n\r\u00a0\ufeff\u0001", "tru", "nul"]
    for (const text of corpus) {
      for (let n = 0; n < 20; n++) {
        const at = Math.floor(next() * (text.length + 1))
        const inserted = pick(alphabet)
        agrees(text.slice(0, at) + inserted + text.slice(at))
        agrees(text.slice(0, at) + inserted + text.slice(at + 1))
        agrees(text.slice(0, at) + text.slice(at + 1))
      }
    }
  })

  it("agrees with JSON.parse on the grammar's corners", () => {
    const corners = [
      "", " ", "0", "-0", "01", "-", "1.", ".5", "1e", "1e+", "1E-2", "+1", "1.5e3", "-01", "0x10", "Infinity", "NaN",
      "true", "tru", "truex", "null", "nul", "false", "fals", "\"\"", "\"", "\"\\\"", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"",
      "\"\t\"", "\"\u007f\"", "\"\\u00e9\\n\\/\\b\\f\\r\\t\\\\\\\"\"", "[]", "[", "]", "[1,]", "[,1]", "[1 2]", "{}", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}",
      "{\"a\":1 \"b\":2}", "{\"a\" : [ {} , [ ] ] }", "1 2", "\u00a01", "\ufeff{}", "[1]]", "{}}", "[[[[]]]]", "{\"\":\"\"}"
    ]
    for (const text of corners) agrees(text)
  })

  it("takes any depth JSON.parse takes, without overflowing the stack", () => {
    assert.isTrue(isJsonText(`${"[".repeat(200_000)}${"]".repeat(200_000)}`))
    assert.isFalse(isJsonText(`${"[".repeat(200_000)}${"]".repeat(199_999)}`))
    assert.isTrue(isJsonText(`${"{\"a\":".repeat(100_000)}1${"}".repeat(100_000)}`))
  })
})

describe("internal/sse", () => {
  /** The data of each event of `pieces` (fed as separate chunks), or the error's tag. */
  const dataOf = (...pieces: ReadonlyArray<string>) =>
    Sse.events(Stream.fromIterable(pieces)).pipe(
      Stream.runCollect,
      Effect.map((events) => Chunk.toReadonlyArray(events).map((event) => event.data)),
      Effect.either
    )

  it.effect("complete events with LF, CRLF and CR endings, comments, and boundaries split across chunks", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* dataOf("data: a\n\n", ": ping\r\n\r\n", "data: b\r", "\n\r", "\ndata: c\r\r", "\n"), Either.right(["a", "b", "c"]))
      assert.deepStrictEqual(yield* dataOf("data: a\n", "\n", ": keep-alive\n\n"), Either.right(["a"]))
      assert.deepStrictEqual(yield* dataOf(), Either.right([]))
    }))

  it.effect("a text that ends inside an event fails with SseTruncated after the complete events", () =>
    Effect.gen(function*() {
      const cut = yield* dataOf("data: a\n\n", "data: {\"par")
      assert.isTrue(Either.isLeft(cut) && cut.left._tag === "SseTruncated" && cut.left.pending === 11, String(cut))
      // One line end is not an event's end; a CR before a missing LF is not a blank line either.
      for (const ending of ["data: b\n", "data: b\r\n", ": ping"]) {
        const result = yield* dataOf("data: a\n\n", ending)
        assert.isTrue(Either.isLeft(result) && result.left._tag === "SseTruncated", `${JSON.stringify(ending)}: ${String(result)}`)
      }
    }))
})

describe("internal/contentEncoding", () => {
  const text = <E>(body: Stream.Stream<Uint8Array, E>) =>
    Effect.map(Stream.runCollect(Stream.decodeText(body)), (chunks) => Chunk.join(chunks, ""))
  const bytes = (buffer: Buffer) => Stream.make(new Uint8Array(buffer))

  it.effect("codings listed in the order applied are undone last first; identity and case are ignored", () =>
    Effect.gen(function*() {
      const body = Zlib.brotliCompressSync(Zlib.gzipSync("twice"))
      assert.strictEqual(yield* text(decodeBody(bytes(body), "identity, GZIP , br")), "twice")
      assert.strictEqual(yield* text(decodeBody(bytes(Buffer.from("plain")), undefined)), "plain")
    }))

  it.effect("an unknown coding is refused by name, an inherited property name included", () =>
    Effect.gen(function*() {
      for (const encoding of ["zstd", "gzip, constructor"]) {
        const error = yield* Effect.flip(Stream.runDrain(decodeBody(bytes(Buffer.from("x")), encoding)))
        assert.deepStrictEqual(error._tag === "UnsupportedEncoding" ? error.encoding : error._tag, encoding)
      }
    }))
})
