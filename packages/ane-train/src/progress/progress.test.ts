import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress } from './progress';

/** A terminal stand-in: what cli-progress writes, 160 columns wide. */
function fakeTerminal(): { stream: NodeJS.WritableStream; text: () => string } {
  let written = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      written += chunk.toString();
      done();
    },
  }) as Writable & { isTTY: boolean; columns: number };
  stream.isTTY = true;
  stream.columns = 160;
  return { stream, text: () => written };
}

describe('createProgress', () => {
  it('in a terminal: a bar with step, loss, sparkline, lr, tokens/s and ETA; an asciichart of the loss at validations', async () => {
    const terminal = fakeTerminal();
    const lines: string[] = [];
    let clock = 0;
    const progress = createProgress({
      tty: true,
      stream: terminal.stream,
      write: (t) => lines.push(t),
      total: 10,
      startStep: 0,
      initialValLoss: 5.5,
      now: () => clock,
    });
    for (let step = 1; step <= 4; step++) {
      clock += 1000;
      progress.step({
        step,
        loss: 6 - step,
        lr: 1e-3,
        tokensPerSec: 2000,
        logged: true,
        lossForLine: 6 - step,
        tokensPerSecForLine: 2000,
      });
    }
    progress.validation(4, 2.2);
    progress.stop();
    const text = terminal.text();
    expect(lines).toEqual([]); // nothing as plain lines
    expect(text).toContain('step 4/10');
    expect(text).toContain('loss 2.0000 █▆▃▁'); // the last four losses 5, 4, 3, 2
    expect(text).toContain('lr 1.00e-3 | 2.00k tok/s | ETA 6s'); // 4 steps in 4 s, 6 to go
    expect(text).toContain('training loss so far:');
    expect(text).toContain('step  4/10  val loss 2.2000 (start 5.5000)');
    expect(text).toMatch(/5\.000 ┼/); // asciichart: the top value on the axis
  });

  it('leaves SIGINT and SIGTERM to the command (cli-progress with gracefulExit would take the first SIGTERM)', () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const progress = createProgress({
      tty: true,
      stream: fakeTerminal().stream,
      write: () => {},
      total: 2,
      startStep: 0,
    });
    progress.step({
      step: 1,
      loss: 1,
      lr: 1e-3,
      tokensPerSec: 1,
      logged: true,
      lossForLine: 1,
      tokensPerSecForLine: 1,
    });
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(before);
    progress.stop();
  });

  it('off a terminal: one plain line per logged step only', () => {
    const lines: string[] = [];
    let clock = 0;
    const progress = createProgress({
      tty: false,
      write: (t) => lines.push(t),
      total: 4,
      startStep: 0,
      now: () => clock,
    });
    for (let step = 1; step <= 4; step++) {
      clock += 500;
      progress.step({
        step,
        loss: 3,
        lr: 1e-3,
        tokensPerSec: 100,
        logged: step % 2 === 0,
        lossForLine: 2.5,
        tokensPerSecForLine: 90,
      });
    }
    progress.validation(4, 2);
    expect(lines).toEqual([
      'step 2/4  loss 2.5000  lr 1.00e-3  90 tok/s  eta 1s\n',
      'step 4/4  loss 2.5000  lr 1.00e-3  90 tok/s  eta 0s\n',
      'step 4/4  val loss 2.0000\n',
    ]);
  });
});
