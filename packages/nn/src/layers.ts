import { Module, type ParamSpec } from './module';
import type { Ops } from './ops';

/** nn.Conv2d (PyTorch default init: U(±1/sqrt(fan_in)) for weight and bias). */
export class Conv2d extends Module {
  constructor(
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    super(prefix);
  }

  get hasBias(): boolean {
    return this.options.bias ?? true;
  }

  params(): ParamSpec[] {
    const fanIn = this.inChannels * this.kernel * this.kernel;
    const bound = 1 / Math.sqrt(fanIn);
    const ps: ParamSpec[] = [
      {
        name: this.key('weight'),
        shape: [this.outChannels, this.inChannels, this.kernel, this.kernel],
        init: { kind: 'uniform', bound },
      },
    ];
    if (this.hasBias)
      ps.push({ name: this.key('bias'), shape: [this.outChannels], init: { kind: 'uniform', bound } });
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

/** nn.Linear (PyTorch default init). */
export class Linear extends Module {
  constructor(
    prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly bias = true,
  ) {
    super(prefix);
  }

  params(): ParamSpec[] {
    const bound = 1 / Math.sqrt(this.inFeatures);
    const ps: ParamSpec[] = [
      {
        name: this.key('weight'),
        shape: [this.outFeatures, this.inFeatures],
        init: { kind: 'uniform', bound },
      },
    ];
    if (this.bias)
      ps.push({ name: this.key('bias'), shape: [this.outFeatures], init: { kind: 'uniform', bound } });
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
