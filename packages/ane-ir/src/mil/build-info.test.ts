import { describe, expect, it } from 'vitest';
import { DEFAULT_BUILD_INFO_LINE, defaultBuildInfoLine, withDefaultBuildInfo } from './build-info';
import { parseProgram } from './parse';
import { checkProgramRules } from './rule-checks';

const BODY =
  '{\n    func main<ios18>(tensor<fp16, [1, 4, 1, 32]> x) {\n        tensor<fp16, [1, 4, 1, 32]> y = relu(x=x)[name=string("r")];\n    } -> (y);\n}\n';

describe('the default buildInfo line', () => {
  it('is the line reference/maderix-ane.md §2 gives for program(1.3)', () => {
    expect(DEFAULT_BUILD_INFO_LINE).toBe(
      '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]',
    );
    expect(defaultBuildInfoLine('1.0')).toBe(
      '[buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]',
    );
  });

  it('is inserted after the program header when the text has none, so the skeleton rule passes', () => {
    const bare = `// a comment first\nprogram(1.3)\n${BODY}`;
    const amended = withDefaultBuildInfo(bare);
    expect(amended).toBe(`// a comment first\nprogram(1.3)\n${DEFAULT_BUILD_INFO_LINE}\n${BODY}`);
    expect(parseProgram(amended).buildInfo?.entries).toHaveLength(4);
    const skeleton = (text: string) =>
      checkProgramRules(parseProgram(text)).filter((v) => v.ruleId === 'emit-program-skeleton');
    expect(skeleton(bare)).toHaveLength(1);
    expect(skeleton(amended)).toEqual([]);
  });

  it('leaves text that has a buildInfo line, or no program header, unchanged', () => {
    const withLine = `program(1.3)\n  [buildInfo = dict<string, string>({{"coremltools-version", "8.1"}})]\n${BODY}`;
    expect(withDefaultBuildInfo(withLine)).toBe(withLine);
    expect(withDefaultBuildInfo('not mil at all')).toBe('not mil at all');
    expect(withDefaultBuildInfo('')).toBe('');
  });
});
