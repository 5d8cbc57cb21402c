import { MemoryStorageProvider } from '../../src/store/index.js'
import { storageConformance } from './conformance.js'

storageConformance('memory', () => new MemoryStorageProvider())
