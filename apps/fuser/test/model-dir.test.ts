import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkModelDir, defaultModelCandidates, resolveModelDir } from '../src/model';
import { APP_DIR, REPO, tmp } from './helpers';

const saved = process.env.DIF_FUSION_MODEL;
afterEach(() => {
  if (saved === undefined) delete process.env.DIF_FUSION_MODEL;
  else process.env.DIF_FUSION_MODEL = saved;
});

describe('model folder resolution', () => {
  it('--model wins over $DIF_FUSION_MODEL, which wins over the shipped model', () => {
    process.env.DIF_FUSION_MODEL = '/env/model';
    expect(resolveModelDir('rel/model')).toEqual({ dir: resolve('rel/model'), source: '--model' });
    expect(resolveModelDir(undefined)).toEqual({ dir: '/env/model', source: 'DIF_FUSION_MODEL' });
  });

  it('in the repository the shipped model is <repo>/models/default, then the packed copy', () => {
    expect(defaultModelCandidates()).toEqual([
      join(REPO, 'models', 'default'),
      join(APP_DIR, 'models', 'default'),
    ]);
    delete process.env.DIF_FUSION_MODEL;
    if (defaultModelCandidates().some((c) => existsSync(join(c, 'model.onnx'))))
      expect(resolveModelDir(undefined).source).toBe('default');
    else
      expect(() => resolveModelDir(undefined)).toThrow(
        /the shipped default model is missing \(looked in .*models\/default/,
      );
  });

  it('checks the folder structure with one-line messages', () => {
    const d = tmp('dif-fuse-model-');
    expect(() => checkModelDir(join(d, 'none'))).toThrow(/model folder .*none does not exist/);
    expect(() => checkModelDir(d)).toThrow(/model folder .* is invalid: model\.onnx is missing/);
  });
});
