import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { isBackendName, useBackend } from './backends';

describe('useBackend', () => {
  it('defaults to wasm and switches to cpu', async () => {
    expect(await useBackend()).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(Array.from(tf.add(tf.scalar(1), tf.scalar(2)).dataSync())).toEqual([3]);
    expect(await useBackend('cpu')).toBe('cpu');
    expect(await useBackend('wasm')).toBe('wasm');
  });

  it('native backends: in use when installed, else one line telling how to install', async () => {
    for (const [name, pkg] of [
      ['tensorflow', '@tensorflow/tfjs-node'],
      ['tensorflow-gpu', '@tensorflow/tfjs-node-gpu'],
    ] as const) {
      try {
        expect(await useBackend(name)).toBe('tensorflow');
      } catch (err) {
        const message = (err as Error).message;
        expect(message).toContain(`npm i ${pkg}`);
        expect(message).not.toContain('\n');
      }
    }
    await useBackend('wasm');
  });

  it('rejects unknown names', async () => {
    expect(isBackendName('webgl')).toBe(false);
    expect(isBackendName('tensorflow-gpu')).toBe(true);
    await expect(useBackend('webgl' as never)).rejects.toThrow(/unknown backend 'webgl'/);
  });
});
