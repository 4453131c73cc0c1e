/**
 * The plan as text: distinct programs (compile each once), kernels in execution order with their
 * I/O sizes and FLOPs, host ops with the reason they run on the host, and the checker's warnings.
 */
import type { Plan } from './partition';

function bytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function flops(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GFLOP`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MFLOP`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kFLOP`;
  return `${n} FLOP`;
}

export function formatPlan(plan: Plan): string {
  const lines: string[] = [];
  const aneOps = plan.placements.filter((p) => p.device === 'ane').length;
  lines.push(
    `Plan for ${plan.chip}: ${plan.kernels.length} ANE kernel runs of ${plan.programs.length} distinct program${plan.programs.length === 1 ? '' : 's'}, ${plan.hostOps.length} host op${plan.hostOps.length === 1 ? '' : 's'}; ${aneOps} of ${plan.placements.length} ops on the ANE.`,
  );
  lines.push('');
  lines.push('Programs (compile once each):');
  for (const program of plan.programs) {
    const inputs = program.program.inputs
      .map((s) => `${s.name} ${s.dtype}[${s.shape.join(', ')}]`)
      .join(', ');
    const outputs = program.program.outputs
      .map((s) => `${s.name} ${s.dtype}[${s.shape.join(', ')}]`)
      .join(', ');
    lines.push(
      `  P${program.index} ${program.hash}: ${program.instances.length} run${program.instances.length === 1 ? '' : 's'}; in ${inputs} (${bytes(program.inputBytes)}); out ${outputs} (${bytes(program.outputBytes)}); ${flops(program.flops)} per run`,
    );
  }
  lines.push('');
  lines.push('Steps:');
  for (const step of plan.steps) {
    if (step.kind === 'kernel') {
      const kernel = plan.kernels[step.index]!;
      const program = plan.programs[kernel.program]!;
      const staged = kernel.inputs
        .flatMap((port) => port.segments.map((s) => `${s.source}${s.transposed ? 'ᵀ' : ''}`))
        .join(', ');
      const returned = kernel.outputs.flatMap((port) => port.segments.map((s) => s.source)).join(', ');
      lines.push(
        `  ane  ${kernel.name} = P${program.index} (${kernel.nodes.length} ops): reads ${staged}; returns ${returned}`,
      );
    } else {
      const op = plan.hostOps[step.index]!;
      lines.push(
        `  host ${op.kind} '${op.name}' (${op.nodes.length} ops, ${flops(op.flops)}): ${op.reason}${op.ruleId !== undefined ? ` [${op.ruleId}]` : ''}`,
      );
    }
  }
  if (plan.warnings.length > 0) {
    lines.push('');
    lines.push('Warnings:');
    const seen = new Set<string>();
    for (const warning of plan.warnings) {
      if (seen.has(warning.message)) continue;
      seen.add(warning.message);
      lines.push(`  ${warning.message}`);
    }
  }
  return lines.join('\n');
}
