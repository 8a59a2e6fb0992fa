import { DifFusionError } from '@dif-fusion/schedules';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeOf, reportError } from './exit';

describe('the CLIs exit codes', () => {
  it('maps errors to exit codes', () => {
    expect(exitCodeOf(new DifFusionError('bad file'))).toBe(EXIT.failure);
    expect(exitCodeOf(new DifFusionError('bad flag', { exitCode: EXIT.usage }))).toBe(2);
    expect(exitCodeOf(Object.assign(new Error('x'), { code: 'commander.invalidArgument' }))).toBe(
      2,
    );
    expect(exitCodeOf(Object.assign(new Error('x'), { code: 'commander.helpDisplayed' }))).toBe(0);
    expect(exitCodeOf(new TypeError('bug'))).toBe(1);
    // Another copy of the package: a different class carrying the same global brand.
    const foreign = Object.assign(new Error('other copy'), {
      [Symbol.for('dif-fusion.error')]: true,
      exitCode: 2,
    });
    expect(exitCodeOf(foreign)).toBe(2);
  });

  it('reportError prints one line, except for the argument parser own errors', () => {
    const lines: string[] = [];
    expect(reportError(new DifFusionError('/a: no such file'), (l) => lines.push(l))).toBe(1);
    expect(reportError(new TypeError('bad\nstack'), (l) => lines.push(l))).toBe(1);
    expect(
      reportError(Object.assign(new Error('x'), { code: 'commander.unknownOption' }), (l) =>
        lines.push(l),
      ),
    ).toBe(2);
    expect(lines).toEqual(['error: /a: no such file', 'error: TypeError: bad']);
  });
});
