/** `ane-train bench`: ms per training step, tokens/s and where a step's time goes, on random tokens. */
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { type ArgsDef, defineCommand } from 'citty';
import { PRESET_NAMES, resolveModel } from '../model/config';
import { parameterCount } from '../model/parameters';
import { uniformSource } from '../random';
import { Trainer } from '../trainer';
import { choiceFlag, countFlag, parseStrictArgs, stringFlag, wholeNumberFlag } from './args';
import type { CliIo } from './io';
import { BACKENDS } from './options-file';

const s = (valueHint: string, description: string) => ({ type: 'string', valueHint, description }) as const;

export const benchArgs = {
  preset: s(PRESET_NAMES.join('|'), 'a model preset (default tiny)'),
  batch: s('B', 'sequences per step (default 1)'),
  seq: s('S', 'positions per sequence (default min(256, max positions))'),
  steps: s('N', 'measured steps (default 10)'),
  warmup: s('N', 'steps run first and not measured: compiles, first touches (default 2)'),
  backend: s(BACKENDS.join('|'), "'auto', 'ane' or 'sim'"),
  chip: s(CHIP_FAMILIES.join('|'), "the chip to plan for (default: the device's)"),
  json: { type: 'boolean', description: 'print the result as one JSON object' },
} satisfies ArgsDef;

export const benchCommandDef = defineCommand({
  meta: {
    name: 'bench',
    description: 'time training steps of a model on random tokens: ms/step, tokens/s and the step profile',
  },
  args: benchArgs,
});

export async function runBench(rawArgs: readonly string[], io: CliIo): Promise<number> {
  const args = parseStrictArgs(rawArgs, benchArgs);
  const preset = choiceFlag(args, 'preset', PRESET_NAMES) ?? 'tiny';
  const config = resolveModel(preset);
  const batch = wholeNumberFlag(args, 'batch') ?? 1;
  const seq = wholeNumberFlag(args, 'seq') ?? Math.min(256, config.max_position_embeddings);
  const steps = wholeNumberFlag(args, 'steps') ?? 10;
  const warmup = countFlag(args, 'warmup') ?? 2;
  const backend = choiceFlag(args, 'backend', BACKENDS) ?? 'auto';
  const chip = choiceFlag(args, 'chip', CHIP_FAMILIES);
  void stringFlag;
  const trainer = new Trainer({
    model: preset,
    batch,
    seq,
    backend,
    ...(chip !== undefined ? { chip } : {}),
  });
  try {
    const random = uniformSource(7);
    const tokens = Int32Array.from({ length: 4 * batch * (seq + 1) + 1024 }, () =>
      Math.floor(random() * config.vocab_size),
    );
    if (warmup > 0) await trainer.fit(tokens, { steps: warmup });
    const history = await trainer.fit(tokens, { steps });
    const logs = history.steps;
    const mean = (pick: (l: (typeof logs)[number]) => number) =>
      logs.reduce((sum, l) => sum + pick(l), 0) / Math.max(1, logs.length);
    const msPerStep = mean((l) => l.profile.totalMs);
    const result = {
      preset,
      parameters: parameterCount(config),
      batch,
      seq,
      steps: logs.length,
      backend: logs[0]?.backend ?? backend,
      msPerStep,
      tokensPerSecond: (batch * seq) / (msPerStep / 1000),
      profile: {
        deviceMs: mean((l) => l.profile.deviceMs),
        hostMs: mean((l) => l.profile.hostMs),
        stagingMs: mean((l) => l.profile.stagingMs),
        idleMs: mean((l) => l.profile.idleMs),
        optimizerMs: mean((l) => l.profile.optimizerMs),
      },
    };
    if (args.json === true) {
      io.stdout(`${JSON.stringify(result)}\n`);
      return 0;
    }
    const p = result.profile;
    io.stdout(
      `${preset} (${(result.parameters / 1e6).toFixed(2)}M parameters), batch ${batch} × seq ${seq}, ${result.backend} backend, ${logs.length} steps after ${warmup} warmup\n` +
        `  ${msPerStep.toFixed(1)} ms/step, ${result.tokensPerSecond.toFixed(0)} tokens/s\n` +
        `  per step: device ${p.deviceMs.toFixed(1)} ms, host kernels ${p.hostMs.toFixed(1)} ms, staging ${p.stagingMs.toFixed(1)} ms, idle ${p.idleMs.toFixed(1)} ms, optimizer ${p.optimizerMs.toFixed(1)} ms\n`,
    );
    return 0;
  } finally {
    await trainer.dispose();
  }
}
