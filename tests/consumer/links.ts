/**
 * Relative link targets of a Markdown file, the ones a registry page or an installed copy cannot
 * follow unless the target ships in the same tarball.
 */

/** Link targets outside code: inline links and images, reference definitions, HTML href/src. */
export function linkTargets(markdown: string): string[] {
  const prose = markdown
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '') // fenced code blocks
    .replace(/(`+)[^`]*?\1/g, ''); // inline code spans
  const targets: string[] = [];
  for (const match of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+["'(][^)]*)?\)/g)) {
    targets.push(match[1]!);
  }
  for (const match of prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/gm)) targets.push(match[1]!);
  for (const match of prose.matchAll(/\b(?:href|src)\s*=\s*["']([^"']+)["']/gi)) targets.push(match[1]!);
  return targets;
}

/**
 * The targets that point into the package itself: no scheme (`https:`, `mailto:`), not
 * protocol-relative, not a same-page anchor. Returned without their `#fragment` or `?query`.
 */
export function relativeLinkTargets(markdown: string): string[] {
  return linkTargets(markdown)
    .filter(
      (target) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('//') && !target.startsWith('#'),
    )
    .map((target) => decodeURI(target.replace(/[#?].*$/, '')));
}
