/**
 * Types of documents, queries and updates, after MongoDB's driver types, kept small: they catch
 * misspelt fields and values of the wrong type on top-level fields, and let dotted paths
 * (`'address.city'`) through untyped.
 */
import { type JsonValue } from '../crdt/index.js'

/** A stored document: the application's shape plus its string `_id`. */
export type WithId<T> = T & { _id: string }

/** What an insert takes: the shape, with an optional `_id`. */
export type OptionalId<T> = T & { _id?: string }

/** A dotted path into nested fields, e.g. `'address.city'` or `'tags.0'`. */
export type DottedPath = `${string}.${string}`

type ElementOf<V> = V extends ReadonlyArray<infer E> ? E : V

/** Query operators on a field of type `V` (MongoDB's comparison, element, array and evaluation operators). */
export interface FieldOperators<V> {
  $eq?: V | ElementOf<V> | null
  $ne?: V | ElementOf<V> | null
  $gt?: V | ElementOf<V>
  $gte?: V | ElementOf<V>
  $lt?: V | ElementOf<V>
  $lte?: V | ElementOf<V>
  $in?: Array<V | ElementOf<V> | null | RegExp>
  $nin?: Array<V | ElementOf<V> | null | RegExp>
  $exists?: boolean
  $type?: string | number | Array<string | number>
  $regex?: RegExp | string
  $options?: string
  $not?: FieldOperators<V> | RegExp
  $elemMatch?: Record<string, unknown>
  $size?: number
  $all?: Array<ElementOf<V>>
  $mod?: [number, number]
}

/** A condition on one field: a value (or an element of an array field), a RegExp on strings, or operators. */
export type Condition<V> = V | ElementOf<V> | null | (V extends string ? RegExp : never) | FieldOperators<V>

/** Logical operators of a query. */
interface LogicalOperators<F> {
  $and?: F[]
  $or?: F[]
  $nor?: F[]
  $expr?: Record<string, unknown>
}

/** Whether `T` is an open record (like `AnyDoc`) rather than a declared shape. */
type IsOpen<T> = string extends keyof T ? true : false

/** A query on documents without a declared shape: any field, any condition. */
export type LooseFilter = LogicalOperators<LooseFilter> & { [field: string]: unknown }

/**
 * A MongoDB query on documents of shape `T`: declared fields take a value or operators of their
 * type; dotted paths and logical operators are allowed; misspelt fields are errors. Documents
 * without a declared shape (`AnyDoc`) take any query.
 */
export type Filter<T> = IsOpen<T> extends true ? LooseFilter : StrictFilter<T>

type StrictFilter<T> = {
  [K in keyof WithId<T>]?: Condition<WithId<T>[K]>
} & LogicalOperators<StrictFilter<T>> & {
  [path: DottedPath]: unknown
}

type NumericKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends number ? K : never }[keyof T]
type ArrayKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends readonly unknown[] ? K : never }[keyof T]
type Dotted<V> = { [path: DottedPath]: V }

/** The update operators KiteDB accepts. */
export type UpdateOperator = '$set' | '$unset' | '$inc' | '$mul' | '$min' | '$max' | '$rename' | '$push' | '$addToSet' | '$pull' | '$pullAll' | '$pop' | '$currentDate'

/** An update of documents without a declared shape. */
export type LooseUpdate = { [op in UpdateOperator]?: Record<string, unknown> }

/**
 * A MongoDB update on documents of shape `T`: `$set`, `$inc`, `$push`… (never a replacement
 * document); operators check the types of declared fields (`$inc` only on numbers, `$push` only on
 * arrays). Documents without a declared shape take any update.
 */
export type UpdateFilter<T> = IsOpen<T> extends true ? LooseUpdate : StrictUpdate<T>

interface StrictUpdate<T> {
  $set?: Partial<T> & Dotted<unknown>
  $unset?: { [K in keyof T]?: '' | 1 | true } & Dotted<'' | 1 | true>
  $inc?: { [K in NumericKeys<T>]?: number } & Dotted<number>
  $mul?: { [K in NumericKeys<T>]?: number } & Dotted<number>
  $min?: Partial<T> & Dotted<unknown>
  $max?: Partial<T> & Dotted<unknown>
  $rename?: { [K in keyof T]?: string } & Dotted<string>
  $push?: { [K in ArrayKeys<T>]?: ElementOf<T[K]> | PushModifiers<ElementOf<T[K]>> } & Dotted<unknown>
  $addToSet?: { [K in ArrayKeys<T>]?: ElementOf<T[K]> | { $each: Array<ElementOf<T[K]>> } } & Dotted<unknown>
  $pull?: { [K in ArrayKeys<T>]?: ElementOf<T[K]> | Condition<ElementOf<T[K]>> } & Dotted<unknown>
  $pullAll?: { [K in ArrayKeys<T>]?: Array<ElementOf<T[K]>> } & Dotted<unknown[]>
  $pop?: { [K in ArrayKeys<T>]?: 1 | -1 } & Dotted<1 | -1>
  $currentDate?: { [K in keyof T]?: true | { $type: 'date' | 'timestamp' } } & Dotted<true | { $type: 'date' | 'timestamp' }>
}

/** `$push` modifiers. */
export interface PushModifiers<E> {
  $each: E[]
  $slice?: number
  $sort?: 1 | -1 | Record<string, 1 | -1>
  $position?: number
}

/** A projection: include (1/true) or exclude (0/false) fields, dotted paths allowed. */
export type Projection<T> = { [K in keyof WithId<T>]?: 0 | 1 | boolean } & Dotted<0 | 1 | boolean>

/** Sort specification: fields (dotted paths allowed) → 1 ascending, -1 descending. */
export type Sort<T> = { [K in keyof WithId<T>]?: 1 | -1 } & Dotted<1 | -1>

/** The default document shape: any JSON-like fields. */
export type AnyDoc = Record<string, JsonValue | undefined>

/** Options of `find`: MongoDB's sort, skip and limit. */
export interface FindOptions<T = AnyDoc> {
  sort?: Sort<T>
  skip?: number
  limit?: number
}
