import { expect } from 'vitest';

/** Every tag closed in order (a small well-formedness check: no XML parser in Node). */
export function checkWellFormed(xml: string): void {
  const body = xml.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  for (const match of body.matchAll(/<(\/?)([a-zA-Z][\w:-]*)([^>]*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = match;
    if (selfClosing === '/') continue;
    if (closing === '/') {
      expect(stack.pop(), `</${name}> closes the open tag`).toBe(name);
    } else stack.push(name!);
  }
  expect(stack).toEqual([]);
  // No raw ampersand that is not an entity.
  expect(body).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#39;)/);
}
