/**
 * The built-in demo corpus: short stories in the TinyStories manner (a child, a place, a thing they
 * love, a problem, help from a friend, a happy ending), made from templates by a seeded random
 * stream. Our own code writes it, so the main job downloads nothing, and the same seed gives the
 * same text on every machine.
 */
import { ConfigError } from '../errors';
import { uniformSource } from '../random';

const NAMES = [
  'Lily',
  'Tom',
  'Mia',
  'Ben',
  'Sara',
  'Max',
  'Anna',
  'Leo',
  'Zoe',
  'Sam',
  'Lucy',
  'Jack',
  'Emma',
  'Tim',
];
const FRIENDS = [
  ['a little dog', 'the dog'],
  ['a kind cat', 'the cat'],
  ['a big bird', 'the bird'],
  ['a small frog', 'the frog'],
  ['a wise owl', 'the owl'],
  ['a funny duck', 'the duck'],
  ['an old bear', 'the bear'],
] as const;
const PLACES = [
  'the park',
  'the garden',
  'the beach',
  'the forest',
  'the farm',
  'the big hill',
  'the little town',
  'the river',
];
const THINGS = [
  ['a red ball', 'the ball'],
  ['a blue kite', 'the kite'],
  ['a shiny box', 'the box'],
  ['a yellow hat', 'the hat'],
  ['a toy boat', 'the boat'],
  ['a green leaf', 'the leaf'],
  ['a soft teddy', 'the teddy'],
  ['a pretty flower', 'the flower'],
] as const;
const WEATHER = ['sunny', 'warm', 'windy', 'bright', 'cold', 'quiet'];
const FEELINGS_GOOD = ['happy', 'glad', 'excited', 'proud'];
const FEELINGS_BAD = ['sad', 'scared', 'worried', 'upset'];
const LOSSES = [
  ['fell into the water', 'pulled it out of the water'],
  ['got stuck in a tree', 'got it down from the tree'],
  ['rolled under a big rock', 'pushed the rock away'],
  ['flew up on the roof', 'jumped up and got it'],
  ['went into a dark hole', 'went in and brought it back'],
] as const;
const PLAYS = ['play', 'run', 'jump', 'sing', 'dance', 'look for bugs'];
const LESSONS = [
  'friends help each other',
  'it is good to share',
  'it is good to ask for help',
  'being kind makes everyone happy',
  'you should never give up',
];
const ENDINGS = [
  'They played together until the sun went down.',
  'Then they went home and had a big snack.',
  'From that day on, they were best friends.',
  'They laughed and played all day long.',
];

/**
 * `stories` short stories (default 500, about 250 KB), documents separated by a blank line
 * ('\n\n'). Deterministic per `seed` (default 1).
 */
export function demoCorpus(options: { seed?: number; stories?: number } = {}): string {
  const seed = options?.seed ?? 1;
  const stories = options?.stories ?? 500;
  if (!Number.isInteger(seed)) {
    throw new ConfigError(`demo corpus: seed must be an integer, got ${String(seed)}`, 'seed');
  }
  if (!Number.isInteger(stories) || stories < 1 || stories > 1_000_000) {
    throw new ConfigError(
      `demo corpus: stories must be an integer in [1, 1000000], got ${String(stories)}`,
      'stories',
    );
  }
  const uniform = uniformSource(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(uniform() * list.length)]!;
  const out: string[] = [];
  for (let i = 0; i < stories; i++) out.push(story(pick, uniform));
  return out.join('\n\n');
}

function story(pick: <T>(list: readonly T[]) => T, uniform: () => number): string {
  const name = pick(NAMES);
  const he = ['Tom', 'Ben', 'Max', 'Leo', 'Sam', 'Jack', 'Tim'].includes(name) ? 'he' : 'she';
  const He = he === 'he' ? 'He' : 'She';
  const his = he === 'he' ? 'his' : 'her';
  const [friend, theFriend] = pick(FRIENDS);
  const place = pick(PLACES);
  const [thing, theThing] = pick(THINGS);
  const [loss, rescue] = pick(LOSSES);
  const good = pick(FEELINGS_GOOD);
  const bad = pick(FEELINGS_BAD);
  const play = pick(PLAYS);
  const opening =
    uniform() < 0.5
      ? `Once upon a time, there was a little ${he === 'he' ? 'boy' : 'girl'} named ${name}.`
      : `One ${pick(WEATHER)} day, ${name} went to ${place}.`;
  const lines = [
    opening,
    `${He} had ${thing}. ${He} loved ${theThing} very much.`,
    `${name} liked to ${play} at ${place} with ${his} ${theThing.slice(4)}.`,
    `One day, ${theThing} ${loss}. ${name} was very ${bad}.`,
    `"Oh no! My ${theThing.slice(4)}!" ${he} said.`,
    `Then ${name} saw ${friend}. "Can you help me?" ${name} asked.`,
    `"Yes, I can help you," said ${theFriend}. ${capitalize(theFriend)} ${rescue}.`,
    `${name} was so ${good}. "Thank you!" ${he} said, and ${he} gave ${theFriend} a big hug.`,
  ];
  if (uniform() < 0.5) lines.push(`${name} learned that ${pick(LESSONS)}.`);
  lines.push(pick(ENDINGS));
  return lines.join(' ');
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
