import { describe, expect, it } from 'vitest';
import { relativeLinkTargets } from './links';

describe('relativeLinkTargets', () => {
  it('finds inline links, images, reference definitions and HTML attributes', () => {
    const markdown = [
      'See [the rules](RULES.md#a2) and [ane-ir](../ane-ir "title").',
      '![diagram](docs/flow.svg)',
      '[ref]: ./CHANGELOG.md',
      '<img src="img/logo.png"> <a href="LICENSE">license</a>',
    ].join('\n');
    expect(relativeLinkTargets(markdown)).toEqual([
      'RULES.md',
      '../ane-ir',
      'docs/flow.svg',
      './CHANGELOG.md',
      'img/logo.png',
      'LICENSE',
    ]);
  });

  it('leaves out absolute URLs, mailto, protocol-relative links and same-page anchors', () => {
    const markdown =
      '[a](https://github.com/ane-sdk/ane-sdk/blob/main/packages/ane-ir/RULES.md) [b](mailto:x@y.z) ' +
      '[c](//cdn.example/x.png) [d](#install) <a href="http://example.com">e</a>';
    expect(relativeLinkTargets(markdown)).toEqual([]);
  });

  it('ignores link-shaped text inside code blocks and code spans', () => {
    const markdown = [
      '```ts',
      'const y = fns[0](x); // [not](a-link.md)',
      '```',
      'Call `table[i](row)` or see [real](real.md).',
    ].join('\n');
    expect(relativeLinkTargets(markdown)).toEqual(['real.md']);
  });
});
