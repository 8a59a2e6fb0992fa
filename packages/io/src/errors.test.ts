import { describe, expect, it } from 'vitest';
import { DifFusionError, fileError, formatError, fsError, UserError } from './errors';

describe('one-line errors', () => {
  it('DifFusionError folds newlines into one line and keeps the path', () => {
    const e = new DifFusionError('bad thing\n  happened\nhere', { path: '/x' });
    expect(e.message).toBe('bad thing happened here');
    expect(e.path).toBe('/x');
    expect(UserError).toBe(DifFusionError);
    expect(fileError('/a/b.png', 'broken').message).toBe('/a/b.png: broken');
  });

  it('fsError maps Node error codes', () => {
    const err = (code: string) => Object.assign(new Error(`${code}: x\nstack`), { code });
    expect(fsError('/p', err('ENOENT')).message).toBe('/p: no such file');
    expect(fsError('/p', err('ENOENT'), 'folder').message).toBe('/p: no such folder');
    expect(fsError('/p', err('EISDIR')).message).toBe('/p: is a folder, expected a file');
    expect(fsError('/p', err('EACCES')).message).toBe('/p: permission denied');
    // Node's message already names the code: not twice
    expect(fsError('/p', err('EIO')).message).toBe('/p: EIO: x');
    expect(fsError('/p', Object.assign(new Error('bad'), { code: 'EIO' })).message).toBe(
      '/p: EIO: bad',
    );
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
    });
    expect(fsError('/p', full).message).toBe('/p: no space left on device (ENOSPC)');
  });

  it('formatError gives one line for anything', () => {
    expect(formatError(fileError('/f', 'x'))).toBe('/f: x');
    expect(formatError(new TypeError('bad\nmore'))).toBe('TypeError: bad');
    expect(formatError(new Error('plain\nmore'))).toBe('plain');
    expect(formatError('str\ning')).toBe('str');
  });
});
