#!/usr/bin/env -S node --expose-gc --max-semi-space-size=2
// The flags let Livery return dead socket buffers promptly and keep V8's young generation small: see src/node-flags.ts.
// Livery runs its TypeScript sources directly with Node 24's type stripping.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`livery: Node ${process.versions.node} is too old; Livery needs Node 24 (run it through npm, which uses the project's pinned Node, e.g. npm start)\n`)
  process.exit(2)
}
// Node strips the types with a WebAssembly compiler that, once loaded, holds 25-30 MB of RSS for the life of the
// process (and of each transform thread). Node's compile cache keeps the compiled modules on disk, so every start after
// the first, and every cluster worker and thread (they inherit NODE_COMPILE_CACHE), loads them without the compiler.
// NODE_COMPILE_CACHE picks the directory (default: the OS temp directory), NODE_DISABLE_COMPILE_CACHE=1 turns it off.
// Coverage runs go without it: Node's documentation warns that the cache makes V8's coverage less precise.
if (process.env.NODE_V8_COVERAGE === undefined) {
  const [{ enableCompileCache }, { tmpdir }, { join }] = await Promise.all([import('node:module'), import('node:os'), import('node:path')])
  // Node's own default directory, named here because the `directory` it reports has the Node version appended, and a
  // child given that would nest another one inside it.
  const directory = process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache')
  if (enableCompileCache(directory).directory !== undefined) process.env.NODE_COMPILE_CACHE = directory
}
const { main } = await import('../src/cli.ts')
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env })
process.exitCode = code
