import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UNET_CONFIG_KEYS } from '@dif-fusion/unet';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_DDPM_CONFIG,
  DEFAULT_HEAD_CONFIG,
  loadDdpmConfig,
  loadHeadConfig,
  parseJsonWithComments,
  unetBlockSchema,
  validateDdpmConfig,
  validateHeadConfig,
} from './config';

const root = mkdtempSync(join(tmpdir(), 'dif-train-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(root, name);
  writeFileSync(p, text);
  return p;
};

// Every block of the reference's config/ddpm_train.json (the keys dif-train ignores too),
// with `//` comments as its parser allows.
const REFERENCE_DDPM = `{
  "name": "ddpm-fusion-Unet", "phase": "train", "distributed": false, "gpu_ids": [0],
  "path": { "log": "logs", "tb_logger": "tb_logger", "results": "results",
            "checkpoint": "checkpoint", "resume_state": null },
  "datasets": {
    "train": { "name": "MSRS", "dataroot": "TBD", "resolution": 160, "batch_size": 1,
               "num_workers": 1, "use_shuffle": true, "data_len": -1 },
    "val": { "name": "MSRS", "resolution": 160, "image_size_w": 160, "image_size_h": 160,
             "data_len": 1 }
  },
  "model": {
    "which_model_G": "sr3", // sr3 network structure
    "finetune_norm": false,
    "unet": { "in_channel": 4, "out_channel": 4, "inner_channel": 128,
              "channel_multiplier": [1, 2, 4, 8, 8], "attn_res": [16], "res_blocks": 2,
              "dropout": 0.2 },
    "beta_schedule": {
      "train": { "schedule": "cosine", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 1e-2 },
      "val": { "schedule": "cosine", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 1e-2 }
    },
    "diffusion": { "image_size": 160, "image_size_w": 160, "image_size_h": 160,
                   "is_concat": false, "channels": 4, "loss": "l2", "conditional": false }
  },
  "train": { "n_iter": 1000000, "val_freq": 5000, "save_checkpoint_freq": 1e4,
             "print_freq": 200, "optimizer": { "type": "adamw", "lr": 1e-5 } }
}`;

// The reference's config/fusion_train.json, all blocks.
const REFERENCE_HEAD = `{
  "name": "ddpm-FSHead", "phase": "train", "gpu_ids": [0],
  "path": { "log": "logs", "tb_logger": "tb_logger", "results": "results",
            "checkpoint": "null", "resume_state": "Path_DF_Model" },
  "path_df": { "log": "logs", "tb_logger": "tb_logger", "results": "results",
               "checkpoint": "checkpoint", "resume_state": null },
  "datasets": {
    "train": { "name": "MSRS", "dataroot": "Path_DATASET", "resolution": 160, "batch_size": 1,
               "num_workers": 6, "use_shuffle": true, "data_len": -1 },
    "val": { "name": "MSRS", "dataroot": "Path_DATASET", "resolution": 160, "batch_size": 1,
             "num_workers": 1, "use_shuffle": true, "data_len": -1 },
    "test": { "name": "MSRS", "dataroot": "Path_DATASET", "resolution": 160, "batch_size": 1,
              "num_workers": 1, "use_shuffle": false, "data_len": -1 }
  },
  "model_df": { "feat_scales": [2, 5, 8, 11, 14], "out_channels": 4, "loss_type": "ce",
                "output_cm_size": 160, "psp": true, "feat_type": "dec", "t": [5, 50, 100] },
  "model": {
    "which_model_G": "sr3", "finetune_norm": false,
    "unet": { "in_channel": 4, "out_channel": 4, "inner_channel": 128,
              "channel_multiplier": [1, 2, 4, 8, 8], "attn_res": [16], "res_blocks": 2,
              "dropout": 0.2 },
    "beta_schedule": {
      "train": { "schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 1e-2 },
      "val": { "schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 1e-2 },
      "test": { "schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 1e-2 }
    },
    "diffusion": { "image_size": 160, "channels": 4, "loss": "l2", "is_concat": false,
                   "conditional": false }
  },
  "train": {
    "n_epoch": 300, "train_print_freq": 50, "val_freq": 1, "val_print_freq": 50,
    "optimizer": { "type": "adam", "lr": 1e-4 },
    "sheduler": {
      "lr_policy": "linear",  // options: linear, poly, step
      "n_steps": 3,           //this is aplicable only if step sheduler using
      "gamma": 0.1            //Multiplicative factor of learning rate decay. Default: 0.1.
    }
  }
}`;

describe('training configs', () => {
  it('the reference formats load, comments and ignored keys included', () => {
    const ddpm = loadDdpmConfig(file('ddpm_train.json', REFERENCE_DDPM));
    expect(ddpm.model.unet.inner_channel).toBe(128);
    expect(ddpm.model.beta_schedule.train.schedule).toBe('cosine');
    expect(ddpm.train.save_checkpoint_freq).toBe(10000);
    const head = loadHeadConfig(file('fusion_train.json', REFERENCE_HEAD));
    expect(head.train.n_epoch).toBe(300);
    expect(head.train.sheduler).toEqual({ lr_policy: 'linear', n_steps: 3, gamma: 0.1 });
    expect(head.model_df.t).toEqual([5, 50, 100]);
    // The shipped defaults pass their own schema.
    expect(validateDdpmConfig(structuredClone(DEFAULT_DDPM_CONFIG))).toEqual(DEFAULT_DDPM_CONFIG);
    expect(validateHeadConfig(structuredClone(DEFAULT_HEAD_CONFIG))).toEqual(DEFAULT_HEAD_CONFIG);
  });

  it('an unknown key is an error naming the key, the file and the nearest known key', () => {
    const typo = file('typo.json', '{ "model": { "unet": { "inner_chanel": 8 } } // a typo\n}');
    expect(() => loadDdpmConfig(typo)).toThrow(
      `${typo}: unknown key model.unet.inner_chanel (did you mean inner_channel?)`,
    );
    const top = file('top.json', '{ "trian": { "n_epoch": 3 } }');
    expect(() => loadHeadConfig(top)).toThrow(`${top}: unknown key trian (did you mean train?)`);
    const far = file('far.json', '{ "train": { "colour_boost": 1 } }');
    expect(() => loadHeadConfig(far)).toThrow(/unknown key train\.colour_boost$/);
  });

  it('accepts the UNet options of the reference UNet and refuses misspelt or mistyped ones', () => {
    const opts = file('opts.json', '{ "model": { "unet": { "use_affine_level": true } } }');
    expect(loadDdpmConfig(opts).model.unet.use_affine_level).toBe(true);
    const typo = file('opts-typo.json', '{ "model": { "unet": { "use_afine_level": true } } }');
    expect(() => loadDdpmConfig(typo)).toThrow(
      `${typo}: unknown key model.unet.use_afine_level (did you mean use_affine_level?)`,
    );
    const str = file('opts-str.json', '{ "model": { "unet": { "use_affine_level": "yes" } } }');
    expect(() => loadDdpmConfig(str)).toThrow(
      new RegExp(`^${str}: model\\.unet\\.use_affine_level`),
    );
  });

  it('a bad value names the key and what it must be', () => {
    const bad = file('bad.json', '{ "train": { "optimizer": { "type": "sgd", "lr": 1 } } }');
    expect(() => loadDdpmConfig(bad)).toThrow(`${bad}: train.optimizer.type must be adam or adamw`);
    const ft = file(
      'ft.json',
      REFERENCE_DDPM.replace('"finetune_norm": false', '"finetune_norm": true'),
    );
    expect(() => loadDdpmConfig(ft)).toThrow(
      `${ft}: model.finetune_norm must be false: true trains only parameters named 'transformer', which this UNet does not have (nothing would train)`,
    );
    const neg = file('neg.json', '{ "datasets": { "train": { "batch_size": 0 } } }');
    expect(() => loadHeadConfig(neg)).toThrow(
      `${neg}: datasets.train.batch_size must be a positive integer`,
    );
    // fusion-head's one rule for the loss settings (fusionLossProblem)
    const salient = file('salient.json', '{ "train": { "loss": { "target": "salient" } } }');
    expect(() => loadHeadConfig(salient)).toThrow(
      /target 'salient' compares luma: set space 'luma'/,
    );
    const ok = file('ok.json', '{ "train": { "loss": { "target": "salient", "space": "luma" } } }');
    expect(loadHeadConfig(ok).train.loss).toEqual({ target: 'salient', space: 'luma' });
  });

  it('parses JSONC without touching strings', () => {
    expect(parseJsonWithComments('{"name":"a,]b"}')).toEqual({ name: 'a,]b' });
    expect(parseJsonWithComments('{"a": "x // y", "b": [1, 2,], /* c */ }')).toEqual({
      a: 'x // y',
      b: [1, 2],
    });
    expect(() => parseJsonWithComments('{"a": }', '/x/c.json')).toThrow(
      /^\/x\/c\.json: invalid JSON \(ValueExpected at line 1, column 7\)$/,
    );
  });
});

describe("model.unet is the UNet package's one config block", () => {
  it('lists every key of UNetConfig (image_size is datasets.train.resolution)', () => {
    expect(Object.keys(unetBlockSchema.shape).sort()).toEqual(
      UNET_CONFIG_KEYS.filter((k) => k !== 'image_size').sort(),
    );
  });
  it("reports the unet package's rules between keys at model.unet.<key>", () => {
    const c = structuredClone(DEFAULT_DDPM_CONFIG);
    c.model.unet.norm_groups = 24;
    expect(() => validateDdpmConfig(c, 'x.json')).toThrow(
      'x.json: model.unet.norm_groups 24 must divide inner_channel x every channel_multiplier',
    );
  });
});
