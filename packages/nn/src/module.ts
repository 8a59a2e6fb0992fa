import type { Ops } from './ops';

/** How a parameter is initialised before training. */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  /** PyTorch's default for Conv2d/Linear weights: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
  | { kind: 'uniform'; bound: number }
  /** Orthogonal init (the official SR3 DDPM init for conv/linear weights), gain 1. */
  | { kind: 'orthogonal' };

/** A parameter: official PyTorch state_dict key, PyTorch shape, and initialiser. */
export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
  /**
   * A buffer (BatchNorm running statistics): saved and loaded with the weights under its
   * state_dict key, never trained by the optimizer (see `trainableSpecs`).
   */
  buffer?: true;
}

/** The specs an optimizer trains: every one except the buffers. */
export function trainableSpecs(specs: readonly ParamSpec[]): ParamSpec[] {
  return specs.filter((s) => !s.buffer);
}

/** `name` is not one of `specs`' buffers (GradOps' `trainable` option). */
export function notBuffer(specs: readonly ParamSpec[]): (name: string) => boolean {
  const buffers = new Set(specs.filter((s) => s.buffer).map((s) => s.name));
  return (name) => !buffers.has(name);
}

/**
 * Base of every layer: a dotted name prefix (the PyTorch module path, e.g.
 * `downs.0.res_block`) and the parameters it owns, its children's included.
 */
export abstract class Module {
  constructor(readonly prefix: string) {}

  /** All parameters of this module and its children, in definition order. */
  abstract params(): ParamSpec[];

  /** Full state_dict key of a parameter or child path of this module. */
  protected key(suffix: string): string {
    return this.prefix ? `${this.prefix}.${suffix}` : suffix;
  }
}

/** Parameters of several modules, concatenated. */
export function collectParams(modules: Array<Module | null | undefined>): ParamSpec[] {
  return modules.flatMap((m) => (m ? m.params() : []));
}

export type { Ops };
