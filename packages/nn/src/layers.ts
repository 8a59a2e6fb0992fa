import { type Init, Module, type ParamSpec } from './module';
import type { Ops } from './ops';

/**
 * How conv/linear weights are initialised:
 * - `torch`: PyTorch's default, U(±1/sqrt(fan_in)) for weight and bias;
 * - `orthogonal`: the official SR3/Dif-Fusion training init (`init_weights(net, 'orthogonal')`):
 *   orthogonal weight (gain 1), zero bias.
 */
export type WeightInit = 'torch' | 'orthogonal';

function weightAndBiasInit(
  init: WeightInit | undefined,
  fanIn: number,
): { weight: Init; bias: Init } {
  if (init === 'orthogonal') return { weight: { kind: 'orthogonal' }, bias: { kind: 'zeros' } };
  const bound = 1 / Math.sqrt(fanIn);
  return { weight: { kind: 'uniform', bound }, bias: { kind: 'uniform', bound } };
}

/** nn.Conv2d (default init: PyTorch's, see `WeightInit`). */
export class Conv2d extends Module {
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean; init?: WeightInit } = {},
  ) {
    super(prefix);
  }

  get hasBias(): boolean {
    return this.options.bias ?? true;
  }

  params(): ParamSpec[] {
    const init = weightAndBiasInit(this.options.init, this.inChannels * this.kernel * this.kernel);
    const ps: ParamSpec[] = [
      {
        name: this.key('weight'),
        shape: [this.outChannels, this.inChannels, this.kernel, this.kernel],
        init: init.weight,
      },
    ];
    if (this.hasBias)
      ps.push({ name: this.key('bias'), shape: [this.outChannels], init: init.bias });
    return ps;
  }

  forward<T>(ops: Ops<T>, x: T): T {
    return ops.conv2d(
      x,
      ops.param(this.key('weight')),
      this.hasBias ? ops.param(this.key('bias')) : null,
      { stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 },
    );
  }
}

/** nn.Linear (default init: PyTorch's, see `WeightInit`). */
export class Linear extends Module {
  constructor(
    prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly bias = true,
    readonly init: WeightInit = 'torch',
  ) {
    super(prefix);
  }

  params(): ParamSpec[] {
    const init = weightAndBiasInit(this.init, this.inFeatures);
    const ps: ParamSpec[] = [
      { name: this.key('weight'), shape: [this.outFeatures, this.inFeatures], init: init.weight },
    ];
    if (this.bias) ps.push({ name: this.key('bias'), shape: [this.outFeatures], init: init.bias });
    return ps;
  }

  forward<T>(ops: Ops<T>, x: T): T {
    return ops.linear(
      x,
      ops.param(this.key('weight')),
      this.bias ? ops.param(this.key('bias')) : null,
    );
  }
}

/** nn.GroupNorm(groups, channels), affine, eps 1e-5. */
export class GroupNorm extends Module {
  constructor(
    prefix: string,
    readonly groups: number,
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    super(prefix);
  }

  params(): ParamSpec[] {
    return [
      { name: this.key('weight'), shape: [this.channels], init: { kind: 'ones' } },
      { name: this.key('bias'), shape: [this.channels], init: { kind: 'zeros' } },
    ];
  }

  forward<T>(ops: Ops<T>, x: T): T {
    return ops.groupNorm(
      x,
      this.groups,
      ops.param(this.key('weight')),
      ops.param(this.key('bias')),
      this.eps,
    );
  }
}
