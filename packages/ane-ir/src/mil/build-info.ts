/**
 * The program attribute line `[buildInfo = dict<string, string>(...)]` that the ANE's MIL parser
 * requires after `program(1.3)` (rule `emit-program-skeleton`), as maderix/ANE and the conformance
 * corpus write it (reference/maderix-ane.md §2). Users never have to write it: devices add the
 * default to text that lacks it (`withDefaultBuildInfo`).
 */

/** buildInfo of program(1.3) as maderix/ANE and the corpus write it. */
export const DEFAULT_BUILD_INFO_ENTRIES: readonly (readonly [string, string])[] = [
  ['coremlc-component-MIL', '3510.2.1'],
  ['coremlc-version', '3505.4.1'],
  ['coremltools-component-milinternal', ''],
  ['coremltools-version', '9.0'],
];

/** buildInfo of the program(1.0) fallback dialect (maderix/ANE PR #6): the compiler version only. */
export const IOS16_BUILD_INFO_ENTRIES: readonly (readonly [string, string])[] = [
  ['coremlc-version', '3505.4.1'],
];

/** The buildInfo line for `program(<version>)`: the 1.0 dialect's for '1.0', the 1.3 one otherwise. */
export function defaultBuildInfoLine(version = '1.3'): string {
  const entries = version === '1.0' ? IOS16_BUILD_INFO_ENTRIES : DEFAULT_BUILD_INFO_ENTRIES;
  const dict = entries.map(([key, value]) => `{${JSON.stringify(key)}, ${JSON.stringify(value)}}`).join(', ');
  return `[buildInfo = dict<string, string>({${dict}})]`;
}

/** The standard line after `program(1.3)`. */
export const DEFAULT_BUILD_INFO_LINE = defaultBuildInfoLine('1.3');

/** Skips whitespace and `//` / `/* *\/` comments from `index`. */
function skipTrivia(text: string, index: number): number {
  let at = index;
  for (;;) {
    while (at < text.length && /\s/.test(text[at]!)) at++;
    if (text.startsWith('//', at)) {
      const end = text.indexOf('\n', at);
      at = end < 0 ? text.length : end + 1;
    } else if (text.startsWith('/*', at)) {
      const end = text.indexOf('*/', at + 2);
      at = end < 0 ? text.length : end + 2;
    } else {
      return at;
    }
  }
}

/**
 * `mil` with the default buildInfo line inserted after its `program(<version>)` header when it has
 * no program attribute block; otherwise (or when the text does not start with a program header)
 * `mil` unchanged, for the parser to judge.
 */
export function withDefaultBuildInfo(mil: string): string {
  const start = skipTrivia(mil, 0);
  const header = /^program\s*\(\s*([^()\s]*)\s*\)/.exec(mil.slice(start, start + 64));
  if (header === null) return mil;
  const afterHeader = start + header[0].length;
  if (mil[skipTrivia(mil, afterHeader)] === '[') return mil;
  return `${mil.slice(0, afterHeader)}\n${defaultBuildInfoLine(header[1])}${mil.slice(afterHeader)}`;
}
