// The ES module entry's types: the same declarations as index.d.ts (index.mjs re-exports
// index.js), and the module object as the default export.
export * from './index.js';
import * as client from './index.js';
export default client;
