import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useBackend } from './backends';

describe('the tfjs "install our node backend" banner', () => {
  afterEach(() => vi.restoreAllMocks());

  it('never shows on the cpu backend (its first tensor write prints it otherwise)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    expect(await useBackend('cpu')).toBe('cpu');
    expect(Array.from(tf.add(tf.tensor([1, 2]), tf.tensor([3, 4])).dataSync())).toEqual([4, 6]);
    const printed = [...warn.mock.calls, ...log.mock.calls].flat().join('\n');
    expect(printed).not.toMatch(/looks like you are running TensorFlow\.js in Node/);
  });
});
