/**
 * Theming (DESIGN §5): Diazo rules, compiled once per theme version into
 * static segments and slots, applied to each HTML page without XSLT.
 *
 * Diagnostics channels (node:diagnostics_channel):
 * - `livery:theme:load`        `{ version: string, themes: number, rules: number, durationMs: number }` after each (re)compile
 * - `livery:theme:apply`       `{ url: string, outcome: 'themed' | 'notheme' | 'unavailable', durationMs: number }` per apply()
 * - `livery:theme:unavailable` `{ href: string, reason: string }` when a theme cannot be loaded
 * `ThemeEngine.stats()` returns counters `{ themed, notheme, unavailable, loads, version }`.
 *
 * Worker threads use the pure pieces: `engine.compiled` is plain data
 * (serialisable: the gateway sends it to its threads once per version); `transformCompiled(compiled, html, ctx)` is synchronous.
 */
export { ThemeEngine, decodeBody, pickEncoding, type ThemeEngineOptions, type TransformRunner, type ThemeResult, type ThemeStats } from './engine.ts'
export { createDefaultLoader, type ResourceLoader, type LoadedResource, type DefaultLoaderOptions } from './loader.ts'
export { compile, type Compiled, type CompiledTheme, type NodeSlot, type Seg } from './compile.ts'
export { transformCompiled, type TransformContext, type TransformOutcome, type EncodedOutcome, type TraceRecord, type RuleTrace } from './transform.ts'
export { parseRules, toUrl, type RuleSet, type Rule, type Cond, type ParseRulesOptions } from './rules.ts'
export { decodeHtml, sniffCharset } from './charset.ts'
export { runThemeCommand, type CliIo } from './cli.ts'
