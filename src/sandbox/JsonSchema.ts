/**
 * Plausible values for a declared schema, so that a tool call the sandbox makes carries what the
 * schema requires (real models fill required arguments; an empty `{}` is a path no real answer
 * takes). Reads JSON Schema (Anthropic `input_schema`, Gemini `parametersJsonSchema`) and
 * Gemini's OpenAPI subset (`parameters`, types in upper case).
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const maxDepth = 8

const typeOf = (schema: { readonly [key: string]: unknown }): string | undefined => {
  const type = schema["type"]
  if (typeof type === "string") return type.toLowerCase()
  // JSON Schema allows a list such as ["string", "null"]: take the first that is not null.
  if (Array.isArray(type)) {
    const first = type.find((t): t is string => typeof t === "string" && t.toLowerCase() !== "null")
    return first?.toLowerCase()
  }
  if (Predicate.isRecord(schema["properties"])) return "object"
  if (schema["items"] !== undefined) return "array"
  return undefined
}

const toJson = (value: unknown): Json | undefined => {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined
  try {
    const text = JSON.stringify(value)
    if (text === undefined) return undefined
    const parsed: Json = JSON.parse(text)
    return parsed
  } catch {
    return undefined
  }
}

/**
 * A value satisfying `schema` as far as a sandbox needs: `const`, the first `enum` value, a
 * `default`, the first `anyOf` / `oneOf` branch, every required property of an object, and
 * `minItems` elements of an array. Strings are "sandbox", numbers their `minimum` or 1.
 */
export const sampleValue = (schema: unknown, depth = 0): Json => {
  if (!Predicate.isRecord(schema) || depth > maxDepth) return "sandbox"
  if ("const" in schema) return toJson(schema["const"]) ?? "sandbox"
  const enumValues = schema["enum"]
  if (Array.isArray(enumValues) && enumValues.length > 0) return toJson(enumValues[0]) ?? "sandbox"
  if ("default" in schema) {
    const fallback = toJson(schema["default"])
    if (fallback !== undefined) return fallback
  }
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    const branches = schema[key]
    if (Array.isArray(branches) && branches.length > 0) return sampleValue(branches[0], depth + 1)
  }
  switch (typeOf(schema)) {
    case "object":
      return sampleObject(schema, depth)
    case "array": {
      const minItems = typeof schema["minItems"] === "number" ? Math.min(3, Math.max(0, schema["minItems"])) : 0
      return Array.from({ length: minItems }, () => sampleValue(schema["items"], depth + 1))
    }
    case "integer":
    case "number": {
      const minimum = schema["minimum"]
      return typeof minimum === "number" && minimum > 1 ? Math.ceil(minimum) : 1
    }
    case "boolean":
      return true
    case "null":
      return null
    default:
      return schema["format"] === "uri" ? "https://example.com/" : "sandbox"
  }
}

/** The required properties of an object schema, each with a sample value. */
export const sampleObject = (schema: unknown, depth = 0): { readonly [key: string]: Json } => {
  if (!Predicate.isRecord(schema) || depth > maxDepth) return {}
  const properties = Predicate.isRecord(schema["properties"]) ? schema["properties"] : {}
  const required = Array.isArray(schema["required"]) ? schema["required"] : []
  const out: { [key: string]: Json } = {}
  for (const name of required) {
    if (typeof name === "string") out[name] = sampleValue(properties[name], depth + 1)
  }
  return out
}
