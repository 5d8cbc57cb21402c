/** Every storage in the library passes the storage conformance suite it ships. */
import { describe, it } from 'vitest'
import { storageConformance } from '../../src/store/conformance/index.js'
import { storageKinds } from '../helpers/storages.js'

for (const [name, makeProvider] of storageKinds) {
  describe(`Storage conformance: ${name}`, () => {
    for (const c of storageConformance(makeProvider)) it(c.name, c.run)
  })
}
