// The keys' IndexedDB lives in storage.ts; this re-export serves keys.ts until it imports
// storage.ts itself (then this file goes).
export { readRecord, recordKeys, writeRecord } from './storage';
