/**
 * The training run behind `ane-train train`: data, model, optimizer and schedule, the loop with
 * validation and checkpoints, Ctrl-C, metrics.jsonl, loss.svg, report.html and a closing sample.
 *
 * Run directory (`out`): `run.json` (the resolved options: what `--resume` reads), `metrics.jsonl`,
 * `checkpoints/latest.safetensors` (+ `step-N.safetensors` with keepCheckpoints), `loss.svg`,
 * `report.html`.
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { capabilities } from 'ane-bridge';
import { AdamW, constant, cosineDecay, linearWarmup, type Schedule } from 'ane-optim';
import { loadCheckpoint, restoreTrainer, saveTrainerCheckpoint } from '../checkpoint';
import {
  BatchSampler,
  decodeStream,
  demoTokenCorpus,
  loadCorpus,
  loadTokenizer,
  type SamplerState,
  sequentialBatches,
  splitCorpus,
  type TokenCorpus,
  type Tokenizer,
} from '../data';
import { CheckpointError, ConfigError, TrainError } from '../errors';
import { writeFileAtomically } from '../io/files';
import type { LlamaConfig } from '../model/config';
import { parameterCount, parameterSpecs } from '../model/parameters';
import { batchTrainingGraph, type ChipName } from '../model/training-graph';
import { describePlan, type PlanSummary } from '../plan-summary';
import { createProgress } from '../progress';
import { lossChartSvg, type MetricsRecord, MetricsWriter, readMetrics, renderReportHtml } from '../report';
import { Sampler } from '../sample';
import { type StepLog, Trainer } from '../trainer';
import { version } from '../version';
import { UsageError } from './args';
import type { CliIo } from './io';
import { latestCheckpointOf, loadModelSource } from './model-source';
import type { BackendName } from './options-file';

/** Everything a run needs, resolved (paths absolute): what run.json holds. */
export interface TrainSettings {
  /** A preset name or the config.json the model came from ('init' when from --init). */
  modelName: string;
  model: LlamaConfig;
  /** Starting weights (checkpoint, run dir, HF dir, llama2.c .bin); absent: a seeded init. */
  init?: string;
  /** A token or text file; absent: the built-in demo corpus. */
  data?: string;
  tokenizer: string;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  accumulate: number;
  evalEvery: number;
  evalBatches: number;
  valFraction: number;
  checkpointEvery: number;
  keepCheckpoints: boolean;
  logEvery: number;
  seed: number;
  backend: BackendName;
  chip?: ChipName;
  out: string;
  sampleTokens: number;
  prompt: string;
}

export const RUN_FILE = 'run.json';

/** The learning rate of each optimizer update: linear warmup, then cosine decay to minLr at the last step. */
export function learningRateSchedule(
  settings: Pick<TrainSettings, 'lr' | 'minLr' | 'warmup' | 'steps'>,
): Schedule {
  const { lr, minLr, warmup, steps } = settings;
  const decaySteps = steps - warmup;
  const decay = decaySteps >= 1 && minLr !== lr ? cosineDecay(lr, decaySteps, minLr) : constant(lr);
  return warmup >= 1 ? linearWarmup(warmup, decay) : decay;
}

/** The settings every run.json holds (init, data and chip are optional). */
const RUN_SETTINGS = [
  'modelName',
  'model',
  'tokenizer',
  'steps',
  'batch',
  'seq',
  'lr',
  'minLr',
  'warmup',
  'weightDecay',
  'accumulate',
  'evalEvery',
  'evalBatches',
  'valFraction',
  'checkpointEvery',
  'logEvery',
  'seed',
  'backend',
  'sampleTokens',
  'prompt',
] as const satisfies readonly (keyof TrainSettings)[];

export function readRunFile(dir: string): TrainSettings {
  const file = join(dir, RUN_FILE);
  if (!existsSync(file))
    throw new UsageError(
      `--resume ${dir}: no ${RUN_FILE} there: give the --out directory of an earlier ane-train train run`,
    );
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as { format?: string; settings?: TrainSettings };
    if (value.format !== 'ane-train/run' || value.settings === undefined) throw new Error('not a run file');
    const missing = RUN_SETTINGS.filter((key) => value.settings![key] === undefined);
    if (missing.length > 0) throw new Error(`its settings lack ${missing.join(', ')}`);
    return value.settings;
  } catch (error) {
    throw new ConfigError(
      `${file} is not an ane-train run file (${(error as Error).message}): start a new run with a fresh --out`,
      'resume',
      file,
    );
  }
}

interface RunData {
  tokenizer: Tokenizer;
  corpus: TokenCorpus;
  train: BatchSampler;
  validation: Int32Array[];
}

async function prepareData(settings: TrainSettings): Promise<RunData> {
  const tokenizer = await loadTokenizer(settings.tokenizer);
  if (tokenizer.vocabSize > settings.model.vocab_size)
    throw new ConfigError(
      `the tokenizer '${tokenizer.name}' has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${settings.model.vocab_size}: pick a matching --tokenizer (byte for 256, llama2 for 32000) or model`,
      'tokenizer',
    );
  const corpus =
    settings.data !== undefined
      ? await loadCorpus(settings.data, { tokenizer, vocabSize: settings.model.vocab_size })
      : demoTokenCorpus(tokenizer, { seed: settings.seed });
  const evaluating = settings.evalEvery > 0 && settings.valFraction > 0;
  const { train, validation } = evaluating
    ? splitCorpus(corpus.tokens, { validationFraction: settings.valFraction })
    : { train: corpus.tokens, validation: new Int32Array(0) };
  const file = settings.data !== undefined ? { file: settings.data } : {};
  const sampler = new BatchSampler(train, {
    batch: settings.batch,
    seq: settings.seq,
    seed: settings.seed,
    ...file,
  });
  const batches = evaluating
    ? sequentialBatches(validation, {
        batch: settings.batch,
        seq: settings.seq,
        maxBatches: settings.evalBatches,
        ...file,
      }).map((b) => Int32Array.from(b))
    : [];
  return { tokenizer, corpus, train: sampler, validation: batches };
}

function makeOptimizer(settings: TrainSettings): AdamW {
  const noDecay = parameterSpecs(settings.model)
    .filter((p) => !p.weightDecay)
    .map((p) => p.name);
  return new AdamW({
    learningRate: learningRateSchedule(settings),
    betas: [0.9, 0.95],
    weightDecay: settings.weightDecay,
    groups: [{ params: noDecay, weightDecay: 0 }],
  });
}

const rel = (io: CliIo, path: string) =>
  path.startsWith(`${io.cwd}/`) ? path.slice(io.cwd.length + 1) : path;

/** Runs (or resumes) a training run; resolves with the exit code (0, or 130 after Ctrl-C). */
export async function runTraining(settings: TrainSettings, io: CliIo, resume: boolean): Promise<number> {
  const out = settings.out;
  const metricsFile = join(out, 'metrics.jsonl');
  const checkpointDir = join(out, 'checkpoints');
  const latest = latestCheckpointOf(out);
  if (resume && !existsSync(latest))
    throw new UsageError(
      `--resume ${out}: the run has no checkpoint yet (${latest} is missing: it stopped before its first one): start it again with a new --out`,
    );
  if (!resume && (existsSync(metricsFile) || existsSync(latest)))
    throw new UsageError(
      `--out ${out} already holds a training run: continue it with --resume ${out}, or choose another --out`,
    );
  if (settings.warmup >= settings.steps && settings.steps > 1)
    throw new UsageError(
      resume
        ? `--steps ${settings.steps} must be above the run's warmup (${settings.warmup} steps): give a larger --steps`
        : `--warmup ${settings.warmup} must be below --steps ${settings.steps}`,
    );
  if (settings.minLr > settings.lr)
    throw new UsageError(`--min-lr ${settings.minLr} must not exceed --lr ${settings.lr}`);

  if (!resume) checkRunDirectory(out);
  if (resume && settings.data !== undefined && !existsSync(settings.data))
    throw new UsageError(
      `--resume ${out}: the run's data file ${settings.data} is gone: put it back there (a run resumes on its own data; its position in the data is in the checkpoint)`,
    );
  const data = await prepareData(settings);
  // The closing sample's prompt is checked now, not after the whole run: its window is the
  // training seq, or longer (up to the model's positions) when the prompt needs it.
  const sampleWindow =
    settings.sampleTokens > 0 ? closingSampleWindow(settings, data.tokenizer) : settings.seq;
  let initWeights: Map<string, Float32Array> | undefined;
  if (settings.init !== undefined && !resume) initWeights = (await loadModelSource(settings.init)).weights;
  makeRunDirectory(checkpointDir, out);
  if (!resume)
    await writeFileAtomically(
      join(out, RUN_FILE),
      new TextEncoder().encode(
        `${JSON.stringify({ format: 'ane-train/run', version, settings }, null, 2)}\n`,
      ),
      (why) => {
        throw new UsageError(`--out ${out}: cannot write ${RUN_FILE} there (${why}): choose another --out`);
      },
    );

  const trainer = new Trainer({
    model: settings.model,
    batch: settings.batch,
    seq: settings.seq,
    accumulate: settings.accumulate,
    seed: settings.seed,
    backend: settings.backend,
    optimizer: makeOptimizer(settings),
    ...(settings.chip !== undefined ? { chip: settings.chip } : {}),
    ...(initWeights !== undefined ? { weights: initWeights } : {}),
  });
  const stopInterrupts: (() => void)[] = [];
  try {
    let previous: MetricsRecord[] = [];
    if (resume) {
      const checkpoint = await loadCheckpoint(latest, { config: settings.model });
      // A weights-only checkpoint (an import written over the run's) would restart at step 0 and
      // drop the run's metrics: refuse it before anything is changed.
      if (checkpoint.trainer === undefined || checkpoint.data === undefined)
        throw new CheckpointError(
          `--resume ${out}: ${latest} holds weights only (no ${checkpoint.trainer === undefined ? 'trainer state' : 'data position'}: not a checkpoint of this run, e.g. an ane-train import written over it), so the run cannot continue from it: start a new run from its weights with --init ${latest} --out <new dir>`,
          { file: latest, field: checkpoint.trainer === undefined ? 'trainer' : 'data' },
        );
      restoreTrainer(trainer, checkpoint);
      if (checkpoint.data !== undefined) data.train.restore(checkpoint.data as SamplerState);
      // Records after the checkpoint were written by steps the checkpoint does not hold: drop them.
      previous = readMetrics(metricsFile).filter((r) => r.step <= trainer.step);
      writeFileSync(metricsFile, previous.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    const metrics = new MetricsWriter(metricsFile, previous);
    const startStep = trainer.step;
    const total = settings.steps;
    const training = batchTrainingGraph(settings.model, {
      seq: settings.seq,
      batch: settings.batch,
      ...(settings.chip !== undefined ? { chip: settings.chip } : {}),
    });
    const plan: PlanSummary = describePlan(training, {
      batch: settings.batch,
      accumulate: settings.accumulate,
    });

    const tokensPerStep = settings.batch * settings.seq * settings.accumulate;
    io.stdout(
      `${resume ? 'Resuming' : 'Training'} ${settings.modelName} (${(parameterCount(settings.model) / 1e6).toFixed(2)}M parameters) on ${describeCorpus(data.corpus, io)}\n` +
        `  batch ${settings.batch} × seq ${settings.seq}${settings.accumulate > 1 ? ` × accumulate ${settings.accumulate}` : ''} = ${tokensPerStep} tokens/step; ` +
        `${resume ? `steps ${startStep} → ${total}` : `${total} steps`}; lr ${settings.lr} (warmup ${settings.warmup}, cosine to ${Number(settings.minLr.toPrecision(4))}); ` +
        `${plan.programs} programs to compile; backend ${settings.backend}\n` +
        `  writing to ${rel(io, out)}\n`,
    );
    if (startStep >= total) {
      io.stdout(`the run already has ${startStep} of ${total} steps: give a larger --steps to train on\n`);
    }

    const evaluating = data.validation.length > 0;
    const evaluate = async () => trainer.evaluate(data.validation, { batches: data.validation.length });
    let initialValLoss = previous.find((r) => r.step === 0)?.valLoss;
    if (evaluating && !resume) {
      initialValLoss = await evaluate();
      metrics.write({ step: 0, valLoss: initialValLoss });
    }
    const progress = createProgress({
      tty: io.stdoutIsTTY === true && io.stdoutStream !== undefined,
      write: io.stdout,
      ...(io.stdoutStream !== undefined ? { stream: io.stdoutStream } : {}),
      total,
      startStep,
      history: previous.flatMap((r) => (r.loss !== undefined ? [r.loss] : [])),
      ...(initialValLoss !== undefined ? { initialValLoss } : {}),
    });
    if (evaluating && !resume && initialValLoss !== undefined) progress.validation(0, initialValLoss);

    // Ctrl-C: stop after the step in flight, save, exit 130; a second Ctrl-C exits at once.
    const controller = new AbortController();
    if (io.onInterrupt !== undefined) {
      stopInterrupts.push(
        io.onInterrupt(() => {
          if (controller.signal.aborted) {
            io.stderr('\nsecond Ctrl-C: exiting without saving\n');
            io.exitNow?.(130);
            return;
          }
          controller.abort();
          progress.message('Ctrl-C: saving a checkpoint after the step in flight (Ctrl-C again to quit now)');
        }),
      );
    }

    const profileSum = { deviceMs: 0, hostMs: 0, stagingMs: 0, idleMs: 0, optimizerMs: 0, totalMs: 0 };
    let profiled = 0;
    let backendUsed = settings.backend as string;
    let interval = { loss: 0, steps: 0, tokens: 0, ms: 0 };
    const started = performance.now();
    // Divergence: a NaN/inf loss comes from the forward pass (the weights overflow fp16), which the
    // loss scaler cannot fix; weights that give it are never checkpointed over the last good ones.
    let nonFiniteSteps = 0;
    let divergedSince: { step: number; lr: number } | undefined;
    const onStepEnd = (log: StepLog) => {
      const step = log.step + 1;
      if (Number.isFinite(log.loss)) {
        nonFiniteSteps = 0;
        divergedSince = undefined;
      } else {
        nonFiniteSteps += 1;
        divergedSince ??= { step, lr: log.lr };
        if (nonFiniteSteps >= DIVERGED_AFTER) controller.abort();
      }
      backendUsed = log.backend;
      for (const key of Object.keys(profileSum) as (keyof typeof profileSum)[])
        profileSum[key] += log.profile[key];
      profiled += 1;
      interval.loss += log.loss;
      interval.steps += 1;
      interval.tokens += tokensPerStep;
      interval.ms += log.profile.totalMs;
      const logged = step % settings.logEvery === 0 || step === total;
      const lossForLine = interval.loss / interval.steps;
      const tokensPerSecForLine = interval.tokens / (interval.ms / 1000);
      progress.step({
        step,
        loss: log.loss,
        lr: log.lr,
        tokensPerSec: log.tokensPerSecond,
        logged,
        lossForLine,
        tokensPerSecForLine,
      });
      if (logged) {
        pending = { step, loss: lossForLine, lr: log.lr, tokensPerSec: tokensPerSecForLine };
        interval = { loss: 0, steps: 0, tokens: 0, ms: 0 };
      }
    };
    let pending: MetricsRecord | undefined;
    const flush = (valLoss?: number) => {
      if (pending === undefined) return;
      metrics.write(valLoss !== undefined ? { ...pending, valLoss } : pending);
      pending = undefined;
    };
    const diverged = (): TrainError =>
      new TrainError(
        `training diverged: the loss has been NaN or infinite since step ${divergedSince!.step} (learning rate ${Number(divergedSince!.lr.toPrecision(3))}): the weights overflow fp16. ` +
          `Nothing was saved over ${existsSync(latest) ? `${rel(io, latest)}, which keeps the last good weights` : 'the run'}; start a new run with a lower --lr (this one's peak was ${settings.lr})`,
      );
    const save = async () => {
      if (nonFiniteSteps > 0) return;
      await saveTrainerCheckpoint(latest, trainer, {
        data: data.train.state(),
        metadata: { tokenizer: data.tokenizer.name },
      });
      if (settings.keepCheckpoints)
        await saveTrainerCheckpoint(join(checkpointDir, `step-${trainer.step}.safetensors`), trainer, {
          data: data.train.state(),
          metadata: { tokenizer: data.tokenizer.name },
        });
    };
    const due = (every: number, step: number) => every > 0 && step % every === 0;

    let interrupted = false;
    while (trainer.step < total) {
      const step = trainer.step;
      const nextEvent = Math.min(
        total,
        nextMultiple(step, settings.logEvery),
        evaluating ? nextMultiple(step, settings.evalEvery) : total,
        settings.checkpointEvery > 0 ? nextMultiple(step, settings.checkpointEvery) : total,
      );
      const history = await trainer.fit(data.train, {
        steps: nextEvent - step,
        signal: controller.signal,
        callbacks: { onStepEnd },
      });
      const now = trainer.step;
      if (nonFiniteSteps >= DIVERGED_AFTER) {
        flush();
        progress.stop();
        throw diverged();
      }
      if (history.aborted || controller.signal.aborted) {
        flush();
        interrupted = true;
        break;
      }
      if (history.steps.length === 0) break;
      if (evaluating && (due(settings.evalEvery, now) || now === total)) {
        if (pending === undefined || pending.step !== now) {
          // A validation step that is not a logged step still gets its own record.
          pending = { step: now, loss: Number.NaN, lr: history.steps.at(-1)!.lr, tokensPerSec: Number.NaN };
          if (interval.steps > 0) {
            pending.loss = interval.loss / interval.steps;
            pending.tokensPerSec = interval.tokens / (interval.ms / 1000);
            interval = { loss: 0, steps: 0, tokens: 0, ms: 0 };
          }
        }
        const valLoss = await evaluate();
        flush(valLoss);
        progress.validation(now, valLoss);
      } else flush();
      if (due(settings.checkpointEvery, now) && now < total) await save();
    }
    progress.stop();
    // The last step's loss and the last validation are both non-finite: the final weights are broken.
    const lastValLoss = [...metrics.records].reverse().find((r) => r.valLoss !== undefined)?.valLoss;
    if (!interrupted && nonFiniteSteps > 0 && (lastValLoss === undefined || !Number.isFinite(lastValLoss)))
      throw diverged();
    await save();
    const elapsed = performance.now() - started;
    if (interrupted) {
      io.stdout(
        `\nstopped at step ${trainer.step} of ${total}; ${nonFiniteSteps > 0 ? `the loss is not finite, so the checkpoint was not updated: ${rel(io, latest)}` : `checkpoint saved to ${rel(io, latest)}`}\n` +
          `continue with: ane-train train --resume ${rel(io, out)}\n`,
      );
      return 130;
    }

    // Training is over and saved: from here Ctrl-C ends the process as usual.
    for (const stop of stopInterrupts.splice(0)) stop();

    // The end: a sample, the charts and the report.
    let sample: { prompt: string; text: string; tokensPerSecond: number } | undefined;
    if (settings.sampleTokens > 0) {
      io.stdout(`\nA sample (prompt ${JSON.stringify(settings.prompt)}):\n`);
      sample = await generateSample({ ...settings, seq: sampleWindow }, trainer.weights, data.tokenizer, io);
    }
    const records = metrics.records;
    const lastVal = [...records].reverse().find((r) => r.valLoss !== undefined)?.valLoss;
    const lastLoss = [...records]
      .reverse()
      .find((r) => r.loss !== undefined && Number.isFinite(r.loss))?.loss;
    const caps = capabilities();
    const summary: [string, string][] = [
      ['steps', `${trainer.step} (${startStep > 0 ? `resumed at ${startStep}` : 'from the start'})`],
      ['tokens per step', String(tokensPerStep)],
      ['time (this process)', `${(elapsed / 1000).toFixed(1)} s`],
      ['training loss (last)', lastLoss !== undefined ? lastLoss.toFixed(4) : '–'],
    ];
    if (initialValLoss !== undefined) summary.push(['validation loss (start)', initialValLoss.toFixed(4)]);
    if (lastVal !== undefined) summary.push(['validation loss (end)', lastVal.toFixed(4)]);
    const lossSvg = join(out, 'loss.svg');
    const reportHtml = join(out, 'report.html');
    writeFileSync(lossSvg, `${lossChartSvg(records, { standalone: true })}\n`);
    writeFileSync(
      reportHtml,
      renderReportHtml({
        title: `ane-train: ${settings.modelName}, ${trainer.step} steps`,
        metrics: records,
        ...(profiled > 0
          ? {
              profile: Object.fromEntries(
                Object.entries(profileSum).map(([k, v]) => [k, v / profiled]),
              ) as typeof profileSum,
            }
          : {}),
        plan,
        device: {
          backend: backendUsed,
          chip: training.chip,
          hostKernels: `${caps.hostKernels.implementation}${caps.simd.level !== 'none' ? ` (${caps.simd.level})` : ''}`,
          platform: `${caps.platform}/${caps.arch}`,
          node: caps.nodeVersion,
        },
        model: settings.model as unknown as Record<string, unknown>,
        options: { ...settings, model: undefined } as unknown as Record<string, unknown>,
        ...(sample !== undefined ? { sample } : {}),
        summary,
      }),
    );
    io.stdout(
      `\n${initialValLoss !== undefined && lastVal !== undefined ? `validation loss ${initialValLoss.toFixed(3)} → ${lastVal.toFixed(3)}; ` : ''}done in ${(elapsed / 1000).toFixed(1)} s\n` +
        `  report      ${rel(io, reportHtml)}\n  loss chart  ${rel(io, lossSvg)}\n  metrics     ${rel(io, metricsFile)}\n  checkpoint  ${rel(io, latest)}\n` +
        `sample more: ane-train sample --checkpoint ${rel(io, out)} --prompt "Once upon a time"\n`,
    );
    return 0;
  } finally {
    for (const stop of stopInterrupts) stop();
    await trainer.dispose();
  }
}

/** The window of the closing sample; a prompt it cannot take is a UsageError before training. */
function closingSampleWindow(settings: TrainSettings, tokenizer: Tokenizer): number {
  const ids = (tokenizer.bosId !== undefined ? 1 : 0) + tokenizer.encode(settings.prompt).length;
  const positions = settings.model.max_position_embeddings;
  if (ids === 0)
    throw new UsageError(
      `--prompt is empty and the ${tokenizer.name} tokenizer has no BOS token to start from: give a --prompt, or --sample-tokens 0 for no closing sample`,
    );
  if (ids > positions)
    throw new UsageError(
      `--prompt is ${ids} tokens, more than the model's ${positions} positions: give a shorter --prompt, or --sample-tokens 0 for no closing sample`,
    );
  return Math.max(settings.seq, ids);
}

/** The reason `path` cannot be a directory we create and write in, or undefined when it can. */
function whyNotADirectory(path: string): string | undefined {
  let at = path;
  // The nearest part of the path that exists must be a directory we may write in.
  while (!existsSync(at)) {
    const parent = dirname(at);
    if (parent === at) return undefined;
    at = parent;
  }
  if (!statSync(at).isDirectory())
    return at === path ? 'it is a file, not a directory' : `${at} is a file, not a directory`;
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch {
    return at === path ? 'it is not writable' : `${at} is not writable`;
  }
  return undefined;
}

/** Refuses (before the data is read) an --out that cannot be a run directory. */
function checkRunDirectory(out: string): void {
  const why = whyNotADirectory(out);
  if (why !== undefined)
    throw new UsageError(`--out ${out} cannot be the run directory (${why}): choose another --out`);
  // A directory of other files (`--out .` in a project) would get its report.html, loss.svg or
  // run.json replaced; a run's own directory (run.json, e.g. stopped before its first checkpoint) may start again.
  const present = existsSync(out) ? readdirSync(out) : [];
  if (present.length > 0 && !present.includes(RUN_FILE))
    throw new UsageError(
      `--out ${out} is a directory with other files in it (${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''}): a run writes run.json, metrics.jsonl, loss.svg, report.html and checkpoints/ there; choose a new or empty --out`,
    );
}

function makeRunDirectory(checkpointDir: string, out: string): void {
  try {
    mkdirSync(checkpointDir, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`--out ${out}: cannot create ${checkpointDir} (${code}): choose another --out`);
  }
}

/** Steps in a row with a NaN or infinite loss after which a run has diverged and stops. */
const DIVERGED_AFTER = 10;

function nextMultiple(step: number, every: number): number {
  return every > 0 ? (Math.floor(step / every) + 1) * every : Number.POSITIVE_INFINITY;
}

function describeCorpus(corpus: TokenCorpus, io: CliIo): string {
  const what =
    corpus.kind === 'demo'
      ? 'the built-in demo corpus'
      : `${rel(io, corpus.file ?? '')} (${corpus.kind === 'tokens' ? 'token file' : 'text'})`;
  return `${what}: ${corpus.tokens.length} tokens${corpus.tokenizer !== undefined ? ` (${corpus.tokenizer.name} tokenizer)` : ''}`;
}

/** Streams a sample from `weights` to stdout; resolves with the text. */
export async function generateSample(
  settings: Pick<TrainSettings, 'model' | 'backend' | 'seq' | 'sampleTokens' | 'prompt' | 'seed'> & {
    chip?: ChipName;
    temperature?: number;
    topK?: number;
    topP?: number;
  },
  weights: ReadonlyMap<string, Float32Array>,
  tokenizer: Tokenizer,
  io: CliIo,
): Promise<{ prompt: string; text: string; tokensPerSecond: number }> {
  const sampler = await Sampler.open({
    model: settings.model,
    weights,
    backend: settings.backend,
    seq: settings.seq,
    ...(settings.chip !== undefined ? { chip: settings.chip } : {}),
  });
  try {
    const prompt = [
      ...(tokenizer.bosId !== undefined ? [tokenizer.bosId] : []),
      ...tokenizer.encode(settings.prompt),
    ];
    if (prompt.length === 0)
      throw new UsageError(
        `--prompt is empty and the ${tokenizer.name} tokenizer has no BOS token to start from: give a --prompt`,
      );
    // Decode after the prompt's ids, so the first generated token keeps its leading space
    // (SentencePiece drops the space of a text's first token). The prompt goes in whole: a
    // Hugging Face tokenizer's decode refuses an empty list of ids.
    const stream = decodeStream(tokenizer, { prompt });
    let generated = '';
    let beyond = 0;
    const write = (piece: string) => {
      generated += piece;
      io.stdout(piece);
    };
    io.stdout(settings.prompt);
    const result = await sampler.generate(prompt, {
      maxTokens: settings.sampleTokens,
      temperature: settings.temperature ?? 0.8,
      ...(settings.topK !== undefined ? { topK: settings.topK } : {}),
      ...(settings.topP !== undefined ? { topP: settings.topP } : {}),
      seed: settings.seed,
      ...(tokenizer.eosId !== undefined ? { eosId: tokenizer.eosId } : {}),
      // A model may have more ids than its tokenizer (a vocabulary padded for speed, or a small
      // tokenizer.json): such an id has no text, so it is left out of the stream and counted.
      onToken: (id) => {
        if (id < tokenizer.vocabSize) write(stream.push(id));
        else beyond += 1;
      },
    });
    write(stream.flush());
    io.stdout('\n');
    if (beyond > 0)
      io.stdout(
        `(${beyond} of the ${result.tokens.length} generated ids are beyond the ${tokenizer.name} tokenizer's ${tokenizer.vocabSize} tokens: they have no text and were left out)\n`,
      );
    return {
      prompt: settings.prompt,
      text: settings.prompt + generated,
      tokensPerSecond: result.tokensPerSecond,
    };
  } finally {
    await sampler.dispose();
  }
}
