/**
 * The benchmark's documents: deterministic (a seeded PRNG per index), about 300–500 bytes of JSON
 * each, identical for every system. Document `i` is always the same, so any range can be made on
 * demand, in the page or in the Node driver.
 */

/** One benchmark document; `email` is unique per document. */
export interface BenchDoc extends Record<string, unknown> {
  _id: string
  name: string
  email: string
  age: number
  active: boolean
  score: number
  createdAt: number
  nested: { city: string, zip: string, street: string, geo: { lat: number, lng: number } }
  tags: string[]
  bio: string
  status?: string
}

/** Cities of `nested.city` (the unindexed-scan measure looks one up). */
export const CITIES = [
  'Amsterdam', 'Athens', 'Barcelona', 'Berlin', 'Bern', 'Bratislava', 'Brussels', 'Bucharest', 'Budapest', 'Copenhagen',
  'Dublin', 'Edinburgh', 'Florence', 'Frankfurt', 'Geneva', 'Hamburg', 'Helsinki', 'Istanbul', 'Kyiv', 'Krakow',
  'Lisbon', 'Ljubljana', 'London', 'Luxembourg', 'Lyon', 'Madrid', 'Marseille', 'Milan', 'Minsk', 'Monaco',
  'Munich', 'Naples', 'Nicosia', 'Oslo', 'Paris', 'Porto', 'Prague', 'Reykjavik', 'Riga', 'Rome',
  'Rotterdam', 'Seville', 'Sofia', 'Stockholm', 'Tallinn', 'Valencia', 'Valletta', 'Vienna', 'Vilnius', 'Zurich'
]
const FIRST = ['ada', 'alan', 'barbara', 'claude', 'dennis', 'edsger', 'frances', 'grace', 'hedy', 'john', 'ken', 'leslie', 'linus', 'margaret', 'niklaus', 'radia', 'shafi', 'tim', 'tony', 'whitfield']
const LAST = ['lovelace', 'turing', 'liskov', 'shannon', 'ritchie', 'dijkstra', 'allen', 'hopper', 'lamarr', 'mccarthy', 'thompson', 'lamport', 'torvalds', 'hamilton', 'wirth', 'perlman', 'goldwasser', 'berners-lee', 'hoare', 'diffie']
const TAGS = ['alpha', 'beta', 'gamma', 'delta', 'admin', 'editor', 'viewer', 'beta-tester', 'premium', 'trial', 'mobile', 'desktop', 'eu', 'us', 'apac', 'newsletter']
const WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit', 'sed', 'do', 'eiusmod', 'tempor', 'incididunt', 'ut', 'labore', 'et', 'dolore', 'magna', 'aliqua', 'enim', 'minim', 'veniam', 'quis', 'nostrud']
const STREETS = ['Main', 'Oak', 'Pine', 'Maple', 'Cedar', 'Elm', 'Lake', 'Hill', 'Station', 'Church']

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Document number `i` (0-based) of the benchmark's sequence. */
export function makeDoc (i: number): BenchDoc {
  const rnd = mulberry32(Math.imul(i + 1, 0x9E3779B1) ^ 0x5EED)
  const int = (n: number): number => Math.floor(rnd() * n)
  const pick = <T>(xs: T[]): T => xs[int(xs.length)]
  const first = pick(FIRST)
  const last = pick(LAST)
  const tags = Array.from({ length: 2 + int(4) }, () => pick(TAGS))
  const bio = Array.from({ length: 12 + int(10) }, () => pick(WORDS)).join(' ')
  return {
    _id: `doc-${String(i).padStart(7, '0')}`,
    name: `${first} ${last}`,
    email: `${first}.${last}.${i}@example.com`,
    age: 18 + int(73),
    active: rnd() < 0.5,
    score: Math.round(rnd() * 100_000) / 100,
    createdAt: 1_700_000_000_000 + i * 60_000,
    nested: {
      city: pick(CITIES),
      zip: String(10_000 + int(90_000)),
      street: `${1 + int(999)} ${pick(STREETS)} Street`,
      geo: { lat: Math.round((rnd() * 180 - 90) * 1e4) / 1e4, lng: Math.round((rnd() * 360 - 180) * 1e4) / 1e4 }
    },
    tags,
    bio
  }
}

/** Documents `start` … `start + count - 1`. */
export function makeDocs (start: number, count: number): BenchDoc[] {
  return Array.from({ length: count }, (_, k) => makeDoc(start + k))
}
