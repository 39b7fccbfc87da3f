#!/usr/bin/env -S node --expose-gc --max-semi-space-size=2
// The flags let Livery return dead socket buffers promptly and keep V8's young generation small: see src/node-flags.ts.
// Livery runs its TypeScript sources directly with Node 24's type stripping.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`livery: Node ${process.versions.node} is too old; Livery needs Node 24 (run it through npm, which uses the project's pinned Node, e.g. npm start)\n`)
  process.exit(2)
}
const { main } = await import('../src/cli.ts')
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env })
process.exitCode = code
