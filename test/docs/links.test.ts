/**
 * The docs' cross-references hold: every `docs/<file>.md` the README, docs/ and the code name
 * exists, every section named after one (`docs/design.md, "Replication"`) is a heading of it, and
 * every relative Markdown link points to a file.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..')

function files (dir: string, ext: RegExp): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter(e => e.isFile() && ext.test(e.name))
    .map(e => relative(root, join(e.parentPath, e.name)))
}

const markdown = ['README.md', ...files('docs', /\.md$/)]
const sources = ['src', 'test', 'bench', 'demo', 'scripts', 'bin'].flatMap(d => files(d, /\.(ts|tsx|js)$/))

/** The text with line breaks, and the comment markers that start lines, folded to spaces. */
function folded (file: string): string {
  return readFileSync(join(root, file), 'utf8').replace(/\s*\n\s*(\*(?!\*)|\/\/)?\s*/g, ' ')
}

/** The headings of a Markdown file, without their `#`s. */
function headings (file: string): string[] {
  return readFileSync(join(root, file), 'utf8').split('\n').filter(l => /^#{1,6} /.test(l)).map(l => l.replace(/^#+ /, ''))
}

/** Every `docs/<name>.md` mention in `file`, with the sections named right after it. */
function mentions (file: string): Array<{ doc: string, sections: string[] }> {
  const out: Array<{ doc: string, sections: string[] }> = []
  for (const m of folded(file).matchAll(/\bdocs\/([\w-]+\.md)(,? ?\(?((?:"[^"]+"(?:, )?)+))?/g)) {
    const sections = [...(m[3] ?? '').matchAll(/"([^"]+)"/g)].map(s => s[1])
    out.push({ doc: `docs/${m[1]}`, sections })
  }
  return out
}

describe('docs cross-references', () => {
  it('every docs/ file and section named in the README, docs/ and the code exists', () => {
    const broken: string[] = []
    for (const file of [...markdown, ...sources]) {
      for (const { doc, sections } of mentions(file)) {
        if (!existsSync(join(root, doc))) { broken.push(`${file}: ${doc} does not exist`); continue }
        const heads = headings(doc)
        for (const s of sections) {
          if (!heads.some(h => h === s || h.startsWith(`${s} `))) broken.push(`${file}: ${doc} has no section "${s}"`)
        }
      }
    }
    expect(broken).toEqual([])
  })

  it('every relative Markdown link points to a file', () => {
    const broken: string[] = []
    for (const file of markdown) {
      for (const m of readFileSync(join(root, file), 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1].split('#')[0]
        if (target === '' || /^[a-z]+:/.test(target)) continue
        if (!existsSync(join(root, dirname(file), target))) broken.push(`${file}: ${target}`)
      }
    }
    expect(broken).toEqual([])
  })
})
