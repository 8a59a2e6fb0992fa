import { describe, expect, it } from 'vitest';
import { DifFusionError, formatError } from './errors';

class SubError extends DifFusionError {}

describe('the error root', () => {
  it('carries the exit code an app gave it, and none by default', () => {
    expect(new DifFusionError('bad flag', { exitCode: 2 }).exitCode).toBe(2);
    expect(new DifFusionError('bad file').exitCode).toBeUndefined();
  });

  it('is recognised by its Symbol.for brand, also across copies of the class', () => {
    expect(DifFusionError.isInstance(new SubError('x'))).toBe(true);
    expect(new SubError('x').name).toBe('SubError');
    // Another copy of the package: a different class carrying the same global brand.
    const foreign = Object.assign(new Error('other copy'), {
      [Symbol.for('dif-fusion.error')]: true,
      exitCode: 2,
    });
    expect(DifFusionError.isInstance(foreign)).toBe(true);
    expect(formatError(foreign)).toBe('other copy');
    expect(DifFusionError.isInstance(new Error('plain'))).toBe(false);
    expect(DifFusionError.isInstance(null)).toBe(false);
  });
});
