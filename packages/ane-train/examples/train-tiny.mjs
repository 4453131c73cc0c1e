// Trainer.fit from code: train the tiny preset (a byte-level Llama with GQA) on a short text, on the
// default backend: the Neural Engine on a Mac, the simulator elsewhere. (The main job, `pnpm train`,
// is the `ane-train train` command.) Run: node packages/ane-train/examples/train-tiny.mjs
import { AdamW, Trainer } from 'ane-train';

const text = `Once upon a time there was a little robot who lived in a lighthouse. Every night the robot
climbed the stairs, polished the great lamp and watched the ships sail home. `.repeat(8);
const steps = Number(process.env.STEPS ?? 100);

const trainer = new Trainer({
  model: 'tiny',
  seq: 64,
  batch: 4,
  optimizer: new AdamW({ learningRate: 3e-3, weightDecay: 0 }),
});
try {
  console.log(`Training the tiny preset for ${steps} steps (batch 4 × 64 byte tokens)...`);
  const history = await trainer.fit(new TextEncoder().encode(text), {
    steps,
    callbacks: {
      onStepEnd(log) {
        if (log.step % 10 === 0 || log.step === steps - 1) {
          const { deviceMs, hostMs, optimizerMs, totalMs } = log.profile;
          console.log(
            `step ${String(log.step).padStart(3)}  loss ${log.loss.toFixed(3)}  ${Math.round(log.tokensPerSecond)} tok/s  ` +
              `(${log.backend}: device ${deviceMs.toFixed(0)} ms, host ${hostMs.toFixed(0)} ms, optimizer ${optimizerMs.toFixed(1)} ms of ${totalMs.toFixed(0)} ms)`,
          );
        }
      },
    },
  });
  const losses = history.history.loss;
  console.log(
    `loss ${losses[0].toFixed(3)} -> ${losses.at(-1).toFixed(3)} (ln 256 = ${Math.log(256).toFixed(3)} is chance)`,
  );
} finally {
  await trainer.dispose();
}
