/**
 * Whether a text is one whole JSON value, as `JSON.parse` would accept it (RFC 8259), without
 * building the value: the events route's acknowledgement is checked for every delivered event,
 * and parsing it only to throw the result away made garbage at the rate of the delivery.
 *
 * @internal
 */

const QUOTE = 0x22
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

const isDigit = (c: number): boolean => c >= ZERO && c <= NINE
/** JSON's whitespace: space, tab, line feed, carriage return (not every Unicode space). */
const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d

const skipSpace = (text: string, i: number): number => {
  while (isSpace(text.charCodeAt(i))) i++
  return i
}

// Sticky expressions: V8 compiles them to machine code, which scans a string or a number several
// times faster than a loop over `charCodeAt`.
const STRING = /"(?:[^"\\\u0000-\u001f]+|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y

/** The index after the token `pattern` matches at `i`, or -1. */
const token = (pattern: RegExp, text: string, i: number): number => {
  pattern.lastIndex = i
  return pattern.test(text) ? pattern.lastIndex : -1
}

const string = (text: string, i: number): number => token(STRING, text, i)
const number = (text: string, i: number): number => token(NUMBER, text, i)

/** The index after `"key" :` at `i`, or -1. */
const key = (text: string, i: number): number => {
  if (text.charCodeAt(i) !== QUOTE) return -1
  const end = string(text, i)
  if (end === -1) return -1
  const colon = skipSpace(text, end)
  return text.charCodeAt(colon) === COLON ? colon + 1 : -1
}

const OBJECT = 1
const ARRAY = 0

/** Open containers, innermost last: one array for every check (a check never waits), emptied after. */
const open: Array<number> = []

/** True when `JSON.parse(text)` would succeed. Iterative: any depth `JSON.parse` takes, this takes. */
export const isJsonText = (text: string): boolean => {
  const whole = scan(text)
  open.length = 0
  return whole
}

const scan = (text: string): boolean => {
  let i = 0
  for (;;) {
    // A value starts here.
    i = skipSpace(text, i)
    const c = text.charCodeAt(i)
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      const object = c === OPEN_BRACE
      i = skipSpace(text, i + 1)
      if (text.charCodeAt(i) === (object ? CLOSE_BRACE : CLOSE_BRACKET)) i++
      else {
        open.push(object ? OBJECT : ARRAY)
        if (object && (i = key(text, i)) === -1) return false
        continue
      }
    } else if (c === QUOTE) i = string(text, i)
    else if (c === MINUS || isDigit(c)) i = number(text, i)
    else if (text.startsWith("true", i) || text.startsWith("null", i)) i += 4
    else if (text.startsWith("false", i)) i += 5
    else return false
    if (i === -1) return false
    // After a value: close what ends here, then a comma starts the next value, or the text ends.
    for (;;) {
      i = skipSpace(text, i)
      if (open.length === 0) return i === text.length
      const inObject = open[open.length - 1] === OBJECT
      const next = text.charCodeAt(i)
      if (next === (inObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
        open.pop()
        i++
        continue
      }
      if (next !== COMMA) return false
      i = skipSpace(text, i + 1)
      if (inObject && (i = key(text, i)) === -1) return false
      break
    }
  }
}
