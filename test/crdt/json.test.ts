import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ValidationError } from '../../src/errors.js'
import { assertJsonValue, copyJsonValue } from '../../src/crdt/index.js'

/** Every object and array reachable from `v`. */
function containers (v: unknown, out: object[] = []): object[] {
  if (v !== null && typeof v === 'object') {
    out.push(v)
    for (const x of Object.values(v)) containers(x, out)
  }
  return out
}

const key = fc.string({ minLength: 1, maxLength: 6 }).filter(k => !(k in Object.prototype) && k !== '__proto__')
const json = fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string(), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 })
})).value

describe('copying a JSON value', () => {
  it('the copy equals the value and shares none of its objects or arrays', () => {
    fc.assert(fc.property(json, v => {
      const copy = copyJsonValue(v)
      expect(copy).toEqual(v) // (a null-prototype object becomes an ordinary one)
      const originals = new Set(containers(v))
      expect(containers(copy).some(c => originals.has(c))).toBe(false)
    }))
  })

  it('refuses what assertJsonValue refuses, with the same message', () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const bad: unknown[] = [undefined, NaN, Infinity, () => 1, new Date(0), new Map(), { toString: 1 }, [1, [2, { x: 1n }]], cyclic, Symbol('s')]
    for (const v of bad) {
      let expected: unknown
      try { assertJsonValue(v, 'f') } catch (err) { expected = err }
      expect(expected).toBeInstanceOf(ValidationError)
      expect(() => copyJsonValue(v, 'f')).toThrow((expected as Error).message)
    }
  })

  it('the same object twice (not a cycle) is copied twice', () => {
    const shared = { n: 1 }
    const copy = copyJsonValue({ a: shared, b: shared }) as Record<string, Record<string, number>>
    expect(copy).toEqual({ a: { n: 1 }, b: { n: 1 } })
    expect(copy.a).not.toBe(copy.b)
  })
})
