/**
 * JSON Schemas for collections (`initCollection(name, {schema})`), checked with Ajv (JSON Schema
 * draft 2020-12). A schema is a local declaration, like an index: it is not replicated, and it
 * checks this replica's writes only. A CRDT cannot refuse a peer's valid block, so documents that
 * other replicas wrote (without the schema, or merged from concurrent writes each valid on its
 * own) may not fit; `Collection.invalid()` lists them. Ajv is loaded only when a schema is declared.
 */
import { SchemaError, type SchemaProblem, ValidationError } from '../errors.js'
import { type Doc } from '../crdt/index.js'

/** A JSON Schema (draft 2020-12), as a plain object. */
export type JsonSchema = Record<string, unknown>

/** A compiled schema: the problems of a document, `[]` when it fits. */
export type SchemaCheck = (doc: Doc) => SchemaProblem[]

interface AjvLike {
  compile: (schema: JsonSchema) => ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string, message?: string, params?: Record<string, unknown> }> | null }
}

let ajv: Promise<AjvLike> | undefined

/**
 * Compile `schema` with Ajv (loading it on first use). Throws `ValidationError` naming what is
 * wrong when the schema itself is not a valid JSON Schema.
 */
export async function compileSchema (schema: unknown): Promise<SchemaCheck> {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new ValidationError('a collection schema must be a JSON Schema object')
  ajv ??= import('ajv/dist/2020.js').then(m => {
    const Ajv = (m as unknown as { default: new (options: Record<string, unknown>) => AjvLike }).default
    return new Ajv({ allErrors: true, strict: false })
  })
  let validate: ReturnType<AjvLike['compile']>
  try {
    validate = (await ajv).compile(schema as JsonSchema)
  } catch (err) {
    throw new ValidationError(`invalid collection schema: ${(err as Error).message}`, { cause: err })
  }
  return doc => {
    if (validate(doc)) return []
    return (validate.errors ?? []).map(e => ({
      path: e.instancePath + (typeof e.params?.missingProperty === 'string' ? `/${e.params.missingProperty}` : ''),
      message: e.message ?? 'does not fit the schema'
    }))
  }
}

/** Throw `ValidationError` naming the first problem when `doc` does not fit `check`. */
export function assertFits (check: SchemaCheck | undefined, doc: Doc, collection: string): void {
  if (check === undefined) return
  const problems = check(doc)
  if (problems.length === 0) return
  const first = problems[0]
  throw new SchemaError(collection, doc._id, problems, `document "${doc._id}" does not fit the schema of "${collection}": ${first.path === '' ? 'the document' : first.path} ${first.message}`)
}
